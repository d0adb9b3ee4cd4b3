"""Loading many files at once: folders, globs, incremental reloads, bad files among good."""

import gzip
import json
import os
import shutil

import pytest

from conftest import (finish_on_workers, kill_9, people, run_ingest, start_ingest, wait_until,
                      write_records)
from conftest import cli_load as load


def landing(root, files=6, per_file=5, start=0):
    """A folder of small files of distinct records, in subfolders and three shapes."""
    shapes = ["envelope", "array", "ndjson"]
    for i in range(files):
        folder = root / f"day-{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        shape = shapes[i % 3]
        suffix = "ndjson" if shape == "ndjson" else "json"
        write_records(folder / f"part-{start + i:03d}.{suffix}",
                      people(per_file, start=(start + i) * 1000), shape)
    return root


def test_a_folder_loads_as_one_run_with_subfolders_gzip_and_ignored_files(cli, backend, workdir):
    root = landing(workdir / "landing")
    with gzip.open(root / "day-0" / "zipped.ndjson.gz", "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in people(4, start=90_000))
    (root / "notes.txt").write_text("not data")
    (root / ".hidden.json").write_text("[]")

    result = cli("load", root, "--chunk-size", "8", env=backend.env())

    assert result.exit_code == 0, result.output
    assert "files: 7 new files loaded, 0 already loaded, 0 bad" in result.output
    assert "records 34 | tasks 34 | errors 0" in result.output
    assert "skipped 1 hidden and 1 with other extensions" in result.output
    assert backend.counts() == (34, 0)
    # Positions count from 0 within each file; keys are the file's fingerprint and position.
    titles = backend.query("SELECT title, source_key FROM tasks WHERE data LIKE :p",
                           p='%"first5000"%') if backend.name == "sqlite" else \
        backend.query("SELECT title, source_key FROM tasks WHERE data->'name'->>'first' = 'first5000'")
    assert titles[0][0] == "task 0" and titles[0][1].endswith(":0")
    runs = json.loads(cli("status", "--json", env=backend.env()).stdout)
    assert len(runs) == 1 and runs[0]["files"] == 7 and runs[0]["state"] == "done"


def test_small_files_are_packed_into_chunks_spanning_files(cli, sqlite_backend, workdir):
    root = landing(workdir / "landing", files=30, per_file=7)

    summary = load(cli, sqlite_backend, root, "--chunk-size", "50")

    assert summary["chunks"] == 5  # 210 records: 50 + 50 + 50 + 50 + 10, whole files only
    assert sqlite_backend.counts() == (210, 0)
    detail = json.loads(cli("status", summary["run_id"], "--json", env=sqlite_backend.env()).stdout)
    assert sum(c["files"] for c in detail["chunks"]) >= 30
    assert all(c["state"] == "SUCCESS" for c in detail["chunks"])


def test_a_quoted_glob_is_expanded_by_ingest(cli, backend, workdir):
    landing(workdir / "landing", files=6, per_file=3)

    summary = load(cli, backend, "landing/**/*.ndjson")

    assert summary["files_loaded"] == 2 and summary["records"] == 6
    assert backend.counts() == (6, 0)


@pytest.mark.slow  # over 2 s
def test_loading_a_folder_again_loads_only_new_and_changed_files(cli, backend, workdir):
    root = landing(workdir / "landing", files=4, per_file=5)
    first = load(cli, backend, root)

    again = cli("load", root, env=backend.env())
    write_records(root / "day-1" / "late.json", people(3, start=70_000))
    write_records(root / "day-0" / "part-000.json", people(6, start=80_000))  # changed
    third = load(cli, backend, root)

    assert first["files_loaded"] == 4
    assert again.exit_code == 0 and "already loaded by run " + first["run_id"] in again.output
    assert "0 new files loaded, 4 already loaded" in again.output
    assert (third["files_loaded"], third["files_already_loaded"]) == (2, 3)
    assert third["records"] == 9
    assert backend.counts() == (20 + 9, 0)


def test_the_same_bytes_at_two_paths_load_once(cli, backend, workdir):
    a = write_records(workdir / "a.json", people(5))
    shutil.copy(a, workdir / "b.json")

    summary = load(cli, backend, a, workdir / "b.json")
    alone = load(cli, backend, workdir / "b.json")

    assert (summary["files_loaded"], summary["files_already_loaded"]) == (1, 1)
    assert (alone["files_loaded"], alone["files_already_loaded"]) == (0, 1)
    assert backend.counts() == (5, 0)


def test_bad_files_among_good_ones_get_one_errors_row_each(cli, backend, workdir):
    root = landing(workdir / "landing", files=3, per_file=4)
    (root / "empty.json").write_text("")
    (root / "truncated.json").write_text('[{"a": 1}, {"b"')
    (root / "fake.json.gz").write_text("[]")

    result = cli("load", root, "--json", env=backend.env())
    again = cli("load", root, "--json", env=backend.env())

    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout)
    assert (summary["files_loaded"], summary["files_bad"]) == (3, 3)
    assert "bad input: " in result.stderr and "empty.json: is empty" in result.stderr
    assert backend.counts() == (12, 3)
    bad = [m for m in backend.error_messages() if m["error_type"] == "BadFile"]
    assert sorted(os.path.basename(m["path"]) for m in bad) == ["empty.json", "fake.json.gz",
                                                                "truncated.json"]
    assert all(m["fingerprint"] for m in bad if not m["path"].endswith(".gz"))
    assert again.exit_code == 3 and "truncated.json" in again.stderr
    assert backend.counts() == (12, 3)
    groups = json.loads(cli("errors", "--json", env=backend.env()).stdout)
    assert {g["error_type"] for g in groups} == {"BadFile"}


