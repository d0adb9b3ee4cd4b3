"""Fixtures: real databases, really started.

Every test runs in its own temporary directory (so the SQLite default files are fresh) and,
for Postgres, in its own freshly created databases, dropped afterwards. Postgres is used
when reachable at INGEST_TEST_PG (default postgresql://postgres@127.0.0.1:5432); under CI
(CI=true) an unreachable Postgres fails the run instead of skipping, and so does any other
missing prerequisite (``skip_unless_ci``).
"""

import contextlib
import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Optional

import psycopg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from durable_ingest.cli import main

PG_SERVER = os.environ.get("INGEST_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
REPO = Path(__file__).resolve().parents[1]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_unless_ci(reason: str) -> None:
    """Skip a test whose prerequisite is missing; under CI, fail it: CI must run everything."""
    if in_ci():
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def postgres_available() -> bool:
    try:
        with psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _drop(name: str) -> None:
    # Bounded: DROP DATABASE waits for every backend of the server to acknowledge it, so one
    # stuck session anywhere (another suite's) would otherwise hang this test's teardown.
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=10,
                         options="-c statement_timeout=120s") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the Postgres server, shared by parallel test processes ------------------------------------
# The suite runs in several processes (pytest-xdist, see pyproject's addopts). Every test holds
# a shared lock on the server for its duration; a test that restarts the server
# (``@pytest.mark.restarts_postgres``) holds it exclusively, so no other test loses its
# connections halfway. A writer first takes the turnstile, so new readers queue behind it.
SERVER_LOCK_TIMEOUT = 600


def _flock(handle, mode: int, what: str) -> None:
    deadline = time.monotonic() + SERVER_LOCK_TIMEOUT
    while True:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                pytest.fail(f"timed out after {SERVER_LOCK_TIMEOUT} s waiting for {what}")
            time.sleep(0.05)


@pytest.fixture(scope="session")
def _server_lock_dir(tmp_path_factory) -> Path:
    # The parent of the base temp dir is shared by every xdist worker of one run.
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


@pytest.fixture(autouse=True)
def _postgres_server_lock(request, _server_lock_dir):
    exclusive = request.node.get_closest_marker("restarts_postgres") is not None
    with open(_server_lock_dir / "postgres-server.turnstile", "a+") as turnstile, \
            open(_server_lock_dir / "postgres-server.lock", "a+") as lock:
        _flock(turnstile, fcntl.LOCK_EX, "the Postgres server's turnstile")
        try:
            _flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH,
                   "tests restarting the Postgres server" if not exclusive else
                   "other tests to let go of the Postgres server")
        finally:
            if not exclusive:
                fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            fcntl.flock(turnstile, fcntl.LOCK_UN)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh working directory with no ingest-related environment leaking in."""
    for var in ("DATABASE_URL", "DBOS_SYSTEM_DATABASE_URL", "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_METRICS_EXPORTER",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


class Backend:
    """One database a test loads into, and how to look at what landed there."""

    def __init__(self, name: str, url: str, system_url: str | None = None):
        self.name, self.url, self.system_url = name, url, system_url

    def env(self) -> dict:
        env = {"DATABASE_URL": self.url}
        if self.system_url:
            env["DBOS_SYSTEM_DATABASE_URL"] = self.system_url
        return env

    def query(self, sql: str, **params):
        engine = sa.create_engine(self.url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text(sql), params).fetchall()
        finally:
            engine.dispose()

    def scalar(self, sql: str, **params):
        return self.query(sql, **params)[0][0]

    def counts(self) -> tuple:
        return self.scalar("SELECT count(*) FROM tasks"), self.scalar("SELECT count(*) FROM errors")

    def error_messages(self) -> list:
        rows = self.query("SELECT message FROM errors ORDER BY position")
        return [r[0] if isinstance(r[0], dict) else json.loads(r[0]) for r in rows]

    def assert_each_record_once(self, records: int, errors: int) -> None:
        """``records`` records landed, each exactly once: ``errors`` of them in errors, the
        rest in tasks, no source key twice and none in both."""
        assert self.counts() == (records - errors, errors)
        assert self.scalar("SELECT count(DISTINCT source_key) FROM tasks") == records - errors
        keys = self.scalar("SELECT count(*) FROM (SELECT source_key FROM tasks UNION "
                           "SELECT source_key FROM errors) AS k")
        assert keys == records

    def rows_so_far(self) -> int:
        """Rows in tasks + errors; 0 while the tables don't exist yet."""
        try:
            return sum(self.counts())
        except sa.exc.DBAPIError:  # no database or no tables yet
            return 0

    def system_url_for(self, cwd: Path) -> str:
        """DBOS's system database of an ``ingest`` run in ``cwd``, derived as database.py does."""
        if self.system_url:
            return self.system_url
        if self.name == "postgres":
            return f"{self.url}_dbos_sys"
        from durable_ingest.database import derived_system_url

        with contextlib.chdir(cwd):  # a relative SQLite path is the run's working directory's
            return derived_system_url(self.url)

    def workflow_ids(self, cwd: Path) -> set:
        """IDs in DBOS's workflow_status table; empty while it doesn't exist yet. Reads only:
        a SQLite file is opened read-only, so looking never creates it."""
        url = self.system_url_for(cwd)
        try:
            if url.startswith("sqlite:///"):
                path = url[len("sqlite:///"):]
                if not os.path.exists(path):
                    return set()
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as conn:
                    rows = conn.execute("SELECT workflow_uuid FROM workflow_status").fetchall()
            else:
                with psycopg.connect(url, connect_timeout=3) as conn:
                    rows = conn.execute("SELECT workflow_uuid FROM dbos.workflow_status").fetchall()
        except (sqlite3.Error, psycopg.Error):  # not created yet, or being created
            return set()
        return {r[0] for r in rows}


