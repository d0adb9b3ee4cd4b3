"""``ingest load s3://bucket/prefix/``: objects of a bucket as inputs, end to end, against a
real local S3 server (moto in server mode, tests/s3_server.py) and, where a test needs to see
the requests or faults, the fault proxy in front of it. Nothing of the client is mocked."""

import base64
import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys

import pytest

from conftest import INGEST, kill_9, people, run_ingest, start_ingest, wait_until, write_records
from conftest import cli_load as load
from durable_ingest.sources import objects, s3
from durable_ingest.sources.plan import Skipped
from s3_server import (TEST_SECRET_KEY, FaultProxy, admin_client, fault_proxy,  # noqa: F401
                       moto_server, s3_bucket, s3_env)


@pytest.fixture(autouse=True)
def fresh_clients():
    """Each test's credentials and endpoints: no client made by an earlier test is reused."""
    objects._stores.clear()
    yield
    objects._stores.clear()


def ndjson(records: list) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def envelope(records: list) -> bytes:
    return json.dumps({"results": records, "info": {"results": len(records)}}).encode()


def landing(bucket, files: int = 6, per_file: int = 5, start: int = 0, prefix="landing/") -> int:
    """Objects of distinct records in two "folders", alternately NDJSON and envelopes; the
    number of records."""
    for n in range(start, start + files):
        records = people(per_file, start=n * 1000)
        name, body = (f"p{n:03d}.ndjson", ndjson(records)) if n % 2 else \
            (f"p{n:03d}.json", envelope(records))
        bucket.put(f"{prefix}day-{n % 2}/{name}", body)
    return files * per_file


def object_gets(proxy, bucket) -> list:
    """The keys of the object GETs (not listings) the proxy saw."""
    return [path.split("?")[0][len(bucket.name) + 2:] for method, path, _, _ in proxy.seen
            if method == "GET" and path.startswith(f"/{bucket.name}/")]


def listings(proxy) -> int:
    return sum("list-type=2" in path for _, path, _, _ in proxy.seen)


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines() if hasattr(result, "stderr") else []
    assert len(lines) == 1, lines
    return lines[0]


# -- listing ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_prefix_loads_across_listing_pages_and_counts_what_it_skipped(
        cli, backend, workdir, s3_env, s3_bucket, fault_proxy, monkeypatch):
    monkeypatch.setattr(s3, "PAGE_KEYS", 4)  # 13 keys: 4 pages of a real listing
    records = landing(s3_bucket, files=10, per_file=7)
    s3_bucket.put("landing/.hidden/x.json", envelope(people(2)))
    s3_bucket.put("landing/notes.txt", b"not data")
    s3_bucket.put("landing/day-0/data.csv", b"a,b\n")

    result = cli("load", s3_bucket.url("landing/"), "--chunk-size", "20", "--endpoint-url",
                 fault_proxy.url, env=backend.env())

    assert result.exit_code == 0, result.output
    assert "files: 10 new files loaded, 0 already loaded, 0 bad" in result.output
    assert f"records {records} | tasks {records} | errors 0" in result.output
    assert "skipped 1 hidden and 2 with other extensions" in result.stderr
    backend.assert_each_record_once(records, 0)
    assert listings(fault_proxy) == 4
    keys = [f"landing/day-{n % 2}/p{n:03d}.{'ndjson' if n % 2 else 'json'}" for n in range(10)]
    reads = object_gets(fault_proxy, s3_bucket)
    assert sorted(reads) == sorted(keys)  # each object downloaded once: its chunk read the copy
    assert not list((workdir / ".ingest-spool" / "s3-copies").iterdir())  # and deleted it
    names = backend.query("SELECT name FROM sources ORDER BY ordinal")
    assert [n for (n,) in names] == [s3_bucket.url(k) for k in sorted(keys)]  # key order


@pytest.mark.slow
def test_a_glob_takes_the_objects_it_matches(cli, sqlite_backend, workdir, s3_env, s3_bucket,
                                             monkeypatch):
    monkeypatch.setattr(s3, "PAGE_KEYS", 3)
    landing(s3_bucket, files=8, per_file=3)

    summary = load(cli, sqlite_backend, s3_bucket.url("landing/**/*.json"))

    assert (summary["files_loaded"], summary["records"]) == (4, 12)  # the envelopes
    assert sqlite_backend.counts() == (12, 0)


