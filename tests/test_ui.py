"""``ingest ui`` in a real headless browser (Debian's Chromium, driven by selenium): finished,
incomplete, interrupted and live runs on Postgres, with a password in the database URL."""

import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import (PG_SERVER, Backend, fresh_postgres, in_ci, kill_9, people, run_ingest,
                      start_ingest, wait_until, write_records)

pytestmark = pytest.mark.slow  # a browser, a server and four loads
PASSWORD = "S3cret-Pw-never-shown"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser(workdir):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        if in_ci():
            pytest.fail(f"{CHROMIUM} or {CHROMEDRIVER} missing: .ci/run installs chromium and chromium-driver")
        pytest.skip("no chromium/chromedriver here (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,1000",
                 f"--user-data-dir={workdir / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


@pytest.fixture
def secret_backend(workdir):
    """A Postgres database whose URL carries a password (this server trusts and ignores it)."""
    yield from fresh_postgres(PG_SERVER.replace("://postgres@", f"://postgres:{PASSWORD}@", 1))


def load(backend, workdir, *args, env=None):
    result = run_ingest("load", *args, "--json", env={**backend.env(), **(env or {})}, cwd=workdir)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def start_ui(backend, workdir):
    process = start_ingest("ui", "--port", "0", cwd=workdir, env=backend.env())
    line = process.stderr.readline()  # "ingest ui on http://127.0.0.1:PORT/ (Ctrl-C to stop)"
    url = re.search(r"http://\S+/", line)
    assert url, line
    return process, url.group(0)


def test_the_runs_and_a_run_in_a_browser(secret_backend, workdir, browser, parking):
    from selenium.webdriver.common.by import By

    backend = secret_backend
    done = load(backend, workdir, write_records(workdir / "done.json", people(60)),
                "--chunk-size", "20", "--fail-task", "3", "--retry-interval", "0.01")
    poison = write_records(workdir / "poison.json", people(40, 100))
    for _ in range(4):  # a chunk that kills its process every time, until it is given up
        run_ingest("load", poison, "--chunk-size", "20", cwd=workdir,
                   env={**backend.env(), "INGEST_FAULT_CRASH_CHUNKS": "1",
                        "INGEST_MAX_RECOVERY_ATTEMPTS": "1"})
        runs = json.loads(run_ingest("status", "--json", env=backend.env(), cwd=workdir).stdout)
        if runs[0]["state"] == "incomplete":
            break
    rows = backend.rows_so_far()
    killed = start_ingest("load", write_records(workdir / "killed.ndjson", people(200, 200), "ndjson"),
                          "--chunk-size", "20", cwd=workdir,
                          env={**backend.env(), **parking.env(chunks="1-")})
    parking.wait_parked(index=1, process=killed)
    wait_until(lambda: backend.rows_so_far() >= rows + 20, 60, "the killed run's first chunk",
               process=killed)
    assert kill_9(killed) == -9  # chunk 0 in, the rest held
    live = start_ingest("load", write_records(workdir / "live.ndjson", people(900, 500), "ndjson"),
                        "--chunk-size", "20", "--concurrency", "1", cwd=workdir,
                        env={**backend.env(), **parking.env(chunks=2), "DBOS__VMID": "live"})
    ui, url = start_ui(backend, workdir)
    try:
        parking.wait_parked(index=2, executor="live", process=live)  # running, 40 tasks so far
        wait_until(lambda: len(json.loads(fetch(url + "api/runs"))) == 4, 60, "four runs")
        browser.get(url)
        rows = table_rows(browser)  # one snapshot: the live page replaces its rows every second
        parking.release()  # the live run goes on
        states = {run: state for run, state, _, _ in rows}
        assert sorted(states.values()) == ["done", "incomplete", "interrupted", "running"]
        assert [(tasks, errors) for run, _, tasks, errors in rows if run == done["run_id"]] == [("59", "1")]
        browser.save_screenshot(str(workdir / "runs.png"))

        [live_id] = [r for r, s in states.items() if s == "running"]
        before = tasks_of(browser, live_id)
        wait_until(lambda: tasks_of(browser, live_id) not in (before, None), 30,
                   "the live run's tasks to change without a reload")
        assert PASSWORD not in browser.page_source

        browser.get(f"{url}runs/{done['run_id']}")
        assert len(browser.find_elements(By.CSS_SELECTOR, "svg#timeline rect.chunk")) == 3
        assert browser.find_elements(By.CSS_SELECTOR, "svg#throughput rect")
        [group] = browser.find_elements(By.CSS_SELECTOR, "#errors tr.error-group")
        assert "InjectedFailure" in group.text and "done.json record 4" in group.text
        assert f"ingest retry {done['run_id']}" in browser.find_element(By.CLASS_NAME, "action").text
        assert PASSWORD not in browser.page_source
        browser.save_screenshot(str(workdir / "run.png"))

        for page in ("", f"runs/{done['run_id']}", "api/runs", f"api/runs/{live_id}"):
            assert PASSWORD not in fetch(url + page)
        assert "ingest resume" in fetch(f"{url}runs/{[r for r, s in states.items() if s == 'interrupted'][0]}")
    finally:
        for process in (ui, live):
            kill_9(process)


@pytest.mark.parametrize("records, chunk_size", [(1, 5000), (1000, 5000), (60, 20)])
def test_the_charts_of_a_tiny_run_are_right(workdir, browser, records, chunk_size):
    """A run of one record, of one chunk, of a second or less: the throughput chart's axis
    runs to the run's duration and its rate is what the run did (records / duration for a
    single bar), never a millisecond and a million records/s; every chunk's bar is seen."""
    from selenium.webdriver.common.by import By

    backend = Backend("sqlite", f"sqlite:///{workdir / 'app.sqlite'}")
    data = write_records(workdir / "tiny.json", people(records))
    run_id = load(backend, workdir, data, "--chunk-size", str(chunk_size))["run_id"]
    detail = json.loads(run_ingest("status", run_id, "--json", env=backend.env(), cwd=workdir).stdout)
    ui, url = start_ui(backend, workdir)
    try:
        browser.get(f"{url}runs/{run_id}")
        texts = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "svg#throughput text")]
        bars = browser.find_elements(By.CSS_SELECTOR, "svg#timeline rect.chunk")
        widths = [float(b.get_attribute("width")) for b in bars]
        xs = [float(b.get_attribute("x")) for b in bars]
    finally:
        kill_9(ui)

    seconds = detail["duration_s"]
    assert texts[0] == "0 s"
    axis_end = float(texts[1].split()[0].replace(",", ""))
    assert texts[1].endswith(" s") and abs(axis_end - seconds) <= max(0.05, seconds * 0.05), texts
    rate = float(texts[2].split()[1].replace(",", ""))
    if texts[2].startswith("average"):  # one bar: the run's own rate
        assert abs(rate - records / seconds) <= max(1, 0.05 * records / seconds), (texts, seconds)
    assert rate <= records / min(seconds, 1.0) + 1, (texts, seconds)  # at most the run in <= 1 s
    assert len(bars) == -(-records // chunk_size)
    assert all(w >= 3 and 130 <= x and x + w <= 720 for w, x in zip(widths, xs)), (widths, xs)


def table_rows(browser) -> list:
    """(run, state, tasks, errors) of every row of the runs table, read in one script call."""
    return [tuple(row) for row in browser.execute_script(
        "return [...document.querySelectorAll('tr.run')].map(r => [r.dataset.run,"
        " r.children[1].textContent, r.querySelector('.tasks').textContent,"
        " r.querySelector('.errors').textContent])")]


def tasks_of(browser, run_id: str):
    return next((tasks for run, _, tasks, _ in table_rows(browser) if run == run_id), None)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def test_ui_on_an_empty_folder_shows_no_runs_and_creates_nothing(workdir):
    process, url = start_ui(Backend("sqlite", f"sqlite:///{workdir / 'app.sqlite'}"), workdir)
    try:
        assert "no runs yet" in fetch(url)
        assert fetch(url + "api/runs") == "[]"
        with pytest.raises(urllib.error.HTTPError) as refused:
            fetch(url + "runs/ingest-0123456789abcdef0123?files=abc")
        assert refused.value.code == 400
    finally:
        kill_9(process)
    assert [p.name for p in Path(workdir).iterdir()] == []



def test_the_runs_list_names_each_runs_table_and_label():
    from durable_ingest.ui.server import runs_fragment

    row = {"run_id": "ingest-0123456789abcdef0123", "state": "done", "files": 1, "records": 3,
           "tasks": 3, "errors": 0, "retries": 0, "started_at": 0, "duration_s": 1.0,
           "records_per_s": 3.0, "dataset": "a.json"}
    html = runs_fragment([row | {"table": "people", "label": "nightly<1>"}, row | {"table": "tasks"}])

    assert "<th class=l>table</th><th class=l>label</th>" in html
    assert "<td class='l table'>people</td><td class='l label'>nightly&lt;1&gt;</td>" in html
    assert "<td class='l table'>tasks</td><td class='l label'></td>" in html


def test_the_runs_page_shows_the_schedules_with_their_last_run_and_a_link_to_their_runs():
    from durable_ingest.ui.server import runs_fragment, schedules_fragment

    schedule = {"name": "hourly<x>", "cron": "0 * * * *", "tz": "UTC", "paused": False,
                "next_tick": "2026-12-08T10:00:00+00:00", "runs": 3, "skipped": 1,
                "last_run": {"run_id": "ingest-0123456789abcdef0123", "state": "SUCCESS"}}
    html = schedules_fragment([schedule, schedule | {"paused": True, "last_run": None}])
    row = {"run_id": "ingest-0123456789abcdef0123", "state": "done", "files": 1, "records": 3,
           "tasks": 3, "errors": 0, "retries": 0, "started_at": 0, "duration_s": 1.0,
           "records_per_s": 3.0, "dataset": "a.json", "schedule": {"name": "hourly", "tick": "t"}}

    assert "<a href='/?schedule=hourly&lt;x&gt;'>hourly&lt;x&gt;</a>" in html
    assert "2026-12-08T10:00:00+00:00</td><td>3</td><td>1</td>" in html
    assert "<a href='/runs/ingest-0123456789abcdef0123'>ingest-0123456789abcdef0123</a> SUCCESS" in html
    assert "paused" in html and "no run yet" in html
    assert schedules_fragment([]) == ""
    assert "<td class='l label'>@hourly</td>" in runs_fragment([row])


def test_ctrl_c_stops_the_ui_with_no_error_and_a_port_in_use_says_what_to_do(workdir):
    import signal

    backend = Backend("sqlite", f"sqlite:///{workdir / 'app.sqlite'}")
    process, url = start_ui(backend, workdir)
    port = url.rstrip("/").rsplit(":", 1)[1]
    second = run_ingest("ui", "--port", port, env=backend.env(), cwd=workdir)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)

    assert second.returncode == 1
    assert second.stderr.strip() == (f"Error: port {port} of 127.0.0.1 is in use (another ingest "
                                      "ui?): choose another with --port N, or --port 0 for any "
                                      "free one")
    assert process.returncode == 0
    assert stderr.strip() == "ingest ui stopped"


