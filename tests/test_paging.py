"""Chains of API pages (issue 31, items 2 and 4): each page of a URL input without
``{page}`` leads to the next one by a ``Link`` header, a URL or a cursor in its body, its last
record or an offset; retries, loops, cursors that don't change, pages of another shape,
credentials kept within the first page's origin, crashes and option conflicts, against a
real HTTP server on 127.0.0.1 (``benchmarks/chain_server.py``) and the real CLI."""

import json
import sys

import pytest

from conftest import REPO, finish_on_workers, kill_9, run_ingest, start_ingest, wait_until
from conftest import cli_load as load

sys.path.insert(0, str(REPO / "benchmarks"))
from chain_server import ChainServer  # noqa: E402

API_KEY = "k3y-Chain-Secret-0099"
STYLES = {
    "link": [],
    "next": ["--next-url", "links.next", "--records", "data"],
    "cursor": ["--cursor", "response_metadata.next_cursor", "--cursor-param", "cursor",
               "--records", "members"],
    "stripe": ["--cursor-record", "login.uuid", "--cursor-param", "starting_after",
               "--has-more", "has_more", "--records", "data"],
    "offset": ["--offset-param", "offset", "--limit-param", "limit", "--limit", "10",
               "--records", "rows"],
    "nested": ["--next-url", "result.paging.next", "--records", "result.items"],
}


def every_page_once(server: ChainServer, pages: int) -> bool:
    return dict(server.requests_by_page) == {page: 1 for page in range(1, pages + 1)}


@pytest.mark.parametrize("style", sorted(STYLES))
def test_every_style_loads_every_page_of_its_chain_once(cli, backend, style):
    with ChainServer(pages=4, records=10) as server:
        summary = load(cli, backend, f"{server.url}/{style}", *STYLES[style])

        # Offsets without --total end at a short page: here the empty one after the last.
        assert every_page_once(server, 5 if style == "offset" else 4), server.requests_by_page
    assert (summary["records"], summary["tasks"]) == (40, 40)
    assert summary["pages"]["new"] == 4 and summary["pages"]["failed"] == 0
    backend.assert_each_record_once(40, 0)


@pytest.mark.parametrize("style", ["link", "next", "nested"])
def test_absolute_next_urls_and_the_offset_total(cli, sqlite_backend, style):
    with ChainServer(pages=3, records=5, absolute=True) as server:
        summary = load(cli, sqlite_backend, f"{server.url}/{style}", *STYLES[style])
        assert every_page_once(server, 3)
    with ChainServer(pages=3, records=5) as server:  # full pages: the total says where it ends
        load(cli, sqlite_backend, f"{server.url}/offset?offset=0", "--offset-param", "offset",
             "--limit-param", "limit", "--limit", "5", "--records", "rows", "--total", "total")
        assert every_page_once(server, 3)
    assert summary["pages"]["new"] == 3
    sqlite_backend.assert_each_record_once(30, 0)


def test_a_500_and_a_reset_in_the_middle_of_a_chain_are_retried(cli, backend):
    with ChainServer(pages=5, records=10, script={2: [500], 3: ["reset"]}) as server:
        summary = load(cli, backend, f"{server.url}/next", *STYLES["next"])
        requests = dict(server.requests_by_page)

    assert requests == {1: 1, 2: 2, 3: 2, 4: 1, 5: 1}
    assert summary["pages"]["http_retries"] == 2 and summary["pages"]["new"] == 5
    backend.assert_each_record_once(50, 0)


@pytest.mark.slow
@pytest.mark.parametrize("style", ["link", "cursor"])
def test_kill_9_in_the_middle_of_a_chain_then_the_same_command(backend, workdir, style):
    """The server holds page 5's answer, so the kill certainly comes with page 5 in flight
    and pages 1-4 fetched: the same command goes on from page 5, fetching no other twice."""
    with ChainServer(pages=8, records=25, hold=5) as server:
        args = ["load", f"{server.url}/{style}", *STYLES[style], "--chunk-size", "20"]
        process = start_ingest(*args, env=backend.env(), cwd=workdir)
        wait_until(server.held.is_set, 90, "page 5 in flight", process=process)
        assert kill_9(process) == -9
        server.release()
        again = run_ingest(*args, "--json", env=backend.env(), cwd=workdir)
        requests = dict(server.requests_by_page)

    assert again.returncode == 0, again.stderr
    assert requests == {**{page: 1 for page in range(1, 9)}, 5: 2}
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert (summary["tasks"], summary["pages"]["new"]) == (200, 8)
    backend.assert_each_record_once(200, 0)