def test_a_missing_path_among_good_ones_is_reported_and_the_rest_loads(cli, sqlite_backend, workdir):
    good = write_records(workdir / "good.json", people(3))

    result = cli("load", good, workdir / "missing.json", env=sqlite_backend.env())

    assert result.exit_code == 3
    assert "missing.json: no such file" in result.stderr
    assert sqlite_backend.counts() == (3, 1)


def test_status_lists_the_files_of_a_run_page_by_page(cli, sqlite_backend, workdir):
    root = landing(workdir / "landing", files=120, per_file=1)
    summary = load(cli, sqlite_backend, root)

    page1 = json.loads(cli("status", summary["run_id"], "--files", "1", "--json",
                           env=sqlite_backend.env()).stdout)
    page2 = cli("status", summary["run_id"], "--files", "2", env=sqlite_backend.env()).output

    assert page1["total"] == 120 and len(page1["files"]) == 100 and page1["next_page"] == 2
    assert page1["files"][0]["state"] == "new" and page1["files"][0]["tasks"] == 1
    assert "files 101-120 of 120" in page2 and "part-119" in page2


@pytest.mark.slow
def test_a_poison_chunk_of_a_file_set_is_resumed(backend, workdir):
    root = landing(workdir / "landing", files=8, per_file=5)
    env = {**backend.env(), "INGEST_FAULT_CRASH_CHUNKS": "1", "INGEST_MAX_RECOVERY_ATTEMPTS": "1"}

    outcomes = []
    for _ in range(8):  # the same command again, until the poison chunk is given up
        result = run_ingest("load", root, "--chunk-size", "10", env=env, cwd=workdir)
        outcomes.append(result.returncode)
        if result.returncode != 86:  # 86: the hook killed the process
            break
    resumed = run_ingest("resume", env=backend.env(), cwd=workdir)

    assert outcomes[-1] == 1, outcomes
    assert "chunk 1 (files #" in result.stderr and "ingest resume ingest-" in result.stderr
    assert resumed.returncode == 0, resumed.stderr
    assert backend.counts() == (40, 0)


@pytest.mark.slow
@pytest.mark.parametrize("kill_at_rows", [60, 400])
def test_kill_9_during_a_folder_load_then_the_same_command(backend, workdir, parking, kill_at_rows):
    root = landing(workdir / "landing", files=60, per_file=10)
    held = -(-kill_at_rows // 40)  # the first chunk held: every one before it is in
    process = start_ingest("load", root, "--chunk-size", "40", cwd=workdir,
                           env={**backend.env(), **parking.env(chunks=f"{held}-")})
    parking.wait_parked(index=held, process=process)
    wait_until(lambda: rows(backend) >= kill_at_rows, 60, "the kill point", interval=0.02,
               process=process)
    assert kill_9(process) == -9
    assert rows(backend) == held * 40

    again = run_ingest("load", root, "--chunk-size", "40", "--json", env=backend.env(), cwd=workdir, timeout=40)

    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["tasks"] == 600
    assert backend.counts() == (600, 0)
    assert backend.scalar("SELECT count(DISTINCT source_key) FROM tasks") == 600


def rows(backend) -> int:
    try:
        return sum(backend.counts())
    except Exception:  # tables not created yet
        return 0


@pytest.mark.slow
def test_two_loads_of_overlapping_folders_at_once(postgres_backend, workdir, parking):
    root = landing(workdir / "landing", files=40, per_file=10)
    extra = landing(workdir / "extra", files=10, per_file=10, start=100)
    own = landing(workdir / "own", files=5, per_file=10, start=200)  # loader 0's alone
    for part in sorted(root.glob("day-0/*"))[:10]:
        shutil.copy(part, extra / part.name)
    env = {**postgres_backend.env(), **parking.env()}
    # Each has files no other claims, so each holds a chunk, whichever claims the shared first.
    processes = [start_ingest("load", *folders, "--chunk-size", "20", "--json", cwd=workdir,
                              env={**env, "DBOS__VMID": f"loader-{n}"})
                 for n, folders in enumerate([[str(own), str(root)], [str(extra), str(root)]])]
    for n, process in enumerate(processes):  # at once for certain: each holds a chunk
        parking.wait_parked(executor=f"loader-{n}", process=process)
    parking.release()
    outputs = [p.communicate(timeout=180) for p in processes]

    assert [p.returncode for p in processes] == [0, 0], outputs
    summaries = [json.loads(out) for out, _ in outputs]
    assert postgres_backend.counts() == (550, 0)
    assert sum(s["files_loaded"] for s in summaries) == 55
    assert postgres_backend.scalar("SELECT count(DISTINCT source_key) FROM tasks") == 550


@pytest.mark.slow
def test_detached_file_set_runs_on_workers(postgres_backend, workdir):
    root = landing(workdir / "landing", files=20, per_file=10)
    env = postgres_backend.env()
    queued = run_ingest("load", root, "--chunk-size", "20", "--detach", "--json", env=env, cwd=workdir)
    assert queued.returncode == 0, queued.stderr
    run_id = json.loads(queued.stdout)["run_id"]
    finish_on_workers(run_id, env, workdir)
    assert postgres_backend.counts() == (200, 0)