@pytest.mark.slow
def test_a_prefix_or_glob_with_no_object_is_a_bad_input(cli, sqlite_backend, workdir, s3_env,
                                                       s3_bucket):
    s3_bucket.put("landing/a.json", envelope(people(3)))
    empty = cli("load", s3_bucket.url("nothing/"), env=sqlite_backend.env())
    no_match = cli("load", s3_bucket.url("landing/**/*.ndjson"), env=sqlite_backend.env())
    no_key = cli("load", s3_bucket.url("landing/b.json"), env=sqlite_backend.env())

    assert empty.exit_code == no_match.exit_code == no_key.exit_code == 3
    assert empty.stderr.strip() == (f"Error: {s3_bucket.url('nothing/')}: no .json, .ndjson or "
                                    ".jsonl object below it (a prefix ends with /)")
    assert no_match.stderr.strip().endswith("landing/**/*.ndjson: no object matches it")
    assert no_key.stderr.strip().endswith("landing/b.json: no such key; check the key (a prefix "
                                          "ends with /)")
    assert not (workdir / "app.sqlite").exists()  # nothing written
    mixed = cli("load", s3_bucket.url("landing/"), s3_bucket.url("nothing/"), "--json",
                env=sqlite_backend.env())
    assert mixed.exit_code == 3 and json.loads(mixed.stdout)["files_bad"] == 1
    assert sqlite_backend.counts() == (3, 1)  # one errors row: BadFile, titled by its URL


# -- incremental ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_new_object_loads_on_the_next_run_and_known_ones_are_not_downloaded(
        cli, backend, workdir, s3_env, s3_bucket, fault_proxy):
    records = landing(s3_bucket, files=5, per_file=4)
    first = load(cli, backend, s3_bucket.url("landing/"), "--endpoint-url", fault_proxy.url)
    fault_proxy.seen.clear()
    s3_bucket.put("landing/day-1/late.ndjson", ndjson(people(3, start=90_000)))

    second = load(cli, backend, s3_bucket.url("landing/"), "--endpoint-url", fault_proxy.url)

    assert (first["files_loaded"], first["records"]) == (5, records)
    assert (second["files_loaded"], second["files_already_loaded"]) == (1, 5)
    assert second["run_id"] != first["run_id"] and second["records"] == 3
    assert object_gets(fault_proxy, s3_bucket) == ["landing/day-1/late.ndjson"]  # scanned once
    backend.assert_each_record_once(records + 3, 0)


@pytest.mark.slow
def test_objects_this_machine_knows_but_a_database_never_loaded_are_read_then(
        cli, workdir, s3_env, s3_bucket, fault_proxy):
    landing(s3_bucket, files=4, per_file=3)
    first = {"DATABASE_URL": f"sqlite:///{workdir / 'first.sqlite'}"}
    second = {"DATABASE_URL": f"sqlite:///{workdir / 'second.sqlite'}",
              "DBOS_SYSTEM_DATABASE_URL": f"sqlite:///{workdir / 'second-dbos.sqlite'}"}
    args = [s3_bucket.url("landing/"), "--json", "--endpoint-url", fault_proxy.url]
    assert cli("load", *args, env=first).exit_code == 0
    cache = objects.FingerprintCache("", fault_proxy.url)
    listed = list(objects.store_for(fault_proxy.url).objects(s3_bucket.url("landing/"), Skipped()))
    assert all(cache.get(obj) for obj in listed)
    cache.put(listed[0], "0" * 20)  # a wrong fingerprint: the read at plan time must catch it
    fault_proxy.seen.clear()

    result = cli("load", *args, env=second)

    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout)["files_loaded"] == 3
    assert result.stderr.startswith(f"bad input: {listed[0].url}: its content is not what this "
                                    "machine recorded for it; delete ")
    # Read by the plan; the chunks read the copies it kept (and the bad one's was dropped).
    assert sorted(object_gets(fault_proxy, s3_bucket)) == sorted(o.key for o in listed)
    assert not list((workdir / ".ingest-spool" / "s3-copies").iterdir())