def test_beyond_loopback_the_ui_needs_a_token(workdir):
    backend = Backend("sqlite", f"sqlite:///{workdir / 'app.sqlite'}")
    refused = run_ingest("ui", "--host", "0.0.0.0", "--port", "0", env=backend.env(), cwd=workdir)

    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "Error: ingest ui on 0.0.0.0 would show your runs, file names and record data (error "
        "samples) to anyone who reaches it: give it a token, --token TOKEN or INGEST_UI_TOKEN, "
        "or serve on 127.0.0.1")


def test_with_a_token_every_request_shows_it_and_it_is_never_printed(workdir):
    token = "tok-3f9a-never-printed"
    backend = Backend("sqlite", f"sqlite:///{workdir / 'app.sqlite'}")
    process = start_ingest("ui", "--host", "0.0.0.0", "--port", "0", cwd=workdir,
                           env={**backend.env(), "INGEST_UI_TOKEN": token})
    line = process.stderr.readline()
    port = re.search(r"http://0\.0\.0\.0:(\d+)/", line).group(1)
    url = f"http://127.0.0.1:{port}/"

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args):
            return None

    def status_of(path, headers=None):
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(urllib.request.Request(url + path, headers=headers or {}),
                             timeout=30) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as answered:
            return answered.code, answered.headers, answered.read().decode()

    try:
        assert status_of("")[0] == 401
        assert status_of("api/runs")[0] == 401
        assert status_of("?token=tok-3f9a-never-printeD")[0] == 401
        assert status_of("", {"Cookie": "ingest_ui=" + token})[0] == 401  # not the token itself
        code, headers, _ = status_of("runs/x?files=2&token=" + token)
        assert (code, headers["Location"]) == (303, "/runs/x?files=2")
        cookie = headers["Set-Cookie"].split(";")[0]
        assert token not in cookie and "HttpOnly" in headers["Set-Cookie"]
        with_cookie = status_of("api/runs", {"Cookie": cookie})
        assert (with_cookie[0], with_cookie[2]) == (200, "[]")
        assert status_of("api/runs", {"Authorization": f"Bearer {token}"})[2] == "[]"
    finally:
        kill_9(process)
    _, stderr = process.communicate(timeout=30)
    assert token not in line + stderr