@pytest.fixture
def sqlite_backend(workdir):
    return Backend("sqlite", f"sqlite:///{workdir / 'app.sqlite'}")


@pytest.fixture
def postgres_backend(workdir):
    yield from fresh_postgres()


def fresh_postgres(server: str = PG_SERVER):
    """For a fixture: a Backend on a new database name of ``server`` (by default the test
    server; another URL of it can carry a password), dropped with its system database after."""
    if not postgres_available():
        skip_unless_ci(f"Postgres not reachable at {PG_SERVER}")
    name = f"di_test_{uuid.uuid4().hex[:12]}"
    yield Backend("postgres", f"{server}/{name}")
    _drop(name)
    _drop(f"{name}_dbos_sys")


# Every in-process load on Postgres takes 2.5-4.5 s (databases created, DBOS's schema
# migrated), so the Postgres variants belong to the slow layer; the fast one runs on SQLite.
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def backend(request):
    return request.getfixturevalue(f"{request.param}_backend")


@pytest.fixture
def cli(monkeypatch):
    """Run ``ingest`` in-process, as a user would type it; returns the click Result."""

    def invoke(*args, env=None, input=None):
        runner = CliRunner()
        return runner.invoke(main, [str(a) for a in args], env=env, input=input,
                             catch_exceptions=False)

    return invoke


def cli_load(cli, backend, *args, code=0) -> dict:
    """``ingest load ARGS --json`` in-process into ``backend``: its summary, once it exited
    with ``code``."""
    result = cli("load", *args, "--json", env=backend.env())
    assert result.exit_code == code, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


INGEST = [sys.executable, "-m", "durable_ingest.cli"]


