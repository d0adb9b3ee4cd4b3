"""Loading pages of a JSON API: pagination, retries, pages that fail, credentials, crashes
and reruns, against a real HTTP server on 127.0.0.1 (``benchmarks/page_server.py``)."""

import json
import sys
import time

import pytest

from conftest import REPO, finish_on_workers, kill_9, run_ingest, start_ingest, wait_until
from conftest import cli_load as load

sys.path.insert(0, str(REPO / "benchmarks"))
from page_server import PageServer  # noqa: E402

API_KEY = "k3y-Very-Secret-0042"
PASSWORD = "pa55-Also-Secret-0077"


def test_pages_with_an_end_then_until_the_first_empty_page(cli, backend):
    with PageServer(pages=4, records=25) as server:
        first = load(cli, backend, server.page_url, "--pages", "2-3")
        assert server.requests_by_page == {2: 1, 3: 1}

        rest = load(cli, backend, server.page_url, "--pages", "1-", "--concurrency", "1")

        assert server.requests_by_page == {1: 1, 2: 2, 3: 2, 4: 1, 5: 1}  # 5 is empty: the end
    assert (first["records"], first["tasks"]) == (50, 50)
    assert first["pages"] == {"new": 2, "already": 0, "failed": 0, "empty": 0, "http_retries": 0,
                              "records": 50, "fetched": 2}
    assert rest["run_id"] != first["run_id"]
    assert (rest["records"], rest["tasks"]) == (50, 50)
    assert rest["pages"]["new"] == 2 and rest["pages"]["already"] == 2 and rest["pages"]["empty"] == 1
    backend.assert_each_record_once(100, 0)
    first_names = backend.query("SELECT data FROM tasks WHERE title = 'task 0'")
    assert len(first_names) == 4  # each page counts its records from 0, as a file does


def test_gzip_encoded_ndjson_pages(cli, sqlite_backend):
    with PageServer(pages=3, records=40, fmt="ndjson", gzip=True) as server:
        summary = load(cli, sqlite_backend, server.page_url, "--pages", "1-")
        assert server.statuses[200] >= 4

    assert (summary["records"], summary["tasks"], summary["pages"]["new"]) == (120, 120, 3)
    sqlite_backend.assert_each_record_once(120, 0)


def test_one_document_url_mixed_with_a_file(cli, sqlite_backend, workdir):
    from conftest import people, write_records

    write_records(workdir / "local.json", people(7))
    with PageServer(pages=1, records=30) as server:
        url = server.url + "/users?page=1"
        summary = load(cli, sqlite_backend, workdir / "local.json", url)

    assert (summary["records"], summary["files_loaded"], summary["pages"]["new"]) == (37, 1, 1)
    sqlite_backend.assert_each_record_once(37, 0)


@pytest.mark.slow  # the retries' backoff
def test_failures_that_may_pass_are_retried_then_the_pages_load(cli, backend):
    script = {1: [500], 2: [429], 3: ["reset"], 4: ["slow:3"], 5: ["reset:partial"]}
    with PageServer(pages=5, records=10, script=script) as server:
        summary = load(cli, backend, server.page_url, "--pages", "1-5", "--http-timeout", "1")
        requests = dict(server.requests_by_page)

    assert requests == {1: 2, 2: 2, 3: 2, 4: 2, 5: 2}
    assert summary["pages"]["http_retries"] == 5 and summary["pages"]["failed"] == 0
    backend.assert_each_record_once(50, 0)


@pytest.mark.parametrize("status", [404, 410])
def test_a_404_or_410_after_the_first_page_ends_an_open_range_cleanly(cli, backend, status):
    with PageServer(pages=3, records=10, script={4: [status]}) as server:
        result = cli("load", server.page_url, "--pages", "1-", "--concurrency", "1",
                     env=backend.env())

        assert 5 not in server.requests_by_page

    assert result.exit_code == 0, result.output
    assert "bad input" not in result.stderr
    assert "pages: 4 fetched: 3 new, 0 already loaded, 0 failed" in result.stdout
    assert backend.counts() == (30, 0)


def test_a_404_on_the_first_page_of_an_open_range_is_an_error(cli, sqlite_backend):
    with PageServer(pages=3, records=10, script={1: [404]}) as server:
        result = cli("load", server.page_url, "--pages", "1-", "--concurrency", "1",
                     env=sqlite_backend.env())

    assert result.exit_code == 3, result.output
    assert f"bad input: {server.url}/users?page=1: HTTP 404" in result.stderr


