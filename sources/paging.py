"""Chains of API pages: a URL input without ``{page}`` is a first page that says where the
next one is (``contract.Paging``): a ``Link: <...>; rel="next"`` header (RFC 8288), a URL or
a cursor at a dotted path of its body, a field of its last record, or an offset that grows
by the records of each page. Here: the next page's URL of a fetched page (``next_of``), or
why the chain can't go on from it (``WrongShape``); where a chain stands in the run's
workflow body (``Chain``: loops, cursors that don't change, ``--max-pages``); and the checks
of the paging options, before any work (``check_paging``); the first URL asks from an
incremental load's value (``asking``)."""

import hashlib
import re
from dataclasses import fields
from typing import Optional
from urllib.parse import quote, unquote_plus, urljoin, urlsplit, urlunsplit

from ..contract import PAGE_PLACEHOLDER, FetchedPage, Paging, UrlSource
from ..errors import UsageError
from .since import SINCE_PLACEHOLDER

MAX_BODY_BYTES = 64 << 20  # a page whose body is read for its paging values is read whole
CHAIN_STYLES = ("next_url", "cursor", "cursor_record", "offset_param")

_LINK_TARGET = re.compile(r"\s*<([^>]*)>")
_LINK_PARAM = re.compile(r'\s*;\s*([^\s=;,]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^\s;,]*))?')


class WrongShape(Exception):
    """A page that can't say where the next one is: the chain stops at it."""


# -- where the next page is ----------------------------------------------------------------
def link_next(header: Optional[str], base: str) -> Optional[str]:
    """The target of a ``Link`` header's ``rel="next"`` (RFC 8288: comma-separated values,
    ``rel`` a space-separated list, its first occurrence the one that counts), resolved
    against ``base``; None without one."""
    at, header = 0, header or ""
    while (target := _LINK_TARGET.match(header, at)) is not None:
        params, at = {}, target.end()
        while (param := _LINK_PARAM.match(header, at)) is not None:
            value = param.group(2) or ""
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params.setdefault(param.group(1).lower(), value)
            at = param.end()
        if "next" in params.get("rel", "").lower().split():
            return urljoin(base, target.group(1).strip())
        comma = header.find(",", at)
        if comma < 0:
            return None
        at = comma + 1
    return None


def first_url(source: UrlSource) -> str:
    """The chain's first page: the URL as given, with its offset and limit for offsets,
    asking from the run's value (``asking``)."""
    paging = source.paging
    if paging.style != "offset":
        return asking(source, source.template)
    url = with_param(source.template, paging.offset_param, offset_in(source.template, paging))
    return asking(source, with_param(url, paging.limit_param, paging.limit)
                  if paging.limit_param else url)


def asking(source: UrlSource, url: str) -> str:
    """``url`` asking for what changed since the value the run starts from (``--incremental``):
    in its ``{since}`` placeholder, and in the query parameter ``--since-param``."""
    if not source.since:
        return url
    text = source.since[1]
    url = url.replace(SINCE_PLACEHOLDER, quote(text, safe=""))
    return with_param(url, source.since_param, text) if source.since_param else url


def next_of(paging: Paging, url: str, page: FetchedPage, link: Optional[str]) -> Optional[str]:
    """The URL of the page after ``page`` (fetched from ``url``, with its ``Link`` header),
    None where the chain ends; ``WrongShape`` if the page can't say."""
    body = Body(page)
    if paging.has_more and not more(body.value(paging.has_more, "--has-more")):
        return None
    style = paging.style
    if style == "link":
        return link_next(link, url)
    if style == "next-url":
        target = body.value(paging.next_url, "--next-url")
        if target is not None and not isinstance(target, str):
            raise WrongShape(f"its {paging.next_url} (--next-url) is {kind(target)}, not a URL")
        return urljoin(url, target) if target else None
    if style == "offset":
        return next_offset(paging, url, page, body)
    if style == "cursor":
        token = body.value(paging.cursor, "--cursor")
    elif not page.records:
        return None
    else:
        token = value_in(last_record(page), paging.cursor_record, "--cursor-record", "its last record")
    token = cursor_text(token, paging.cursor or paging.cursor_record)
    return with_param(url, paging.cursor_param, token) if token else None