def test_the_same_content_in_a_file_and_in_a_bucket_loads_once(cli, sqlite_backend, workdir,
                                                              s3_env, s3_bucket):
    body = ndjson(people(6))
    s3_bucket.put("in/packed.ndjson.gz", gzip.compress(body))
    s3_bucket.put("in/plain.ndjson", b"\xef\xbb\xbf" + body)  # a byte-order mark: same content
    (workdir / "local.ndjson").write_bytes(body)

    summary = load(cli, sqlite_backend, "local.ndjson", s3_bucket.url("in/"))

    assert (summary["files_loaded"], summary["files_already_loaded"]) == (1, 2)
    assert sqlite_backend.counts() == (6, 0)


# -- gzip and mixed inputs ------------------------------------------------------------------------
@pytest.mark.slow
def test_a_gzip_object_is_decompressed_once_into_the_spool(cli, backend, workdir, s3_env,
                                                          s3_bucket, fault_proxy):
    records = people(250)
    s3_bucket.put("z/big.ndjson.gz", gzip.compress(ndjson(records)))

    summary = load(cli, backend, s3_bucket.url("z/big.ndjson.gz"), "--chunk-size", "40",
                   "--endpoint-url", fault_proxy.url)

    assert (summary["records"], summary["chunks"]) == (250, 7)
    backend.assert_each_record_once(250, 0)
    gets = [(path, byte_range) for method, path, byte_range, _ in fault_proxy.seen
            if method == "GET"]
    assert gets == [(f"/{s3_bucket.name}/z/big.ndjson.gz", None)] * 2  # scanned, then copied
    assert len(list((workdir / ".ingest-spool").glob("s3-gunzip-*.data"))) == 1
    stored = backend.query("SELECT data FROM tasks ORDER BY position LIMIT 1")[0][0]
    assert "first0" in (stored if isinstance(stored, str) else json.dumps(stored))


@pytest.mark.slow  # over 2 s
def test_objects_files_and_folders_are_one_run(cli, backend, workdir, s3_env, s3_bucket):
    records = landing(s3_bucket, files=4, per_file=5)
    write_records(workdir / "one.json", people(3, start=50_000))
    (workdir / "folder").mkdir()
    write_records(workdir / "folder" / "two.ndjson", people(2, start=60_000), "ndjson")

    summary = load(cli, backend, "one.json", s3_bucket.url("landing/"), "folder")

    assert summary["files_loaded"] == 6 and summary["records"] == records + 5
    assert summary["dataset"] == f"{workdir / 'one.json'} and 2 more"
    backend.assert_each_record_once(records + 5, 0)


@pytest.mark.slow  # the retries' backoff
def test_transient_faults_are_retried_and_every_record_loads_once(cli, sqlite_backend, workdir,
                                                                 s3_env, s3_bucket, fault_proxy):
    records = landing(s3_bucket, files=8, per_file=6)
    fault_proxy.script.extend(["503", None, "reset-body", None, None, "500"])
    fault_proxy.share, fault_proxy.kinds = 0.2, ("500", "503", "reset-body")

    summary = load(cli, sqlite_backend, s3_bucket.url("landing/"), "--chunk-size", "10",
                   "--endpoint-url", fault_proxy.url)

    assert summary["records"] == records and fault_proxy.faults >= 3
    sqlite_backend.assert_each_record_once(records, 0)


# -- an object replaced between its scan and its read -----------------------------------------------
def replace_while_loading(backend, workdir, bucket, parking, **env) -> tuple:
    """Four objects of 10 records loaded a chunk at a time; the last one replaced (by 4 other
    records) while its chunk is held before reading it, the first three in. The command, its
    output and error."""
    for n in range(4):
        bucket.put(f"r/{n}.ndjson", ndjson(people(10, start=n * 100)))
    command = ["load", bucket.url("r/"), "--chunk-size", "10", "--concurrency", "1", "--json"]
    process = start_ingest(*command, cwd=workdir,
                           env={**backend.env(), **parking.env(chunks=3), **env})
    parking.wait_parked(index=3, process=process)
    assert backend.rows_so_far() == 30
    bucket.put("r/3.ndjson", ndjson(people(4, start=7_000)))  # the last chunk's object
    parking.release()
    out, err = process.communicate(timeout=120)
    return command, process.returncode, out, err