def test_a_404_page_gets_one_errors_row_and_the_others_load(cli, backend):
    with PageServer(pages=3, records=10, script={2: [404]}) as server:
        result = cli("load", server.page_url, "--pages", "1-3", env=backend.env())

    assert result.exit_code == 3, result.output
    url = server.url + "/users?page=2"
    assert f"bad input: {url}: HTTP 404 Not Found: '" in result.stderr
    assert "pages: 3 fetched: 2 new, 0 already loaded, 1 failed" in result.stdout
    [message] = backend.error_messages()
    assert (message["error_type"], message["title"], message["path"]) == ("BadPage", url, url)
    assert "injected 404" in message["error"]  # the start of the body
    assert backend.counts() == (20, 1)
    run_id = result.stdout.split()[1]
    status = cli("status", run_id, env=backend.env())
    assert "pages: 3 fetched: 2 new, 0 already loaded, 1 failed | http retries 0" in status.output
    from durable_ingest.views import runs as operations
    from durable_ingest.ui import server as ui

    detail = operations.run_detail(backend.url, run_id)
    assert "pages fetched <b>3</b> · new <b>2</b>" in ui.pages_line(detail["pages"])


def test_a_page_that_never_answers_is_given_up_after_http_attempts(cli, sqlite_backend):
    with PageServer(pages=3, records=10, script={2: ["never:503"]}) as server:
        result = cli("load", server.page_url, "--pages", "1-3", "--http-attempts", "3",
                     env=sqlite_backend.env())
        assert server.requests_by_page[2] == 3

    assert result.exit_code == 3, result.output
    [message] = sqlite_backend.error_messages()
    assert "no answer after 3 attempts (last: HTTP 503 Service Unavailable)" in message["error"]
    assert sqlite_backend.counts() == (20, 1)


def test_fault_injection_every_record_lands_once(cli, backend):
    with PageServer(pages=20, records=20, fail_rate=0.1, reset_rate=0.02, seed=3) as server:
        summary = load(cli, backend, server.page_url, "--pages", "1-", "--http-attempts", "10",
                       "--concurrency", "4")
        statuses = dict(server.statuses)

    assert statuses.get(500, 0) + statuses.get(429, 0) + statuses.get("reset", 0) > 0
    assert summary["pages"]["new"] == 20 and summary["pages"]["failed"] == 0
    backend.assert_each_record_once(400, 0)


@pytest.mark.slow
def test_credentials_are_sent_and_never_printed_nor_stored(sqlite_backend, workdir):
    env = sqlite_backend.env()
    with PageServer(pages=3, records=5, require_headers={"X-Api-Key": API_KEY},
                    basic_auth=("reader", PASSWORD), script={3: [403]}) as server:
        url = server.page_url.replace("http://", f"http://reader:{PASSWORD}@")
        loaded = run_ingest("load", url, "--pages", "1-3", "--header", f"X-Api-Key: {API_KEY}",
                            env=env, cwd=workdir)
        unauthorised = run_ingest("load", url, "--pages", "1-1", env=env, cwd=workdir)
        assert all(h.get("X-Api-Key") == API_KEY for h in server.seen_headers[:3])
    run_id = loaded.stdout.split()[1]
    looks = [run_ingest(*args, env=env, cwd=workdir)
             for args in (["status"], ["status", run_id, "--json"], ["errors"], ["errors", "--json"])]

    assert loaded.returncode == 3, loaded.stderr
    assert "HTTP 403" in loaded.stderr and server.url + "/users?page=3" in loaded.stderr
    assert unauthorised.returncode == 3 and "HTTP 401" in unauthorised.stderr
    for process in [loaded, unauthorised, *looks]:
        assert API_KEY not in process.stdout + process.stderr
        assert PASSWORD not in process.stdout + process.stderr
    assert sqlite_backend.counts() == (10, 2)
    stored = b"".join(p.read_bytes() for p in workdir.rglob("*") if p.is_file())
    assert API_KEY.encode() not in stored and PASSWORD.encode() not in stored


@pytest.mark.slow
@pytest.mark.parametrize("how", ["same command", "resume"])
def test_kill_9_mid_pagination_then_again_fetches_no_page_twice(backend, workdir, parking, how):
    # Each page's first answer is slow, so the kill comes while later pages are still unasked;
    # chunks from 2 on are held, so it certainly comes mid-run.
    script = {page: ["slow:0.2"] for page in range(1, 41)}
    with PageServer(pages=40, records=25, script=script) as server:
        args = ["load", server.page_url, "--pages", "1-", "--chunk-size", "60"]
        process = start_ingest(*args, env={**backend.env(), **parking.env(chunks="2-")},
                               cwd=workdir)
        parking.wait_parked(index=2, process=process)
        wait_until(lambda: backend.rows_so_far() >= 100, 60, "the first chunks", process=process)
        assert kill_9(process) == -9
        fetched_before = dict(server.requests_by_page)

        if how == "resume":
            [run_id] = {w for w in backend.workflow_ids(workdir) if len(w) == len("ingest-") + 20}
            again = run_ingest("resume", run_id, "--json", env=backend.env(), cwd=workdir)
        else:
            again = run_ingest(*args, "--json", env=backend.env(), cwd=workdir)
        requests = dict(server.requests_by_page)

    assert again.returncode == 0, again.stderr
    assert 0 < len(fetched_before) < 40
    twice = [page for page in range(1, 41) if requests[page] > 1]
    assert len(twice) <= 2, (twice, requests)  # at most the pages in flight at the kill
    backend.assert_each_record_once(1000, 0)
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert (summary["tasks"], summary["pages"]["new"]) == (1000, 40)