@pytest.mark.slow
def test_a_detached_chain_is_followed_by_workers(postgres_backend, workdir):
    env = postgres_backend.env()
    with ChainServer(pages=6, records=15) as server:
        queued = run_ingest("load", f"{server.url}/stripe", *STYLES["stripe"], "--chunk-size",
                            "40", "--detach", "--json", env=env, cwd=workdir)
        assert queued.returncode == 0, queued.stderr
        finish_on_workers(json.loads(queued.stdout)["run_id"], env, workdir)
        assert every_page_once(server, 6), server.requests_by_page
    postgres_backend.assert_each_record_once(90, 0)


@pytest.mark.parametrize("style, twist, says, loaded", [
    ("link", "loop:2", "its next page {url}/link?page=2 was fetched before: a loop", 4),
    ("cursor", "stuck", "its cursor (cursor) does not change", 4),
    ("next", "shape", "has no list of records at data (--records)", 3),
    ("next", "bad-next", "its links.next (--next-url) is a number, not a URL: a page of "
                         "another shape", 3),
])
def test_a_chain_that_can_not_go_on_stops_with_one_errors_row(cli, backend, style, twist,
                                                              says, loaded):
    with ChainServer(pages=6, records=10, twist={4: twist}) as server:
        result = cli("load", f"{server.url}/{style}", *STYLES[style], "--json",
                     env=backend.env())
        assert every_page_once(server, 4), server.requests_by_page

    assert result.exit_code == 3, result.output
    [line] = [line for line in result.stderr.splitlines() if line.startswith("bad input: ")]
    assert says.format(url=server.url) in line
    assert backend.counts() == (loaded * 10, 1)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["pages"]["failed"] == 1


def test_credentials_are_not_sent_to_another_origin(cli, sqlite_backend):
    with ChainServer(pages=3, records=5) as elsewhere, \
            ChainServer(pages=3, records=5, require_headers={"X-Api-Key": API_KEY},
                        twist={2: f"to:{elsewhere.url}/link?page=3"}) as api:
        summary = load(cli, sqlite_backend, f"{api.url}/link", "--header",
                       f"X-Api-Key: {API_KEY}")
        assert dict(api.requests_by_page) == {1: 1, 2: 1} and api.statuses[401] == 0
        assert dict(elsewhere.requests_by_page) == {3: 1}
        assert all("X-Api-Key" not in headers for headers in elsewhere.seen_headers)

    assert summary["pages"]["new"] == 3
    sqlite_backend.assert_each_record_once(15, 0)


def test_max_pages_caps_chains_and_numbered_pages_ignore_link_headers(cli, sqlite_backend):
    with ChainServer(pages=5, records=5) as server:
        capped = load(cli, sqlite_backend, f"{server.url}/link", "--max-pages", "2")
        assert every_page_once(server, 2)
        server.reset_counts()
        numbered = load(cli, sqlite_backend, f"{server.url}/link?page={{page}}", "--pages", "3-4")
        assert dict(server.requests_by_page) == {3: 1, 4: 1}  # page 4's Link to 5 not followed
        server.reset_counts()
        open_range = load(cli, sqlite_backend, f"{server.url}/link?page={{page}}", "--pages", "4-",
                          "--max-pages", "2")
        assert dict(server.requests_by_page) == {4: 1, 5: 1}

    assert capped["pages"]["new"] == 2 and numbered["pages"]["new"] == 2
    assert open_range["pages"]["already"] == 1 and open_range["pages"]["new"] == 1
    assert capped["run_id"] != numbered["run_id"]
    sqlite_backend.assert_each_record_once(25, 0)


def test_the_paging_options_name_the_run(cli, sqlite_backend):
    with ChainServer(pages=3, records=5) as server:
        url = f"{server.url}/link"
        first = load(cli, sqlite_backend, url)
        again = load(cli, sqlite_backend, url)
        capped = load(cli, sqlite_backend, url, "--max-pages", "1")

    prefix = first["run_id"][:-6]
    assert again["run_id"] == f"{prefix}000002"  # the next generation of the same command
    assert not capped["run_id"].startswith(prefix)
    assert again["pages"]["already"] == 3 and capped["pages"]["already"] == 1
    sqlite_backend.assert_each_record_once(15, 0)


def test_conflicting_paging_options_are_one_line_before_any_work(cli, sqlite_backend, workdir):
    url = "http://127.0.0.1:9/items"
    cases = [
        ([url, "--cursor", "next"], "--cursor needs --cursor-param NAME"),
        ([url, "--cursor-record", "id"], "--cursor-record needs --cursor-param NAME"),
        ([url, "--cursor-param", "after"], "--cursor-param is where a token goes"),
        ([url, "--next-url", "next", "--cursor", "c", "--cursor-param", "c"],
         "--next-url and --cursor are two paging styles: give one"),
        ([url + "?page={page}", "--pages", "1-", "--next-url", "next"],
         "--pages numbers the pages of a {page} URL and --next-url follows a chain"),
        ([url + "?page={page}", "--cursor", "c", "--cursor-param", "c"],
         "--cursor follows a chain of pages from a URL without {page}"),
        ([url, "--limit", "10"], "--limit is for offset paging: give --offset-param NAME"),
        ([url, "--total", "total"], "--total is for offset paging"),
        ([url, "--offset-param", "offset"], "--offset-param needs --limit N"),
        ([url, "--next-url", "links..next"], "--next-url 'links..next': give a dotted path"),
        (["local.json", "--has-more", "has_more"], "--has-more is for URL inputs"),
    ]
    for args, expected in cases:
        result = cli("load", *args, env=sqlite_backend.env())
        assert result.exit_code == 2, result.output
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("Error: ") and expected in line, line
    assert not (workdir / "app.sqlite").exists()