def next_offset(paging: Paging, url: str, page: FetchedPage, body: "Body") -> Optional[str]:
    """The offset after this page's records; None after a short page, or at ``--total``."""
    if page.records < paging.limit:
        return None
    offset = offset_in(url, paging) + page.records
    if paging.total:
        total = body.value(paging.total, "--total")
        if total is not None and (not isinstance(total, int) or isinstance(total, bool)):
            raise WrongShape(f"its {paging.total} (--total) is {kind(total)}, not a count")
        if total is not None and offset >= total:
            return None
    return with_param(url, paging.offset_param, offset)


def more(value) -> bool:
    """``--has-more``: false, 0, null, "" or missing say there is no more."""
    if isinstance(value, (dict, list)):
        raise WrongShape(f"its --has-more value is {kind(value)}, not true or false")
    return bool(value) and str(value).lower() not in ("false", "0")


def cursor_text(token, path: str) -> Optional[str]:
    if token is None or isinstance(token, str):
        return token or None
    if isinstance(token, (dict, list, bool)):
        raise WrongShape(f"its cursor at {path} is {kind(token)}, not a string or a number")
    return str(token)


def kind(value) -> str:
    return {dict: "an object", list: "a list", bool: "true or false", str: "a string"}.get(
        type(value), "a number")


class Body:
    """A page's body as a JSON value, read once it is asked for (the spooled copy)."""

    def __init__(self, page: FetchedPage):
        self.page, self.read, self.document = page, False, None

    def value(self, path: str, option: str):
        """The value at the dotted ``path``; None if a key on the way is missing."""
        if not self.read:
            self.document, self.read = self.load(option), True
        if self.page.path is None:
            return None
        return value_in(self.document, path, option, "the page")

    def load(self, option: str):
        import os

        from .. import codec

        if self.page.path is None:
            return None
        if self.page.shape == "ndjson":
            raise WrongShape(f"is NDJSON: it has no body to read {option} in")
        if os.path.getsize(self.page.path) > MAX_BODY_BYTES:
            raise WrongShape(f"is over {MAX_BODY_BYTES >> 20} MiB: too large to read {option} in")
        with open(self.page.path, "rb") as f:
            return codec.loads(f.read())


def value_in(document, path: str, option: str, what: str):
    """The value at a dotted ``path`` of ``document``: None if a key on the way is missing;
    ``WrongShape`` if a step on the way is no object."""
    for depth, key in enumerate(path.split(".")):
        if not isinstance(document, dict):
            where = ".".join(path.split(".")[:depth]) or "the top"
            raise WrongShape(f"{what} has {kind(document)} at {where}, so no {path} ({option})")
        if key not in document:
            return None
        document = document[key]
    return document


def last_record(page: FetchedPage):
    from .read import read_chunk

    start, end, first, _ = page.pieces[-1]
    record = None
    for _, record in read_chunk(page.path, page.shape, start, end, first):
        pass
    return record


def with_param(url: str, name: str, value) -> str:
    """``url`` with the query parameter ``name`` set to ``value`` (the others as they were)."""
    parts = urlsplit(url)
    kept = [p for p in parts.query.split("&") if p and unquote_plus(p.partition("=")[0]) != name]
    pair = f"{quote(name, safe='')}={quote(str(value), safe='')}"
    return urlunsplit(parts._replace(query="&".join(kept + [pair])))


def offset_in(url: str, paging: Paging) -> int:
    """The offset a URL asks for (0 if it asks for none)."""
    for part in urlsplit(url).query.split("&"):
        name, _, value = part.partition("=")
        if unquote_plus(name) == paging.offset_param and value.isdigit():
            return int(value)
    return 0