@pytest.mark.slow
def test_detached_page_run_on_workers(postgres_backend, workdir):
    env = postgres_backend.env()
    with PageServer(pages=12, records=15) as server:
        queued = run_ingest("load", server.page_url, "--pages", "1-12", "--chunk-size", "40",
                            "--detach", "--json", env=env, cwd=workdir)
        assert queued.returncode == 0, queued.stderr
        run_id = json.loads(queued.stdout)["run_id"]
        finish_on_workers(run_id, env, workdir)
        assert all(count == 1 for count in server.requests_by_page.values())
    postgres_backend.assert_each_record_once(180, 0)
    status = json.loads(run_ingest("status", run_id, "--json", env=env, cwd=workdir).stdout)
    assert status["pages"]["new"] == 12


def test_usage_errors_are_one_line_before_any_work(cli, sqlite_backend, workdir):
    cases = [
        (["http://127.0.0.1:9/users?page={page}"], "--pages START-END"),
        (["http://127.0.0.1:9/all", "--pages", "1-3"], "--pages is for URL inputs"),
        (["http://127.0.0.1:9/u?page={page}", "--pages", "3-1"], "END >= START"),
        (["http://127.0.0.1:9/u?page={page}", "--pages", "x"], "expected START-END"),
        (["http://127.0.0.1:9/u", "--header", "NoColon"], "expected 'Name: value'"),
        (["http://127.0.0.1:9/u", "--header", "X-Key: ab\rcd"], "control character"),
        (["http://bob:hun/ter22@127.0.0.1/u"], "must be percent-encoded"),
    ]
    for args, expected in cases:
        result = cli("load", *args, env=sqlite_backend.env())
        assert result.exit_code == 2, result.output
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("Error: ") and expected in line
        assert "ab\rcd" not in line and "ter22" not in line
    assert not (workdir / "app.sqlite").exists()


def test_redirects_keep_credentials_within_the_origin_only(cli, sqlite_backend):
    with PageServer(pages=3, records=10) as elsewhere, \
            PageServer(pages=3, records=10, require_headers={"X-Api-Key": API_KEY}, script={
                2: [f"redirect:{elsewhere.url}/users?page=2"], 3: ["redirect:/users?page=3"]}) as api:
        summary = load(cli, sqlite_backend, api.page_url, "--pages", "1-3",
                       "--header", f"X-Api-Key: {API_KEY}")
        assert api.requests_by_page == {1: 1, 2: 1, 3: 2} and api.statuses[401] == 0
        assert elsewhere.requests_by_page == {2: 1}
        assert all("X-Api-Key" not in headers for headers in elsewhere.seen_headers)

    assert summary["pages"]["new"] == 3
    sqlite_backend.assert_each_record_once(30, 0)


def test_failing_pages_in_a_row_stop_a_range_and_the_rest_is_one_errors_row(cli, sqlite_backend):
    script = {page: ["never:500"] for page in (2, 3, 4)}
    with PageServer(pages=8, records=10, script=script) as server:
        result = cli("load", server.page_url, "--pages", "1-8", "--http-attempts", "1",
                     "--concurrency", "1", env=sqlite_backend.env())
        assert set(server.requests_by_page) == {1, 2, 3, 4}

    assert result.exit_code == 3, result.output
    assert "pages: 5 fetched: 1 new, 0 already loaded, 4 failed" in result.stdout
    titles = sorted(m["title"] for m in sqlite_backend.error_messages())
    assert titles[-1] == f"{server.page_url} pages 5-8"
    assert "not fetched: the 3 pages before them failed" in sqlite_backend.error_messages()[-1]["error"]
    assert sqlite_backend.counts() == (10, 4)