@pytest.mark.slow  # a real process, held mid-run
def test_an_object_replaced_before_a_far_worker_reads_it(backend, workdir, s3_env, s3_bucket,
                                                         parking):
    # No copies kept: every piece is a ranged GET, as on a machine that did not scan.
    command, code, out, err = replace_while_loading(backend, workdir, s3_bucket, parking,
                                                    INGEST_S3_COPIES_MB="0")

    assert code == 3, err
    summary = json.loads(out)
    assert (summary["tasks"], summary["errors"], summary["objects_changed"]) == (30, 10, 1)
    assert err.startswith(f"bad input: {s3_bucket.url('r/3.ndjson')}: changed since it was "
                          "scanned (no longer ETag ")
    assert "the new content loads as a new file on the next run" in err
    changed = [m for m in backend.error_messages() if m["error_type"] == "ObjectChanged"]
    assert len(changed) == 10 and all(m["record"] is None for m in changed)
    assert [m["position"] for m in changed] == list(range(10))

    again = run_ingest(*command, cwd=workdir, env=backend.env())
    assert again.returncode == 0, again.stderr
    assert (json.loads(again.stdout)["files_loaded"], backend.counts()) == (1, (34, 10))


@pytest.mark.slow  # a real process, held mid-run
def test_an_object_replaced_after_this_machine_scanned_it_loads_as_scanned(backend, workdir,
                                                                           s3_env, s3_bucket,
                                                                           parking):
    command, code, out, err = replace_while_loading(backend, workdir, s3_bucket, parking)

    assert code == 0, err
    assert (json.loads(out)["tasks"], backend.counts()) == (40, (40, 0))  # the version scanned
    again = run_ingest(*command, cwd=workdir, env=backend.env())
    assert again.returncode == 0, again.stderr
    assert (json.loads(again.stdout)["files_loaded"], backend.counts()) == (1, (44, 0))
    backend.assert_each_record_once(44, 0)


# -- crashes and workers -------------------------------------------------------------------------
@pytest.mark.slow  # real processes, killed and started again
def test_kill_9_mid_run_then_the_same_command_loads_every_record_once(backend, workdir, s3_env,
                                                                      s3_bucket, parking):
    records = landing(s3_bucket, files=12, per_file=25)
    s3_bucket.put("landing/z.ndjson.gz", gzip.compress(ndjson(people(60, start=99_000))))
    command = ["load", s3_bucket.url("landing/"), "--chunk-size", "25", "--json"]
    process = start_ingest(*command, cwd=workdir, env={**backend.env(), **parking.env(chunks="4-")})
    parking.wait_parked(index=4, process=process)
    wait_until(lambda: backend.rows_so_far() >= 100, 60, "100 rows before the kill",
               interval=0.02, process=process)
    assert kill_9(process) == -9  # chunks 0-3 in, the rest held
    before = backend.rows_so_far()

    again = run_ingest(*command, cwd=workdir, env=backend.env())

    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert before == 100 and summary["already_loaded"] is False
    assert (summary["tasks"], summary["files_loaded"]) == (records + 60, 13)
    backend.assert_each_record_once(records + 60, 0)


@pytest.mark.slow  # a real process, killed; then resumed
def test_resume_reads_the_objects_from_its_own_endpoint_url(sqlite_backend, workdir, s3_env,
                                                            s3_bucket, moto_server, parking):
    records = landing(s3_bucket, files=8, per_file=10)
    with FaultProxy(moto_server.url) as proxy:  # the endpoint the run records, gone after
        process = start_ingest("load", s3_bucket.url("landing/"), "--endpoint-url", proxy.url,
                               "--chunk-size", "10", cwd=workdir,
                               env={**sqlite_backend.env(), **parking.env(chunks="2-")})
        parking.wait_parked(index=2, process=process)
        wait_until(lambda: sqlite_backend.rows_so_far() >= 20, 60, "20 rows before the kill",
                   interval=0.02, process=process)
        assert kill_9(process) == -9  # chunks 0 and 1 in, the rest held

    resumed = run_ingest("resume", "--endpoint-url", moto_server.url, "--json", cwd=workdir,
                         env=sqlite_backend.env())

    assert resumed.returncode == 0, resumed.stderr
    sqlite_backend.assert_each_record_once(records, 0)


