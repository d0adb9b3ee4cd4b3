"""The S3 bucket access layer (sources/s3.py) against a real local S3 server: moto in server
mode, with a fault-injecting proxy in front of it where a test needs faults. Nothing of the
client is mocked; every error a user can meet is checked as the one line they would read."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from durable_ingest.errors import InputChanged, InputError, UsageError
from durable_ingest.sources.plan import Skipped, glob_files, walk
from durable_ingest.sources.s3 import NEEDS_EXTRA, ObjectChanged, S3Object, S3Store, is_s3
from s3_server import (TEST_SECRET_KEY, FaultProxy, TestBucket, admin_client,  # noqa: F401
                       fault_proxy, moto_server, s3_bucket, s3_env)

BODY = bytes(range(256)) * 240  # 61,440 bytes


def store(endpoint=None, attempts=5) -> S3Store:
    return S3Store(endpoint, attempts=attempts, backoff=0.01)


def listed(spec: str, endpoint=None) -> tuple:
    skipped = Skipped()
    found = list(store(endpoint).objects(spec, skipped))
    return [o.key for o in found], skipped


def failure(call) -> str:
    with pytest.raises((InputError, UsageError, InputChanged)) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and TEST_SECRET_KEY not in message
    return message


def test_is_s3_takes_the_scheme_in_any_case():
    assert is_s3("s3://bucket/key") and is_s3("S3://Bucket/") and not is_s3("s3:/x")
    assert not is_s3("landing/s3://x") and not is_s3("https://s3.amazonaws.com/b/k")


def test_importing_the_module_imports_no_client():
    code = ("import sys, durable_ingest.sources.s3; "
            "assert not {'boto3', 'botocore'} & set(sys.modules), 'imported a client'")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- naming the objects ---------------------------------------------------------------------------
TREE = ["landing/a.json", "landing/b.ndjson.gz", "landing/c.CSV", "landing/sub/d.JSONL",
        "landing/.hidden/e.json", "landing/.hidden/deep/f.json", "landing/sub/.g.json",
        "landing/sub/x.txt", "landing/sub/2024/h.json", "landing-2/z.json", "other/q.json",
        "landing/sub/[x].json"]


@pytest.fixture
def tree(s3_env, s3_bucket, tmp_path):
    """The same files in the bucket and in a local folder, to compare with local globs."""
    s3_bucket.put_many(TREE)
    s3_bucket.put("landing/folder/", b"")  # a console's folder marker: not a file
    for key in TREE:
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_bytes(b"{}\n")
    return s3_bucket, tmp_path


def test_a_prefix_is_walked_as_a_local_folder(tree, monkeypatch):
    bucket, local = tree
    keys, skipped = listed(bucket.url("landing/"))

    assert keys == ["landing/a.json", "landing/b.ndjson.gz", "landing/sub/2024/h.json",
                    "landing/sub/[x].json", "landing/sub/d.JSONL"]  # key order
    monkeypatch.chdir(local)
    local_skipped = Skipped()
    assert sorted(walk("landing", local_skipped)) == sorted(keys)
    assert (skipped.hidden, skipped.other) == (local_skipped.hidden, local_skipped.other) == (2, 2)


@pytest.mark.parametrize("pattern", ["landing/**/*.json", "landing/*", "landing*/*.json",
                                     "landing/.hidden/**", "landing/**", "**/?.json",
                                     "landing/sub/[!d]*.*", "landing/sub/**/*.[jJ]*",
                                     "landing/.*/*.json", "*/sub/?x?.json"])
def test_a_glob_matches_what_it_matches_in_a_local_folder(tree, monkeypatch, pattern):
    bucket, local = tree
    keys, skipped = listed(bucket.url(pattern))

    monkeypatch.chdir(local)
    assert keys == sorted(keys) and sorted(keys) == sorted(glob_files(pattern))
    assert (skipped.hidden, skipped.other) == (0, 0)


def test_a_glob_lists_only_below_the_text_before_its_first_wildcard(tree, fault_proxy):
    bucket, _ = tree
    keys, _ = listed(bucket.url("landing/sub/2*/*.json"), fault_proxy.url)

    assert keys == ["landing/sub/2024/h.json"]
    assert [path for _, path, _, _ in fault_proxy.seen] == \
        [f"/{bucket.name}?list-type=2&prefix=landing%2Fsub%2F2&max-keys=1000&encoding-type=url"]


def test_a_single_key_is_one_object_with_its_etag(tree):
    bucket, _ = tree
    put = bucket.put("landing/one.json", b'{"a": 1}\n')
    found = list(store().objects(bucket.url("landing/one.json"), Skipped()))

    assert found == [S3Object(bucket.url("landing/one.json"), bucket.name, "landing/one.json",
                              9, put["ETag"], None)]


def test_a_folder_named_without_its_slash_is_walked(tree):
    bucket, _ = tree
    keys, skipped = listed(bucket.url("landing/sub"))

    assert keys == ["landing/sub/2024/h.json", "landing/sub/[x].json", "landing/sub/d.JSONL"]
    assert (skipped.hidden, skipped.other) == (1, 1)


def test_a_whole_bucket_and_an_empty_prefix(tree):
    bucket, _ = tree
    assert len(listed(bucket.url(""))[0]) == 7
    assert listed(f"S3://{bucket.name}")[0] == listed(bucket.url())[0]
    assert listed(bucket.url("nothing/here/")) == ([], Skipped())


@pytest.mark.slow  # 2,500 objects to put
def test_listing_goes_page_by_page_and_yields_as_pages_arrive(s3_env, s3_bucket, fault_proxy):
    keys = [f"many/{n:05d}.ndjson" for n in range(2500)]
    s3_bucket.put_many(keys + ["many/readme.md"])
    objects = store(fault_proxy.url).objects(s3_bucket.url("many/"), skipped := Skipped())

    first = next(objects)
    assert first.key == "many/00000.ndjson" and len(fault_proxy.seen) == 1
    rest = [o.key for o in objects]
    assert [first.key] + rest == keys and skipped.other == 1
    assert len(fault_proxy.seen) == 3  # 1,000 keys a page
    assert "continuation-token=" in fault_proxy.seen[2][1]


# -- reading them ---------------------------------------------------------------------------------
@pytest.fixture
def one(s3_env, s3_bucket):
    s3_bucket.put("data/one.ndjson", BODY)
    return s3_bucket, next(store().objects(s3_bucket.url("data/one.ndjson"), Skipped()))


def test_ranged_reads_are_conditional_on_the_etag(one, fault_proxy):
    bucket, obj = one
    reader = store(fault_proxy.url)

    assert reader.read_range(obj, 1000, 5000) == BODY[1000:5000]
    assert reader.read_range(obj, 0, obj.size) == BODY
    assert reader.read_range(obj, 7, 7) == b""
    assert fault_proxy.seen == [("GET", f"/{bucket.name}/data/one.ndjson", "bytes=1000-4999",
                                 obj.etag),
                                ("GET", f"/{bucket.name}/data/one.ndjson", None, obj.etag)]
    with pytest.raises(ValueError):
        reader.read_range(obj, 10, obj.size + 1)


def test_open_reads_the_whole_object_in_pieces_and_seeks(one):
    _, obj = one
    with store().open(obj) as stream:
        assert stream.read(100) == BODY[:100] and stream.tell() == 100
        assert stream.read(60_000) == BODY[100:60_100]
        assert stream.read() == BODY[60_100:] and stream.read(10) == b""
        stream.seek(-40, os.SEEK_END)
        assert stream.read() == BODY[-40:]


def test_a_gzip_object_is_read_whole_as_stored(s3_env, s3_bucket):
    records = b"".join(json.dumps({"n": n}).encode() + b"\n" for n in range(2000))
    packed = gzip.compress(records)
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="z/r.ndjson.gz", Body=packed,
                                ContentEncoding="gzip", ContentType="application/x-ndjson")
    obj = next(store().objects(s3_bucket.url("z/"), Skipped()))

    assert obj.size == len(packed)
    assert store().open(obj).read() == packed  # no transparent decompression
    with gzip.GzipFile(fileobj=store().open(obj)) as unpacked:
        assert unpacked.read() == records


def test_a_replaced_object_is_never_read(one):
    bucket, obj = one
    bucket.put("data/one.ndjson", BODY[::-1])

    message = failure(lambda: store().read_range(obj, 0, 100))
    assert message == (f"{obj.url}: changed since it was listed (no longer ETag {obj.etag}); "
                       "load it again to read the new content")
    with pytest.raises(ObjectChanged):
        store().open(obj).read(10)
    bucket.delete("data/one.ndjson")
    with pytest.raises(ObjectChanged):
        store().read_range(obj, 0, 100)


def test_in_a_versioned_bucket_a_single_key_is_pinned_to_its_version(s3_env):
    bucket = TestBucket(os.environ["AWS_ENDPOINT_URL"], versioned=True)
    first = bucket.put("v/one.json", BODY)
    obj = next(store().objects(bucket.url("v/one.json"), Skipped()))
    listed_obj = next(store().objects(bucket.url("v/"), Skipped()))
    assert obj.version_id == first["VersionId"] and listed_obj.version_id is None

    bucket.put("v/one.json", b"[]")  # a new version; the listed one stays in the bucket
    assert store().read_range(obj, 10, 20) == BODY[10:20]
    with pytest.raises(ObjectChanged):  # listings carry no version: the ETag tells
        store().read_range(listed_obj, 10, 20)
    bucket.delete("v/one.json", first["VersionId"])
    assert "no longer version" in failure(lambda: store().read_range(obj, 10, 20))


def test_a_body_broken_midway_resumes_from_where_it_broke(one, fault_proxy):
    bucket, obj = one
    fault_proxy.script.extend(["reset-body"])
    reader = store(fault_proxy.url)

    with reader.open(obj) as stream:
        pieces = [stream.read(4096) for _ in range(16)]
    assert b"".join(pieces) == BODY and reader.retries == 1
    (_, _, first, _), (_, _, resumed, condition) = fault_proxy.seen
    assert first is None and condition == obj.etag
    start = int(resumed.split("=")[1].split("-")[0])
    assert resumed == f"bytes={start}-{len(BODY) - 1}" and 0 < start <= len(BODY) // 2


def test_a_broken_range_resumes_and_a_reset_after_the_headers_too(one, fault_proxy):
    _, obj = one
    fault_proxy.script.extend(["reset-headers", "reset-body"])
    reader = store(fault_proxy.url)

    assert reader.read_range(obj, 100, 50_100) == BODY[100:50_100]
    assert reader.retries == 2 and fault_proxy.seen[0][2] == "bytes=100-50099"


def test_a_replacement_between_a_break_and_its_resumption_is_caught(one, fault_proxy):
    bucket, obj = one
    fault_proxy.script.extend(["reset-body"])
    stream = store(fault_proxy.url).open(obj)
    assert stream.read(1000) == BODY[:1000]

    bucket.put("data/one.ndjson", BODY[::-1])
    with pytest.raises(ObjectChanged):
        stream.read()
    assert fault_proxy.seen[-1][3] == obj.etag


def test_injected_500_and_503_are_retried(one, fault_proxy):
    bucket, obj = one
    fault_proxy.script.extend(["503", "500", None, "503"])
    reader = store(fault_proxy.url)

    keys = [o.key for o in reader.objects(bucket.url("data/"), Skipped())]
    assert keys == ["data/one.ndjson"] and reader.read_range(obj, 0, 10) == BODY[:10]
    assert reader.retries == 3 and fault_proxy.served == {"503": 2, "500": 1, "ok": 2}


def test_faults_past_the_attempts_end_in_one_line(one, fault_proxy):
    bucket, obj = one
    fault_proxy.script.extend(["503"] * 3)

    message = failure(lambda: store(fault_proxy.url, attempts=3).read_range(obj, 0, 10))
    assert message == (f"{obj.url}: SlowDown after 3 attempts; the store is failing or "
                       "throttling: try again later")
    fault_proxy.script.extend(["reset-body"] * 3)
    message = failure(lambda: store(fault_proxy.url, attempts=3).read_range(obj, 0, 50_000))
    assert message.startswith(f"{obj.url}: reading broke off at byte ")
    assert message.endswith("3 times (An error occurred while reading from response stream: "
                            "(\"Connection broken: ConnectionResetError(104, 'Connection reset "
                            "by peer')\", ConnectionResetError(104, 'Connection reset by peer')));"
                            " try again later")


@pytest.mark.slow  # 1,100 objects, about 300 requests through the proxy
def test_a_flaky_store_still_gives_every_key_and_byte(s3_env, s3_bucket, fault_proxy):
    s3_bucket.put_many([f"f/{n:04d}.json" for n in range(1100)], BODY[:3000])
    fault_proxy.share = 0.2
    reader = S3Store(fault_proxy.url, attempts=8, backoff=0.001)

    objects = list(reader.objects(s3_bucket.url("f/"), Skipped()))
    assert len(objects) == 1100
    assert all(reader.read_range(o, 5, 3000) == BODY[5:3000] for o in objects[::5])
    assert reader.retries == fault_proxy.faults > 20


# -- failures a user can meet ---------------------------------------------------------------------
def test_a_missing_bucket_and_a_missing_key(s3_env, s3_bucket):
    where = os.environ["AWS_ENDPOINT_URL"]
    for spec in ("s3://no-such-bucket-x/", "s3://no-such-bucket-x/k.json",
                 "s3://no-such-bucket-x/**/*.json"):
        assert failure(lambda: listed(spec)) == (
            f"s3://no-such-bucket-x: no such bucket at {where}; check the bucket's name, "
            "AWS_REGION and AWS_ENDPOINT_URL")
    assert failure(lambda: listed(s3_bucket.url("nope.json"))) == (
        f"{s3_bucket.url('nope.json')}: no such key; check the key (a prefix ends with /)")
    assert failure(lambda: listed("s3:///key")) == \
        "s3:///key: no bucket; write s3://BUCKET/KEY or s3://BUCKET/PREFIX/"


def test_an_unreachable_endpoint_is_named(s3_env):
    from s3_server import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"
    message = failure(lambda: list(S3Store(endpoint, attempts=2, backoff=0.01).objects(
        "s3://b/k.json", Skipped())))
    assert message == (f"s3://b/k.json: cannot reach the S3 endpoint {endpoint} (2 attempts); "
                       "check --endpoint-url (or AWS_ENDPOINT_URL) and that it is up")


def test_no_credentials_at_all(s3_env, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert failure(lambda: listed("s3://b/k.json")) == (
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
        "AWS_SESSION_TOKEN for temporary keys), or AWS_PROFILE to a profile of ~/.aws/config")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAONLYTHEKEYID")
    assert "AWS_SECRET_ACCESS_KEY" in failure(lambda: listed("s3://b/k.json"))
    monkeypatch.setenv("AWS_PROFILE", "nowhere")
    assert failure(lambda: listed("s3://b/k.json")) == (
        f"AWS_PROFILE=nowhere: no such profile in {os.environ['AWS_CONFIG_FILE']}; add it or "
        "unset AWS_PROFILE")


def test_an_endpoint_needs_no_region_and_an_explicit_one_wins(s3_env, s3_bucket, monkeypatch):
    s3_bucket.put("r/a.json", b"{}")
    monkeypatch.delenv("AWS_REGION")
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # nothing listens there

    assert listed(s3_bucket.url("r/"), endpoint)[0] == ["r/a.json"]


def test_without_the_extra_it_says_how_to_install_it(s3_env, monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 now raises ImportError
    assert failure(lambda: listed("s3://b/k.json")) == NEEDS_EXTRA
    assert NEEDS_EXTRA == "s3:// inputs need the s3 extra: pip install 'durable-ingest[s3]'"


@pytest.fixture
def iam(s3_env, s3_bucket, moto_server):
    """moto's IAM checks on, with a user that may list the bucket but not read objects, and
    that user's keys; the environment's fixed keys are then unknown to the server."""
    s3_bucket.put("data/one.ndjson", BODY)
    admin = admin_client(moto_server.url, service="iam")
    admin.create_user(UserName=s3_bucket.name)
    # moto checks the API operation's name (s3:ListObjectsV2) where AWS checks s3:ListBucket
    may_list = {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:ListObjectsV2"],
                "Resource": f"arn:aws:s3:::{s3_bucket.name}"}
    admin.put_user_policy(UserName=s3_bucket.name, PolicyName="list", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [may_list]}))
    key = admin.create_access_key(UserName=s3_bucket.name)["AccessKey"]
    moto_server.require_auth(True)
    try:
        yield s3_bucket, key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        moto_server.require_auth(False)


@pytest.mark.slow
def test_bad_credentials_say_which_key_to_check(iam, monkeypatch):
    bucket, key_id, _ = iam
    message = failure(lambda: listed(bucket.url("data/")))
    assert message == (f"{bucket.url('data/')}: the access key is not known at "
                       f"{os.environ['AWS_ENDPOINT_URL']} (InvalidAccessKeyId); check "
                       "AWS_ACCESS_KEY_ID or the profile's aws_access_key_id")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)  # a known key, with the wrong secret
    for spec in ("data/", "data/one.ndjson"):
        assert failure(lambda: listed(bucket.url(spec))) == (
            f"{bucket.url(spec)}: the secret key does not match the access key "
            "(SignatureDoesNotMatch); check AWS_SECRET_ACCESS_KEY or the profile's "
            "aws_secret_access_key")


def test_access_denied_names_the_action_and_the_resource(iam, monkeypatch):
    bucket, key_id, secret = iam
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    obj = next(store().objects(bucket.url("data/"), Skipped()))  # listing is allowed

    expected = (f"{obj.url}: access denied to s3:GetObject on arn:aws:s3:::{bucket.name}/"
                "data/one.ndjson; grant it to these credentials (IAM or bucket policy), or use "
                "credentials that have it")
    assert failure(lambda: store().read_range(obj, 0, 10)) == expected
    assert failure(lambda: listed(obj.url)) == expected  # HEAD: asked again to know why
    assert secret not in expected


def test_credentials_from_a_profile_in_the_aws_config_file(iam, monkeypatch, tmp_path):
    bucket, key_id, secret = iam
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    Path(os.environ["AWS_CONFIG_FILE"]).write_text(
        f"[profile landing]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n")
    monkeypatch.setenv("AWS_PROFILE", "landing")

    assert listed(bucket.url("data/"))[0] == ["data/one.ndjson"]


def test_a_secret_in_what_the_server_says_is_never_shown(one, fault_proxy, monkeypatch):
    _, obj = one
    monkeypatch.setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLETOKENsecretpart")
    fault_proxy.script.extend([(400, "InvalidArgument", f"bad {TEST_SECRET_KEY} and "
                                "FwoGZXIvYXdzEXAMPLETOKENsecretpart")])

    message = failure(lambda: store(fault_proxy.url).read_range(obj, 0, 10))
    assert message == f"{obj.url}: get_object refused (InvalidArgument): bad *** and ***"
