"""Fixtures: real databases, really started.

Every test runs in its own temporary directory (so the SQLite default files are fresh) and,
for Postgres, in its own freshly created databases, dropped afterwards. Postgres is used
when reachable at INGEST_TEST_PG (default postgresql://postgres@127.0.0.1:5432); under CI
(CI=true) an unreachable Postgres fails the run instead of skipping, and so does any other
missing prerequisite (``skip_unless_ci``).
"""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

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
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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


@pytest.fixture
def sqlite_backend(workdir):
    return Backend("sqlite", f"sqlite:///{workdir / 'app.sqlite'}")


@pytest.fixture
def postgres_backend(workdir):
    if not postgres_available():
        skip_unless_ci(f"Postgres not reachable at {PG_SERVER}")
    name = f"di_test_{uuid.uuid4().hex[:12]}"
    yield Backend("postgres", f"{PG_SERVER}/{name}")
    _drop(name)
    _drop(f"{name}_dbos_sys")


@pytest.fixture(params=["sqlite", "postgres"])
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


def run_ingest(*args, env=None, cwd=None, timeout=300, input=None):
    """Run ``ingest`` as a real subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "durable_ingest.cli", *map(str, args)],
                          env=full_env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, input=input)


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
