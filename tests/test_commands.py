"""The other commands (generate, migrate), the `dbos` CLI on our config, and the docs."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_ingest, write_records, people

BIN = Path(sys.executable).parent


def test_generate_is_reproducible_and_randomuser_shaped(cli, workdir):
    assert cli("generate", "--count", "50", "--seed", "3", "-o", "a.json").exit_code == 0
    assert cli("generate", "--count", "50", "--seed", "3", "-o", "b.json").exit_code == 0
    assert cli("generate", "--count", "50", "--seed", "4", "-o", "c.json").exit_code == 0

    a, b, c = (Path(n).read_bytes() for n in ("a.json", "b.json", "c.json"))
    assert a == b and a != c
    envelope = json.loads(a)
    assert envelope["info"]["results"] == 50 and len(envelope["results"]) == 50
    real = json.loads((REPO / "data" / "randomuser-20.json").read_text())["results"][0]
    assert keys_of(envelope["results"][0]) == keys_of(real)


def keys_of(value):
    if isinstance(value, dict):
        return {k: keys_of(v) for k, v in value.items()}
    return None


def test_generate_ndjson_to_stdout(cli, workdir):
    result = cli("generate", "--count", "5", "--seed", "1", "--format", "ndjson")

    lines = result.stdout.splitlines()
    assert len(lines) == 5
    assert all(json.loads(line)["login"]["uuid"] for line in lines)


def test_migrate_creates_the_tables(cli, backend):
    result = cli("migrate", env=backend.env())

    assert result.exit_code == 0, result.output
    assert "is up to date" in result.output
    assert backend.counts() == (0, 0)


@pytest.mark.slow
def test_alembic_upgrade_head_from_the_repo_root(backend, workdir):
    env = {**os.environ, "DATABASE_URL": backend.url}
    result = subprocess.run([str(BIN / "alembic"), "upgrade", "head"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    assert backend.counts() == (0, 0)


@pytest.mark.slow  # Postgres
def test_load_creates_a_missing_postgres_database(cli, postgres_backend, workdir):
    data = write_records(workdir / "u.json", people(3))

    assert cli("load", data, env=postgres_backend.env()).exit_code == 0
    assert postgres_backend.counts() == (3, 0)


@pytest.mark.slow
def test_dbos_workflow_list_shows_the_run(backend, workdir):
    data = write_records(workdir / "u.json", people(10))
    loaded = run_ingest("load", data, "--json", "--chunk-size", "4", env=backend.env(), cwd=workdir)
    assert loaded.returncode == 0, loaded.stderr
    run_id = json.loads(loaded.stdout)["run_id"]
    (workdir / "dbos-config.yaml").write_text((REPO / "dbos-config.yaml").read_text())

    system = ["-s", backend.system_url_for(workdir)]
    listed = subprocess.run([str(BIN / "dbos"), "workflow", "list", *system], cwd=workdir,
                            capture_output=True, text=True, timeout=120)
    steps = subprocess.run([str(BIN / "dbos"), "workflow", "steps", f"{run_id}-chunk-00000", *system],
                           cwd=workdir, capture_output=True, text=True, timeout=120)

    assert listed.returncode == 0, listed.stderr
    ids = {w["workflow_id"] for w in json.loads(listed.stdout)}
    assert {run_id, f"{run_id}-chunk-00000", f"{run_id}-chunk-00002"} <= ids
    assert steps.returncode == 0, steps.stderr
    assert "write_chunk" in steps.stdout


DEMO_SUMMARY = "records 1000 | tasks 999 | errors 1"


def first_demo_name(workdir) -> dict:
    """The demo's first record as it landed: uppercased by the demo's transform."""
    import sqlite3

    with sqlite3.connect(workdir / "durable_ingest_app.sqlite") as db:
        [(data,)] = db.execute("SELECT data FROM tasks WHERE position = 0").fetchall()
    return json.loads(data)["name"]


@pytest.mark.slow
def test_python_integration_py_runs_the_demo_as_the_original_did(workdir):
    ran = subprocess.run([sys.executable, str(REPO / "integration.py")], cwd=workdir,
                         capture_output=True, text=True, timeout=300)
    status = subprocess.run([sys.executable, str(REPO / "integration.py"), "status", "--json"],
                            cwd=workdir, capture_output=True, text=True, timeout=300)

    assert ran.returncode == 0, ran.stderr
    assert DEMO_SUMMARY in ran.stdout
    assert status.returncode == 0, status.stderr
    assert [run["tasks"] for run in json.loads(status.stdout)] == [999]
    assert first_demo_name(workdir) == {"title": "MR", "first": "ONNI", "last": "HEIKKINEN"}


HEAVY = ("dbos", "sqlalchemy", "opentelemetry", "alembic")
HELP_THEN_LIST_IMPORTS = """
import sys
from durable_ingest.cli import main

for args in [[], *([name] for name in sorted(main.commands))]:
    try:
        main([*args, "--help"], prog_name="ingest")
    except SystemExit as exit:
        assert exit.code == 0, (args, exit.code)
print([m for m in sys.argv[1:] if m in sys.modules])
"""


def test_help_does_not_import_the_heavy_libraries():
    """`ingest --help` and every `ingest COMMAND --help`, in a fresh interpreter, import none
    of dbos, sqlalchemy, opentelemetry or alembic: those load only when a command runs."""
    result = subprocess.run([sys.executable, "-c", HELP_THEN_LIST_IMPORTS, *HEAVY],
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert "Usage: ingest load" in result.stdout  # the help was really printed
    assert result.stdout.strip().splitlines()[-1] == "[]"


def all_commands():
    from durable_ingest.cli import main

    return sorted(main.commands)


@pytest.mark.parametrize("command", all_commands())
def test_every_command_has_help_an_example_and_a_docs_entry(cli, command):
    result = cli(command, "--help")

    assert result.exit_code == 0
    assert "Example:" in result.output
    reference = (REPO / "docs" / "commands.md").read_text()
    assert re.search(rf"^## `ingest {command}`", reference, re.M), \
        f"ingest {command} has no section in docs/commands.md"


def test_schema_head_constant_matches_alembic():
    from alembic.script import ScriptDirectory

    from durable_ingest.database import SCHEMA_HEAD, alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_HEAD