# -- where a chain stands ------------------------------------------------------------------
class Chain:
    """A chain in the run's workflow body: the page to fetch next (``url``), how many were
    fetched, and digests of their URLs (a loop stops the chain). Rebuilt from the steps'
    outputs when the workflow is replayed: never checkpointed whole."""

    def __init__(self, source: UrlSource):
        self.source, self.url, self.count = source, first_url(source), 0
        self.seen = {digest(self.url)}

    def follow(self, page: FetchedPage) -> Optional[FetchedPage]:
        """Take ``page`` (fetched from ``url``) and move on to its next page (``url`` None:
        the end). A next page fetched before (a loop, a cursor that does not change) ends
        the chain too: what for its ``errors`` row."""
        self.count += 1
        current, self.url = self.url, None if page.error else page.next
        cap = self.source.paging.max_pages
        if self.url is None or (cap and self.count >= cap):
            self.url = None
            return None
        if digest(self.url) in self.seen:
            return self.looped(current)
        self.seen.add(digest(self.url))
        return None

    def looped(self, current: str) -> FetchedPage:
        paging, target, self.url = self.source.paging, self.url, None
        if paging.style in ("cursor", "cursor-record"):
            what = "does not change" if target == current else "was seen before"
            reason = f"its cursor ({paging.cursor_param}) {what}: the API repeats itself"
        elif paging.style == "offset":
            reason = f"its offset ({paging.offset_param}) does not advance"
        else:
            reason = f"its next page {target} was fetched before: a loop"
        return FetchedPage(page=self.count + 1, name=f"{current} (next page)", attempts=0, error=(
            f"{current}: {reason}; the chain stopped after {self.count} pages (they loaded)"))


def digest(url: str) -> bytes:
    return hashlib.sha256(url.encode()).digest()[:16]


# -- the options -------------------------------------------------------------------------------
def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_paging(paging: Paging, pages: Optional[str], urls: list) -> None:
    """One paging style per URL input, each with what it needs: a ``UsageError`` (exit 2)
    naming the fix, before any work."""
    given = [f.name for f in fields(paging) if getattr(paging, f.name)]
    styles = [name for name in given if name in CHAIN_STYLES]
    if len(styles) > 1:
        raise UsageError(f"{flag(styles[0])} and {flag(styles[1])} are two paging styles: "
                         "give one")
    check_needs(paging)
    chain_options = [name for name in given if name != "max_pages"]
    if given and not urls:
        raise UsageError(f"{flag(given[0])} is for URL inputs (http:// or https://)")
    if chain_options and pages is not None:
        raise UsageError(f"--pages numbers the pages of a {PAGE_PLACEHOLDER} URL and "
                         f"{flag(chain_options[0])} follows a chain from one URL: give one of them")
    if chain_options and any(PAGE_PLACEHOLDER in url for url in urls):
        raise UsageError(f"{flag(chain_options[0])} follows a chain of pages from a URL without "
                         f"{PAGE_PLACEHOLDER}: drop the placeholder, or use --pages")
    for name in ("next_url", "cursor", "cursor_record", "has_more", "total"):
        value = getattr(paging, name)
        if value and any(not key for key in value.split(".")):
            raise UsageError(f"{flag(name)} {value!r}: give a dotted path of keys, e.g. "
                             "links.next or response_metadata.next_cursor")


def check_needs(paging: Paging) -> None:
    """Options that only mean something with another one."""
    cursor = "cursor" if paging.cursor else "cursor_record" if paging.cursor_record else None
    if cursor and not paging.cursor_param:
        raise UsageError(f"{flag(cursor)} needs --cursor-param NAME: the query parameter the "
                         "token goes into (e.g. --cursor-param cursor)")
    if paging.cursor_param and not cursor:
        raise UsageError("--cursor-param is where a token goes: give --cursor PATH (a token "
                         "in the body) or --cursor-record FIELD (a field of the last record)")
    for name in ("limit", "limit_param", "total"):
        if getattr(paging, name) and not paging.offset_param:
            raise UsageError(f"{flag(name)} is for offset paging: give --offset-param NAME "
                             "(and --limit N) too")
    if paging.offset_param and not paging.limit:
        raise UsageError("--offset-param needs --limit N: the records a page holds (a shorter "
                         "page is the last)")