def run_ingest(*args, env=None, cwd=None, timeout=300, input=None):
    """Run ``ingest`` as a real subprocess, to its end."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*INGEST, *map(str, args)], env=full_env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, input=input)


_started: list = []


def start_ingest(*args, env=None, cwd=None, **popen) -> subprocess.Popen:
    """Start ``ingest ARGS`` as a real subprocess and return at once.

    ``env`` is added to this process's environment. stdout and stderr are text pipes unless
    ``popen`` says otherwise (any other ``Popen`` argument goes through too). A process still
    running when its test ends is killed (see ``_reap_ingest_processes``), so a failing test
    never leaves one behind; the test itself still bounds every wait with a timeout.
    """
    options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **popen}
    process = subprocess.Popen([*INGEST, *map(str, args)], env={**os.environ, **(env or {})},
                               cwd=cwd, **options)
    _started.append(process)
    return process


def kill_9(process: subprocess.Popen, timeout: float = 30) -> int:
    """SIGKILL the process and reap it; its return code: ``-9`` when the kill landed,
    another one when the process had ended by itself first."""
    process.send_signal(signal.SIGKILL)
    return process.wait(timeout=timeout)


def output_of(process: subprocess.Popen, timeout: float = 30) -> tuple:
    """(stdout, stderr) of a process that has ended or is ending, for a failure message."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        return ("<still running>", "")


def wait_until(predicate: Callable, timeout: float, what, *, interval: float = 0.05,
               process: Optional[subprocess.Popen] = None):
    """Poll ``predicate`` until it returns something truthy, and return that.

    Fails the test, naming ``what`` it waited for (a string, or a function giving one at
    that moment), once ``timeout`` seconds have passed, or as soon as ``process`` (when
    given) has ended, since what it waits for can no longer come from it.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if process is not None and process.poll() is not None:
            pytest.fail(f"process ended (exit {process.returncode}) while waiting for "
                        f"{what() if callable(what) else what}: {output_of(process)}")
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")
        time.sleep(interval)


class Parking:
    """Drives the park fault hook (``steps/faults.py``) over one folder: a process started
    with ``env()`` holds the chosen chunks until the test releases them, so the test sees
    the run in that state for certain instead of racing it."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def env(self, chunks="all", at: str = "start") -> dict:
        """Variables to merge into a process's environment: park ``chunks`` (``2``,
        ``"2,5"``, ``"4-"``, ``"all"``) at ``at`` (``start`` or ``commit``)."""
        return {"INGEST_FAULT_PARK_DIR": str(self.folder), "INGEST_FAULT_PARK_CHUNKS": str(chunks),
                "INGEST_FAULT_PARK_AT": at}

    def parked(self) -> list:
        """The markers of the chunks parked so far (released ones too): dicts of index, pid,
        executor and stage."""
        found = []
        for path in sorted(self.folder.glob("parked-*.json")):
            try:
                found.append(json.loads(path.read_text()))
            except (OSError, ValueError):  # written by os.replace: whole or absent
                continue
        return found

    def wait_parked(self, index: Optional[int] = None, executor: Optional[str] = None,
                    process: Optional[subprocess.Popen] = None, count: int = 1,
                    timeout: float = 90) -> list:
        """Wait until at least ``count`` chunks (of ``index``, of ``executor``, when given) are
        parked; their markers. Fails if ``process`` ends first."""

        def matching() -> list:
            found = [m for m in self.parked() if (index is None or m["index"] == index)
                     and (executor is None or m["executor"] == executor)]
            return found if len(found) >= count else []

        return wait_until(matching, timeout, lambda: f"{count} parked chunk(s) (index {index}, "
                          f"executor {executor}); parked so far: {self.parked()}",
                          interval=0.02, process=process)

    def release(self, index="all") -> None:
        """Let chunk ``index`` (or every chunk, now and later) go on."""
        (self.folder / f"release-{index}").touch()


@pytest.fixture
def parking(tmp_path) -> Parking:
    """A ``Parking`` over ``tmp_path / "park"``."""
    return Parking(tmp_path / "park")


@pytest.fixture(autouse=True)
def _reap_ingest_processes():
    """Kill what ``start_ingest`` started and a test left running (it failed halfway)."""
    yield
    while _started:
        process = _started.pop()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def finish_on_workers(run_id: str, env: dict, cwd: Path, workers: int = 2, timeout: float = 90) -> None:
    """Start ``workers`` ``ingest worker`` processes, wait until the (detached) run is done,
    then stop them with SIGTERM."""
    started = [start_ingest("worker", "--worker-id", f"w{n}", env=env, cwd=cwd)
               for n in range(1, workers + 1)]

    def done() -> bool:
        status = run_ingest("status", run_id, "--json", env=env, cwd=cwd)
        return status.returncode == 0 and json.loads(status.stdout)["state"] == "done"

    try:
        wait_until(done, timeout, "the workers to finish the run", interval=0.3)
    finally:
        for worker in started:
            worker.send_signal(signal.SIGTERM)
        for worker in started:
            worker.communicate(timeout=60)


