"""Upgrades are proven or refused (issue 35, item 6).

DBOS recovers only the workflows of its own application version, and a pinned version lets
new code replay old checkpoints. So ``contract.APPLICATION_VERSION`` must change whenever a
checkpointed shape does (the dataclasses of ``contract.py``, the names of the workflows and
steps): ``SHAPES`` records the shapes each version was released with. And a run that an
earlier version left unfinished is refused, before anything changes, with the way to finish
it: the test runs an earlier commit, kills it, and meets it with this code.
"""

import ast
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tarfile
from io import BytesIO

import pytest

from conftest import REPO, people, run_ingest, skip_unless_ci, write_records
from durable_ingest import contract

# application version -> the fingerprint of its checkpointed shapes (``shapes_fingerprint``)
SHAPES = {
    "ingest-v3": "2c03c8208f518aff",
    "ingest-v4": "6658808f7b8313fd",
    "ingest-v5": "8aee83f2e09b70a4",  # schedules' ticks; chains of pages; summary rows, gc; incremental
}
EARLIER_COMMIT = "8cbd45e"  # main before issue 35: application version ingest-v2


def checkpointed_shapes() -> list:
    """What checkpoints hold or name: every dataclass of ``contract`` (its fields, their
    types and defaults) and every DBOS workflow, step and transaction name of the package."""
    shapes = []
    for name, value in sorted(vars(contract).items()):
        if isinstance(value, type) and dataclasses.is_dataclass(value) \
                and value.__module__ == contract.__name__:
            fields = [(f.name, str(f.type), default_of(f)) for f in dataclasses.fields(value)]
            shapes.append((name, fields))
    return shapes + [("registered", sorted(registered_names()))]


def default_of(field) -> str:
    if field.default is not dataclasses.MISSING:
        return repr(field.default)
    if field.default_factory is not dataclasses.MISSING:
        return f"{field.default_factory.__name__}()"
    return "required"


def registered_names() -> set:
    found = set()
    for folder, _, files in os.walk(REPO):
        if any(part.startswith(".") and part != "." or part in ("tests", "benchmarks")
               for part in os.path.relpath(folder, REPO).split(os.sep)):
            continue
        for file in files:
            if file.endswith(".py"):
                tree = ast.parse(open(os.path.join(folder, file)).read())
                found |= {f"{d.func.attr}:{k.value.value}" for node in ast.walk(tree)
                          if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                          for d in node.decorator_list if isinstance(d, ast.Call)
                          and isinstance(d.func, ast.Attribute)
                          for k in d.keywords if k.arg == "name"
                          and isinstance(k.value, ast.Constant)}
    return found


def shapes_fingerprint() -> str:
    return hashlib.sha256(json.dumps(checkpointed_shapes()).encode()).hexdigest()[:16]


def test_the_application_version_changes_with_the_checkpointed_shapes():
    version, now = contract.APPLICATION_VERSION, shapes_fingerprint()
    assert version in SHAPES, (f"record the shapes of {version}: SHAPES[{version!r}] = {now!r}")
    assert SHAPES[version] == now, (
        f"contract.py's checkpointed shapes (or a workflow or step name) changed under "
        f"{version}: bump APPLICATION_VERSION in contract.py (say why there) and record "
        f"SHAPES[<new version>] = {now!r} here; runs left unfinished by {version} are then "
        f"refused with the way to finish them (docs/recovery.md)")


def earlier_code(tmp_path) -> str:
    """The package as it was at ``EARLIER_COMMIT``, for PYTHONPATH."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", EARLIER_COMMIT],
                             capture_output=True, timeout=60)
    if archive.returncode != 0:
        skip_unless_ci(f"no git history with {EARLIER_COMMIT}: {archive.stderr.decode()[:200]}")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(tmp_path / "earlier" / "durable_ingest", filter="data")
    return str(tmp_path / "earlier")


@pytest.mark.slow
def test_a_run_an_earlier_version_left_is_refused_then_finished_by_that_version(
        backend, workdir, tmp_path):
    earlier = earlier_code(tmp_path)
    data = write_records(workdir / "big.ndjson", people(400), "ndjson")
    # The earlier code kept a SQLite app database's run history in the working directory;
    # this one keeps it beside the app database: here both are told where it is.
    env = {**backend.env(), **({"DBOS_SYSTEM_DATABASE_URL": f"sqlite:///{workdir / 'sys.sqlite'}"}
                               if backend.name == "sqlite" else {})}

    def with_earlier(*args, **faults):
        return subprocess.run([sys.executable, "-m", "durable_ingest.cli", *args], cwd=workdir,
                              env={**os.environ, **env, "PYTHONPATH": earlier, **faults},
                              capture_output=True, text=True, timeout=180)

    crashed = with_earlier("load", str(data), "--chunk-size", "40", "--concurrency", "1",
                           INGEST_FAULT_CRASH_CHUNKS="5")  # the earlier code dies on chunk 5
    assert crashed.returncode == 86, crashed.stderr
    run_id = json.loads(run_ingest("status", "--json", env=env, cwd=workdir).stdout)[0]["run_id"]

    again = run_ingest("load", data, "--chunk-size", "40", env=env, cwd=workdir)

    assert again.returncode == 2
    assert again.stderr.startswith(
        f"Error: run {run_id} was interrupted under another version of durable-ingest "
        f"(application version ingest-v2; this is {contract.APPLICATION_VERSION}), which "
        f"this one cannot finish; nothing was changed: finish it with that version "
        f"(`ingest resume {run_id}`), or give it up (`dbos workflow cancel {run_id} -s ")
    assert len(again.stderr.strip().splitlines()) == 1
    assert run_ingest("resume", run_id, env=env, cwd=workdir).returncode == 2

    finished = with_earlier("resume", run_id)  # as the line says; nothing was upgraded
    assert finished.returncode == 0, finished.stderr
    # the earlier default transform was the demo's uppercase: the same run, said so
    loaded = run_ingest("load", data, "--chunk-size", "40", "--transform", "uppercase", env=env,
                        cwd=workdir)
    assert loaded.returncode == 0, loaded.stderr
    assert "already loaded by run " + run_id in loaded.stdout
    backend.assert_each_record_once(400, 0)