@pytest.mark.slow  # a detached run, and a worker process elsewhere
def test_a_worker_in_another_directory_reads_the_objects_from_the_bucket(
        postgres_backend, workdir, s3_env, s3_bucket, tmp_path_factory):
    records = landing(s3_bucket, files=6, per_file=9)
    s3_bucket.put("landing/z.ndjson.gz", gzip.compress(ndjson(people(30, start=80_000))))
    queued = run_ingest("load", s3_bucket.url("landing/"), "--detach", "--json",
                        "--chunk-size", "20", cwd=workdir, env=postgres_backend.env())
    assert queued.returncode == 0, queued.stderr
    run_id = json.loads(queued.stdout)["run_id"]
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    # Only the database and AWS's variables: no files, no endpoint but the one the run recorded.
    env = {"DATABASE_URL": postgres_backend.url,
           **{k: v for k, v in os.environ.items() if k.startswith("AWS_")
              and k != "AWS_ENDPOINT_URL"}}
    worker = subprocess.Popen([*INGEST, "worker", "--worker-id", "far-away"], cwd=elsewhere,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def done():
            status = run_ingest("status", run_id, "--json", env=postgres_backend.env(),
                                cwd=workdir)
            return status.returncode == 0 and json.loads(status.stdout)["state"] == "done"

        wait_until(done, 120, "the worker to finish the run", interval=0.3, process=worker)
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    postgres_backend.assert_each_record_once(records + 30, 0)
    assert len(list((elsewhere / ".ingest-spool").glob("s3-gunzip-*.data"))) == 1
    assert not (elsewhere / ".ingest-spool" / "s3-copies").exists()  # it read by ranged GETs


# -- failures before anything is written -----------------------------------------------------------
@pytest.fixture
def iam(s3_env, s3_bucket, moto_server):
    """moto's IAM checks on, with a user that may do nothing (its keys); the environment's
    fixed keys are then unknown to the server."""
    s3_bucket.put("data/one.ndjson", ndjson(people(3)))
    admin = admin_client(moto_server.url, service="iam")
    admin.create_user(UserName=s3_bucket.name)
    key = admin.create_access_key(UserName=s3_bucket.name)["AccessKey"]
    moto_server.require_auth(True)
    try:
        yield s3_bucket, key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        moto_server.require_auth(False)


def refused(cli, workdir, *args) -> str:
    """The one line of a load refused with exit 3, once nothing was written."""
    objects._stores.clear()  # a command's process makes its client with the credentials of now
    result = cli("load", *args, env={"DATABASE_URL": f"sqlite:///{workdir / 'app.sqlite'}"})
    assert result.exit_code == 3, result.output
    line = one_line(result)
    assert TEST_SECRET_KEY not in result.output
    assert not (workdir / "app.sqlite").exists() and not (workdir / "app_dbos_sys.sqlite").exists()
    return line


def test_bad_credentials_stop_the_command_before_anything_is_written(cli, workdir, iam,
                                                                    monkeypatch):
    bucket, key_id, _ = iam
    (workdir / "local.json").write_text("[]")
    assert refused(cli, workdir, "local.json", bucket.url("data/")) == (
        f"Error: {bucket.url('data/')}: the access key is not known at "
        f"{os.environ['AWS_ENDPOINT_URL']} (InvalidAccessKeyId); check AWS_ACCESS_KEY_ID or the "
        "profile's aws_access_key_id")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    assert "(SignatureDoesNotMatch); check AWS_SECRET_ACCESS_KEY" in \
        refused(cli, workdir, bucket.url("data/"))


def test_access_denied_at_listing_names_the_action(cli, workdir, iam, monkeypatch):
    bucket, key_id, secret = iam
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    assert refused(cli, workdir, bucket.url("data/")) == (
        f"Error: {bucket.url('data/')}: access denied to s3:ListBucket on arn:aws:s3:::"
        f"{bucket.name}; grant it to these credentials (IAM or bucket policy), or use "
        "credentials that have it")


def test_a_missing_bucket_and_missing_credentials(cli, workdir, s3_env, monkeypatch):
    assert refused(cli, workdir, "s3://no-such-bucket-here/x/") == (
        f"Error: s3://no-such-bucket-here: no such bucket at {os.environ['AWS_ENDPOINT_URL']}; "
        "check the bucket's name, AWS_REGION and AWS_ENDPOINT_URL")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert refused(cli, workdir, "s3://no-such-bucket-here/x/") == (
        "Error: no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
        "AWS_SESSION_TOKEN for temporary keys), or AWS_PROFILE to a profile of ~/.aws/config")


def test_without_the_s3_extra_an_s3_input_is_a_usage_error(cli, workdir, monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if not installed
    result = cli("load", "s3://bucket/prefix/", "local.json")

    assert result.exit_code == 2
    assert one_line(result) == ("Error: s3:// inputs need the s3 extra: pip install "
                                "'durable-ingest[s3]'")


def test_help_imports_no_s3_client():
    code = ("import sys\nfrom durable_ingest.cli import main\n"
            "for args in (['--help'], ['load', '--help'], ['worker', '--help']):\n"
            "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
            "assert not {'boto3', 'botocore'} & set(sys.modules), 'imported a client'\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)


def checkpoints(workdir) -> bytes:
    """What DBOS stored of the runs (workflow inputs and outputs, step outputs), decoded."""
    queries = ("SELECT inputs FROM workflow_input", "SELECT output FROM workflow_output",
               "SELECT output FROM operation_outputs")
    with sqlite3.connect(workdir / "app_dbos_sys.sqlite") as connection:  # sqlite_backend's
        texts = [text for query in queries for (text,) in connection.execute(query)]
    return b"".join(base64.b64decode(text) for text in texts if text)


@pytest.mark.slow
def test_no_secret_is_stored_and_the_endpoint_is_recorded(cli, sqlite_backend, workdir, s3_env,
                                                         s3_bucket, fault_proxy):
    landing(s3_bucket, files=2, per_file=3)
    summary = load(cli, sqlite_backend, s3_bucket.url("landing/"), "--endpoint-url",
                   fault_proxy.url)

    stored = checkpoints(workdir) + b"".join(
        path.read_bytes() for path in workdir.rglob("*") if path.is_file())
    assert summary["records"] == 6 and fault_proxy.url.encode() in checkpoints(workdir)  # Job
    assert TEST_SECRET_KEY.encode() not in stored
    assert os.environ["AWS_ACCESS_KEY_ID"].encode() not in stored


def test_an_endpoint_url_with_credentials_is_refused(cli, workdir, s3_env):
    result = cli("load", "s3://b/k.json", "--endpoint-url", "http://me:secret@127.0.0.1:9000")

    assert result.exit_code == 2 and "secret" not in result.output
    assert "must be an http(s) URL of the S3 endpoint, without credentials" in one_line(result)


def test_the_sources_rows_record_what_a_read_must_find(cli, sqlite_backend, workdir, s3_env,
                                                       s3_bucket):
    put = s3_bucket.put("one/a.ndjson", ndjson(people(4)))
    s3_bucket.put("one/b.json.gz", gzip.compress(envelope(people(2, start=10))))
    load(cli, sqlite_backend, s3_bucket.url("one/"))

    rows = sqlite_backend.query("SELECT name, path, etag, version_id, compression, size, mtime_ns "
                                "FROM sources ORDER BY ordinal")
    assert rows[0] == (s3_bucket.url("one/a.ndjson"), s3_bucket.url("one/a.ndjson"), put["ETag"],
                       None, None, len(ndjson(people(4))), None)
    assert rows[1][4] == "gzip"