# -- the pieces, in process ----------------------------------------------------------------
def test_link_headers_are_read_as_rfc_8288_says():
    from durable_ingest.sources.paging import link_next

    base = "https://api.example.com/v1/items?page=2"
    assert link_next('<https://api.example.com/v1/items?page=3>; rel="next"', base) \
        == "https://api.example.com/v1/items?page=3"
    assert link_next('</v1/items?page=1>; rel="prev", </v1/items?a=1,2&page=3>; rel="next"',
                     base) == "https://api.example.com/v1/items?a=1,2&page=3"
    assert link_next('<?page=3>; title="a, b; c"; rel="last next"', base) \
        == "https://api.example.com/v1/items?page=3"
    assert link_next("<p3>;rel=next", base) == "https://api.example.com/v1/p3"
    assert link_next('<p3>; rel="nextish", <p1>; rel=prev', base) is None
    assert link_next('<p3>; rel="prev"; rel="next"', base) is None  # the first rel counts
    assert link_next(None, base) is None and link_next("garbage", base) is None


def test_cursors_and_offsets_go_into_the_query():
    from durable_ingest.contract import Paging, UrlSource
    from durable_ingest.sources.paging import first_url, with_param

    assert with_param("https://x/a?q=a%20b&cursor=old", "cursor", "n/1+") \
        == "https://x/a?q=a%20b&cursor=n%2F1%2B"
    offsets = Paging(offset_param="offset", limit_param="limit", limit=50)
    assert first_url(UrlSource("https://x/a?offset=100", 0, 0, paging=offsets)) \
        == "https://x/a?offset=100&limit=50"
    assert first_url(UrlSource("https://x/a", 0, 0, paging=offsets)) \
        == "https://x/a?offset=0&limit=50"


# -- properties of the paging helpers -------------------------------------------------------
from hypothesis import given, settings, strategies as st  # noqa: E402

KEYS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="."),
               min_size=1, max_size=8)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=200, deadline=None)
@given(name=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=10),
       value=TEXT, others=st.lists(st.tuples(st.sampled_from(["q", "page", "x y"]), TEXT),
                                   max_size=3))
def test_a_query_parameter_is_set_once_and_the_others_are_kept(name, value, others):
    from urllib.parse import parse_qsl, urlencode, urlsplit

    from durable_ingest.sources.paging import with_param

    others = [(n, v) for n, v in others if n != name]
    url = with_param(f"https://api.example.com/v1/x?{urlencode(others)}", name, value)
    pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    assert [v for n, v in pairs if n == name] == [value]
    assert [(n, v) for n, v in pairs if n != name] == others


@settings(max_examples=200, deadline=None)
@given(target=st.from_regex(r"[A-Za-z0-9/?=&,;._~%-]{0,30}", fullmatch=True),
       before=st.lists(st.sampled_from(["prev", "first", "last", "nextish"]), max_size=3),
       quoted=st.booleans(), spaces=st.sampled_from(["", " ", "  "]))
def test_the_next_link_is_found_among_others(target, before, quoted, spaces):
    from urllib.parse import urljoin

    from durable_ingest.sources.paging import link_next

    rel = '"next"' if quoted else "next"
    values = [f"</{n}>;{spaces}rel={n}" for n in before] + [f"<{target}>{spaces};rel={rel}"]
    base = "https://api.example.com/v1/items"
    assert link_next(f",{spaces}".join(values), base) == urljoin(base, target)


@settings(max_examples=200, deadline=None)
@given(path=st.lists(KEYS, min_size=1, max_size=4), value=st.one_of(st.none(), st.integers(), TEXT),
       noise=st.dictionaries(KEYS, st.integers(), max_size=3))
def test_a_value_at_a_dotted_path_is_found_or_missing(path, value, noise):
    from durable_ingest.sources.paging import value_in

    document = value
    for key in reversed(path):
        document = {**noise, key: document}
    assert value_in(document, ".".join(path), "--cursor", "the page") == value
    missing = path[:-1] + [path[-1] + "-missing"]
    assert value_in(document, ".".join(missing), "--cursor", "the page") is None