def write_records(path: Path, records: list, shape: str = "envelope") -> Path:
    """Write records as a randomuser envelope, a bare array or NDJSON."""
    if shape == "ndjson":
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    elif shape == "array":
        path.write_text(json.dumps(records))
    else:
        path.write_text(json.dumps({"results": records, "info": {"seed": "t", "results": len(records)}}))
    return path


def people(count: int, start: int = 0) -> list:
    """Small randomuser-like records, distinct and easy to check."""
    return [
        {"gender": "female" if i % 2 else "male",
         "name": {"title": "Ms", "first": f"first{i}", "last": f"Last-{i}"},
         "location": {"street": {"number": i, "name": "Main street"}, "city": "Zürich"},
         "tags": ["a", {"b": "c"}], "age": i, "ok": True, "none": None}
        for i in range(start, start + count)
    ]


# -- the in-process layer: DBOS launched once per test process ------------------------------
class InProcess:
    """DBOS launched in this process on SQLite files of a temporary directory, with the
    workflows registered, so tests call ``integration``'s steps and workflows and ``store``'s
    functions directly and look at the rows. Launched once; a test that starts DBOS its own
    way (the CLI in-process) stops it first, and the next in-process test launches it again
    (tests of the ``inprocess`` xdist group run one after the other, so that is rare)."""

    def __init__(self, root: Path):
        from durable_ingest import database

        self.root = root
        self.databases = database.resolve(f"sqlite:///{root / 'app.sqlite'}",
                                          f"sqlite:///{root / 'dbos.sqlite'}")
        database.upgrade_schema(self.databases.app_url)
        self.engine = sa.create_engine(self.databases.app_url)
        self.running = False
        self.files = 0

    def start(self) -> None:
        from durable_ingest.runtime import launch as app
        from durable_ingest import integration  # noqa: F401  registers the workflows

        if not self.running:
            app.launch(self.databases, concurrency=2, executor_id="inprocess-tests")
            self.running = True

    def stop(self) -> None:
        from durable_ingest.runtime import launch as app

        if self.running:
            app.shutdown()
            self.running = False

    def query(self, sql: str, **params) -> list:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).fetchall()

    def messages(self, run_id: str) -> list:
        rows = self.query("SELECT message FROM errors WHERE run_id = :r ORDER BY position, id", r=run_id)
        return [json.loads(m) if isinstance(m, str) else m for (m,) in rows]

    def counts(self, run_id: str) -> tuple:
        return (self.query("SELECT count(*) FROM tasks WHERE run_id = :r", r=run_id)[0][0],
                self.query("SELECT count(*) FROM errors WHERE run_id = :r", r=run_id)[0][0])

    def new_file(self, suffix: str, text: str) -> Path:
        """A data file whose bytes no earlier test loaded (so a run of its own)."""
        self.files += 1
        path = self.root / f"input-{self.files}{suffix}"
        path.write_text(text)
        return path


_inprocess: Optional[InProcess] = None


@pytest.fixture(scope="session")
def _inprocess_session(tmp_path_factory):
    global _inprocess
    _inprocess = InProcess(tmp_path_factory.mktemp("inprocess"))
    yield _inprocess
    _inprocess.stop()
    _inprocess.engine.dispose()
    _inprocess = None


@pytest.fixture
def inprocess(_inprocess_session) -> InProcess:
    _inprocess_session.start()
    return _inprocess_session


@pytest.fixture(autouse=True)
def _inprocess_dbos_stopped_for_other_tests(request):
    """DBOS is one per process: a test that starts its own finds none running."""
    if _inprocess is not None and "inprocess" not in request.fixturenames:
        _inprocess.stop()


def answer_json(handler, body: bytes, status: int = 200) -> None:
    """A test HTTP server's handler answers ``body`` as JSON."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
