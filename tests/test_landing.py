"""Landing folders as they really are: files that grow (a tail loads), are rewritten
(announced), or are still being written (an unfinished last line held back, --settle); and
the quick check that keeps known files from being read again."""

import gzip
import json
import os
import shutil

import pytest

from conftest import kill_9, people, run_ingest, start_ingest, write_records
from conftest import cli_load as load

HELD_BACK = "1 incomplete last line held back: it loads once complete"


def lines(start: int, count: int) -> str:
    return "".join(json.dumps(r) + "\n" for r in people(count, start=start))


def append(path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


def positions(backend) -> list:
    return sorted(r[0] for r in backend.query("SELECT position FROM tasks"))


def test_appends_of_whole_and_half_lines_across_runs_load_every_record_once(cli, backend,
                                                                           workdir):
    log = workdir / "events.ndjson"
    log.write_text(lines(0, 10))
    first = load(cli, backend, log)
    half = lines(10, 1)
    append(log, lines(10, 0) + half[:25])  # a writer is mid-line
    held = cli("load", log, env=backend.env())
    append(log, half[25:] + lines(11, 4))
    third = load(cli, backend, log)
    append(log, lines(15, 3))
    fourth = load(cli, backend, log)
    same = load(cli, backend, log)

    assert first["records"] == 10
    assert held.exit_code == 0 and HELD_BACK in held.output
    assert "records 0 | tasks 0 | errors 0" in held.output or "already loaded" in held.output
    assert third["records"] == 5 and third["held_back"] == 0
    assert fourth["records"] == 3
    assert same["already_loaded"] is True
    backend.assert_each_record_once(18, 0)
    assert positions(backend) == list(range(18))  # positions continue: the union is the file
    assert backend.scalar("SELECT count(*) FROM sources WHERE change = 'grown'") == 2


def test_a_half_line_is_no_error_and_loads_once_complete(cli, backend, workdir):
    log = workdir / "events.ndjson"
    log.write_text(lines(0, 3) + '{"name": "unfini')

    held = load(cli, backend, log)
    append(log, 'shed"}\n')
    done = load(cli, backend, log)

    assert (held["records"], held["held_back"], held["errors"]) == (3, 1, 0)
    assert backend.scalar("SELECT count(*) FROM errors") == 0
    assert (done["records"], done["held_back"]) == (1, 0)
    assert backend.query("SELECT position, title FROM tasks ORDER BY position")[-1] == (3, "task 3")
    backend.assert_each_record_once(4, 0)


def test_a_gz_that_grows_by_a_new_member_loads_only_its_tail(cli, backend, workdir):
    folder = workdir / "landing"
    folder.mkdir()
    archive = folder / "export.ndjson.gz"
    with gzip.open(archive, "wt") as f:
        f.write(lines(0, 6))
    first = load(cli, backend, folder)
    with gzip.open(archive, "at") as f:  # a second gzip member
        f.write(lines(6, 4))
    second = load(cli, backend, folder)

    assert first["records"] == 6 and second["records"] == 4
    assert second["files_changed"] == []
    backend.assert_each_record_once(10, 0)
    assert positions(backend) == list(range(10))


def test_rewritten_truncated_renamed_and_copied_files(cli, backend, workdir):
    data = workdir / "a.ndjson"
    data.write_text(lines(0, 5))
    load(cli, backend, data)

    data.write_text(lines(0, 5))  # rewritten with the same bytes: the same content
    same = load(cli, backend, data)
    shutil.copy(data, workdir / "copy.ndjson")
    os.rename(workdir / "copy.ndjson", workdir / "renamed.ndjson")
    renamed = load(cli, backend, workdir / "renamed.ndjson")
    data.write_text(lines(100, 2) + lines(0, 5))  # other content: not an extension
    rewritten = cli("load", data, env=backend.env())
    data.write_text(lines(0, 2))  # truncated
    truncated = load(cli, backend, data)

    assert same["already_loaded"] is True and renamed["already_loaded"] is True
    assert rewritten.exit_code == 0, rewritten.output
    assert "records 7 | tasks 7" in rewritten.output
    assert f"1 file rewritten since loaded: {data}" in rewritten.output
    assert "without --key, the records they still share with what was loaded are now " \
        "stored twice" in rewritten.output
    assert truncated["files_changed"] == [str(data)] and truncated["records"] == 2
    assert backend.counts() == (5 + 7 + 2, 0)
    status = cli("status", truncated["run_id"], env=backend.env())
    assert f"1 file(s) rewritten since loaded: {data}" in status.output


def test_changed_skip_leaves_a_rewritten_file_alone_and_a_later_run_loads_it(cli, sqlite_backend,
                                                                            workdir):
    data = write_records(workdir / "a.ndjson", people(4), "ndjson")
    other = write_records(workdir / "b.ndjson", people(2, start=50), "ndjson")
    load(cli, sqlite_backend, workdir)
    write_records(data, people(3, start=10), "ndjson")
    append(other, lines(52, 1))

    skipped = cli("load", workdir, "--changed", "skip", env=sqlite_backend.env())
    later = load(cli, sqlite_backend, workdir)

    assert skipped.exit_code == 0, skipped.output
    assert "1 file rewritten since loaded" in skipped.output
    assert "1 left alone (--changed skip)" in skipped.output
    assert "records 1 | tasks 1" in skipped.output  # the file that grew still loads its tail
    assert later["records"] == 3 and later["files_changed"] == [str(data)]
    assert sqlite_backend.counts() == (4 + 2 + 1 + 3, 0)


def test_with_a_key_a_rewritten_file_doubles_nothing(cli, sqlite_backend, workdir):
    data = write_records(workdir / "a.ndjson", people(4), "ndjson")
    load(cli, sqlite_backend, data, "--key", "name.first")
    write_records(data, people(5, start=1), "ndjson")  # 4 known keys and a new one

    again = cli("load", data, "--key", "name.first", env=sqlite_backend.env())

    assert again.exit_code == 0, again.output
    assert "with --key, records already stored were skipped or updated" in again.output
    assert sqlite_backend.counts() == (6, 0)  # first0..first5: one row per key


def test_settle_leaves_recently_modified_files_for_a_later_run(cli, sqlite_backend, workdir):
    folder = workdir / "landing"
    folder.mkdir()
    old = write_records(folder / "old.ndjson", people(2), "ndjson")
    fresh = write_records(folder / "fresh.ndjson", people(3, start=10), "ndjson")
    hour_ago = os.stat(old).st_mtime - 3600
    os.utime(old, (hour_ago, hour_ago))

    first = cli("load", folder, "--settle", "600", env=sqlite_backend.env())
    alone = cli("load", fresh, "--settle", "600", "--json", env=sqlite_backend.env())
    os.utime(fresh, (hour_ago, hour_ago))
    later = load(cli, sqlite_backend, folder, "--settle", "600")

    assert first.exit_code == 0, first.output
    assert "records 2 | tasks 2" in first.output
    assert f"1 file modified less than 600 s ago left for a later run (--settle): {fresh}" \
        in first.output
    assert alone.exit_code == 0 and json.loads(alone.stdout)["files_settling"] == 1
    assert later["records"] == 3
    sqlite_backend.assert_each_record_once(5, 0)


def test_known_gz_files_are_neither_read_nor_decompressed_again(cli, backend, workdir):
    folder = workdir / "landing"
    folder.mkdir()
    for n in range(5):
        with gzip.open(folder / f"part-{n}.ndjson.gz", "wt") as f:
            f.write(lines(n * 10, 3))
    load(cli, backend, folder)
    spool = workdir / ".ingest-spool"
    for copy in spool.glob("gunzip-*"):
        copy.unlink()

    again = cli("load", folder, env=backend.env())
    one = load(cli, backend, folder / "part-0.ndjson.gz")

    assert again.exit_code == 0 and "0 new files loaded, 5 already loaded" in again.output
    assert one["already_loaded"] is False and one["records"] == 0
    assert list(spool.glob("gunzip-*")) == []  # nothing decompressed
    backend.assert_each_record_once(15, 0)


def test_a_file_changed_behind_the_quick_check_is_found_by_full_check(cli, sqlite_backend,
                                                                      workdir):
    data = workdir / "a.ndjson"
    data.write_text(lines(0, 3))
    load(cli, sqlite_backend, data)
    stat = os.stat(data)
    data.write_text(lines(0, 3).replace("first1", "FIRSTx"))  # other bytes, the same size
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(data).st_size == stat.st_size

    quick = load(cli, sqlite_backend, data)
    full = load(cli, sqlite_backend, data, "--full-check")
    again = load(cli, sqlite_backend, data, "--full-check")

    assert quick["already_loaded"] is True and quick["records"] == 3  # trusted: not read
    assert full["already_loaded"] is False and full["records"] == 3
    assert full["files_changed"] == [str(data)]
    assert again["already_loaded"] is True  # identity is still the bytes: nothing doubles
    assert sqlite_backend.counts() == (6, 0)


@pytest.mark.slow  # starts processes
def test_an_append_while_a_load_runs_is_loaded_by_the_next_run(sqlite_backend, workdir, parking):
    log = workdir / "events.ndjson"
    log.write_text(lines(0, 200))
    env = {**sqlite_backend.env(), **parking.env(chunks="1-")}
    process = start_ingest("load", log, "--chunk-size", "20", "--concurrency", "1", "--json",
                           env=env, cwd=workdir)
    parking.wait_parked(index=1, process=process)
    assert sqlite_backend.rows_so_far() == 20  # the load is in the middle: chunk 1 is held
    append(log, lines(200, 30))
    parking.release()
    out, err = process.communicate(timeout=120)

    again = run_ingest("load", log, "--json", env=sqlite_backend.env(), cwd=workdir)

    assert process.returncode == 0, err
    assert json.loads(out)["records"] == 200
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["records"] == 30
    sqlite_backend.assert_each_record_once(230, 0)
    assert positions(sqlite_backend) == list(range(230))


@pytest.mark.slow  # starts processes
def test_kill_9_during_a_tail_load_then_the_same_command(backend, workdir, parking):
    log = workdir / "events.ndjson"
    log.write_text(lines(0, 50))
    first = run_ingest("load", log, "--json", env=backend.env(), cwd=workdir)
    append(log, lines(50, 200))
    env = {**backend.env(), **parking.env(chunks="2-")}
    process = start_ingest("load", log, "--chunk-size", "20", "--concurrency", "1", "--json",
                           env=env, cwd=workdir)
    parking.wait_parked(index=2, process=process)
    assert backend.rows_so_far() == 90  # the first run's 50 and the tail's first two chunks
    assert kill_9(process) == -9

    again = run_ingest("load", log, "--chunk-size", "20", "--json", env=backend.env(),
                       cwd=workdir)

    assert first.returncode == 0 and again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["records"] == 200
    backend.assert_each_record_once(250, 0)
    assert positions(backend) == list(range(250))
