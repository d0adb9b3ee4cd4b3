"""The docs, checked from their text (no database, no process): every command and every long
option of the command line appears in docs/, every relative link of README.md and docs/
resolves (the file, and a #anchor to one of its headings), every docs page is linked from the
README, and the README stays short enough for a newcomer to finish."""

import re
from pathlib import Path

import click

from conftest import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
MAX_README_LINES = 250

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\[\]]*\]\(([^()\s]+)\)")  # the text may span lines
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def docs_pages() -> list:
    return sorted(DOCS.glob("*.md"))


def pages() -> list:
    return [README, *docs_pages()]


def shown(path: Path) -> str:
    """A page's text without its fenced code blocks (a `[x](y)` or `# x` there is code)."""
    return FENCE.sub("", path.read_text())


def names(path: Path, root: Path = REPO) -> str:
    return str(path.relative_to(root))


# -- every command and option is documented ------------------------------------------------------
def command_line_terms() -> set:
    """``ingest NAME`` for every command, and every long option flag of every command
    (``--chunk-size``), hidden options and --help left out."""
    from durable_ingest.cli import main

    terms = set()
    for name, command in sorted(all_commands(main)):
        if command.hidden:
            continue
        terms.add(f"ingest {name}")
        for param in command.params:
            if not isinstance(param, click.Option) or param.hidden:
                continue
            terms.update(flag for flag in param.opts + param.secondary_opts
                         if flag.startswith("--") and flag != "--help")
    return terms


def all_commands(group, prefix: str = ""):
    """(name, command) of every command, a group's subcommands as ``group sub``."""
    for name, command in group.commands.items():
        yield prefix + name, command
        if isinstance(command, click.Group):
            yield from all_commands(command, f"{prefix}{name} ")


def test_every_command_and_long_option_appears_in_docs():
    text = "\n".join(page.read_text() for page in docs_pages())
    terms = command_line_terms()
    assert "ingest load" in terms and "--chunk-size" in terms  # the walk found the commands
    missing = sorted(term for term in terms
                     if not re.search(rf"(?<![\w-]){re.escape(term)}(?![\w-])", text))
    assert not missing, f"not in docs/*.md: {', '.join(missing)}"


# -- every relative link resolves ----------------------------------------------------------------
def slug(heading: str) -> str:
    """GitHub's anchor of a heading: link markup reduced to its text, lower case, every
    character but letters, digits, spaces, '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set:
    """The anchors of a Markdown file's headings; a repeated one gets -1, -2... as on GitHub."""
    found, seen = set(), {}
    for _, heading in HEADING.findall(shown(path)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(path: Path) -> list:
    """The targets of the page's Markdown links that point into the repository."""
    text = CODE_SPAN.sub("", shown(path))
    return [target for target in LINK.findall(text) if not SCHEME.match(target)]


def broken(path: Path, target: str, root: Path = REPO):
    """Why ``target`` (a link of ``path``) does not resolve; None when it does."""
    if target.startswith("/"):
        return "absolute path: use a relative link"
    file_part, _, anchor = target.partition("#")
    goal = (path.parent / file_part).resolve() if file_part else path
    if not goal.exists():
        return "no such file"
    if root not in goal.parents:
        return "outside the repository"
    if anchor and goal.suffix == ".md" and anchor not in anchors(goal):
        return f"no heading #{anchor} in {names(goal, root)}"
    return None


def test_slug_follows_github():
    assert slug("Every core: `--workers`") == "every-core---workers"
    assert slug("`ingest load`") == "ingest-load"
    assert slug("Many files (`bench_files.py`)") == "many-files-bench_filespy"
    assert slug("Looking at the rows with [pgcli](x.md)") == "looking-at-the-rows-with-pgcli"


def test_every_relative_link_resolves():
    problems = [f"{names(page)}: ({target}): {why}"
                for page in pages() for target in relative_links(page)
                if (why := broken(page, target))]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_link_checker_finds_broken_links(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [bad](#nowhere) [two\nlines](missing.md)\n"
                    "[`x`](/etc/hosts)\n```\n[in code](code.md)\n```\n")
    assert {target: broken(page, target, tmp_path) for target in relative_links(page)} == {
        "#title": None, "#nowhere": "no heading #nowhere in page.md",
        "missing.md": "no such file", "/etc/hosts": "absolute path: use a relative link"}


# -- the pages hang together ---------------------------------------------------------------------
def test_every_docs_page_is_linked_from_the_readme_and_links_back():
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in relative_links(README)}
    orphans = [names(p) for p in docs_pages() if p.resolve() not in linked]
    assert not orphans, f"not linked from README.md (\"Where to go next\"): {', '.join(orphans)}"
    no_way_back = [names(p) for p in docs_pages()
                   if "(../README.md)" not in "\n".join(p.read_text().splitlines()[:6])]
    assert not no_way_back, f"no link to ../README.md in the first lines: {', '.join(no_way_back)}"


def test_readme_is_short_enough_to_finish():
    lines = len(README.read_text().splitlines())
    assert lines < MAX_README_LINES, \
        f"README.md has {lines} lines (limit {MAX_README_LINES}): move reference text to docs/"