def test_an_api_that_ignores_the_page_number_ends_an_open_range(cli, sqlite_backend):
    with PageServer(pages=3, records=10) as server:
        summary = load(cli, sqlite_backend, server.url + "/users?page=1&p={page}", "--pages", "1-",
                       "--concurrency", "1")

    assert summary["pages"] == {"new": 1, "already": 0, "failed": 0, "empty": 1,
                                "http_retries": 0, "records": 10, "fetched": 2}
    sqlite_backend.assert_each_record_once(10, 0)


@pytest.mark.slow
def test_a_killed_run_with_credentials_waits_for_them(sqlite_backend, workdir, parking):
    """Another command recovers the killed run without its --header: it must neither fetch
    without it nor hang on it; the same command then finishes the run exactly once."""
    from conftest import people, write_records

    env = sqlite_backend.env()
    script = {page: ["slow:0.2"] for page in range(1, 31)}
    with PageServer(pages=30, records=20, script=script,
                    require_headers={"X-Api-Key": API_KEY}) as server:
        args = ["load", server.page_url, "--pages", "1-", "--chunk-size", "50",
                "--header", f"X-Api-Key: {API_KEY}"]
        process = start_ingest(*args, env={**env, **parking.env(chunks="2-")}, cwd=workdir)
        parking.wait_parked(index=2, process=process)
        wait_until(lambda: sqlite_backend.rows_so_far() >= 50, 60, "the first chunks",
                   process=process)
        assert kill_9(process) == -9  # chunks 0 and 1 in (two pages each), the rest held
        other = run_ingest("load", write_records(workdir / "other.json", people(5)), "--json",
                           env=env, cwd=workdir, timeout=25)  # would hang 30 s on the run
        again = run_ingest(*args, "--json", env=env, cwd=workdir)
        unauthorised = server.statuses[401]

    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["tasks"] == 5
    assert again.returncode == 0, again.stderr
    assert unauthorised == 0
    assert json.loads(again.stdout)["pages"]["new"] == 30
    sqlite_backend.assert_each_record_once(605, 0)


# -- the pieces, in process ----------------------------------------------------------------
def test_pages_and_urls_parse_with_credentials_kept_apart():
    from durable_ingest.sources.credentials import Credentials
    from durable_ingest.sources.http import parse_pages, url_source

    assert parse_pages("1-100") == (1, 100) and parse_pages("0-") == (0, None)
    assert parse_pages("7") == (7, 7)
    credentials = Credentials()
    credentials.add_header("X-Api-Key:  abc123 ")
    source = url_source("https://me:s%40cret@API.example.com:8443/u?page={page}", (2, None),
                        credentials)

    assert source.template == "https://API.example.com:8443/u?page={page}"
    assert source.url(3) == "https://API.example.com:8443/u?page=3"
    assert source.describe() == "https://API.example.com:8443/u?page={page} pages 2-"
    headers = credentials.for_url(source.url(3))
    assert headers["X-Api-Key"] == "abc123"
    assert headers["Authorization"] == "Basic bWU6c0BjcmV0"  # me:s@cret
    assert "Authorization" not in credentials.for_url("https://other.example.com/u")
    assert credentials.scrub("echo: abc123 and s@cret") == "echo: *** and ***"
    assert Credentials.loads(credentials.dumps()) == credentials


def test_retry_after_and_backoff_are_capped():
    from durable_ingest.contract import HttpPolicy
    from durable_ingest.sources import fetcher as fetching

    class Answer:
        def __init__(self, value):
            self.headers = {"Retry-After": value} if value is not None else {}

    assert fetching.retry_after(Answer("3")) == 3.0
    assert fetching.retry_after(Answer(None)) is None and fetching.retry_after(Answer("soon")) is None
    in_a_minute = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 90))
    assert 80 < fetching.retry_after(Answer(in_a_minute)) <= 91
    assert fetching.retry_after(Answer("nan")) is None and fetching.retry_after(Answer("inf")) is None
    fetcher = fetching.Fetcher("ingest-x", HttpPolicy(backoff=1.0), fetching.Credentials(), "/tmp/x")
    assert fetcher.backoff(1, 3600.0) == fetching.MAX_RETRY_AFTER_SEC
    assert fetcher.backoff(1, -5.0) == 0.0
    assert 0.5 <= fetcher.backoff(1, None) <= 1.0 and 4.0 <= fetcher.backoff(4, None) <= 8.0
    assert fetcher.backoff(30, None) <= fetching.MAX_BACKOFF_SEC


def test_the_rate_limiter_spaces_requests_across_threads():
    from concurrent.futures import ThreadPoolExecutor

    from durable_ingest.sources.fetcher import Limiter

    limiter, times = Limiter(rate=20.0), []
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: (limiter.wait(), times.append(time.monotonic())), range(8)))
    # The 8th request's turn is 7/20 s after the first's: it can be late, never early.
    assert max(times) - min(times) >= 0.3
