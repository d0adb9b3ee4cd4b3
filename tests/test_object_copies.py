"""The copies a scan keeps of the objects it downloaded (sources/object_copies.py): whole or
not at all, named by the version, within their budget, and swept when stale. On the
spool's real files; the loads that use them are in test_s3_inputs.py."""

import os
import time

import pytest

from durable_ingest.sources import object_copies
from durable_ingest.sources.object_copies import (copies_dir, copy_path, discard, keeper_for,
                                                  read_copy)
from durable_ingest.sources.s3 import S3Object

BODY = b'{"a": 1}\n{"a": 2}\n'
ENDPOINT = "http://127.0.0.1:9000"


@pytest.fixture(autouse=True)
def spool(tmp_path, monkeypatch):
    monkeypatch.setenv("INGEST_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.delenv(object_copies.BUDGET_ENV, raising=False)
    monkeypatch.setattr(object_copies, "_used", None)
    return tmp_path / "spool"


def an_object(etag: str = '"e1"', size: int = len(BODY)) -> S3Object:
    return S3Object("s3://b/k.ndjson", "b", "k.ndjson", size, etag, None)


def kept(obj: S3Object, body: bytes = BODY):
    keeper = keeper_for(ENDPOINT, obj)
    assert keeper is not None
    for n in range(0, len(body), 5):
        keeper.write(body[n:n + 5])
    keeper.commit()
    return keeper


def test_a_whole_body_is_kept_and_read_by_ranges_of_that_version():
    obj = an_object()
    kept(obj)

    assert read_copy(ENDPOINT, obj, 9, 18) == b'{"a": 2}\n'
    assert read_copy(ENDPOINT, an_object(etag='"e2"'), 0, 9) is None  # another version
    assert read_copy("", obj, 0, 9) is None  # another endpoint
    assert [p.name for p in os.scandir(copies_dir())] == [os.path.basename(copy_path(ENDPOINT, obj))]


def test_a_body_cut_short_or_abandoned_leaves_nothing():
    obj = an_object()
    kept(obj, BODY[:-3])  # the stream ended early: not the object listed
    abandoned = keeper_for(ENDPOINT, an_object(etag='"e3"'))
    abandoned.write(BODY)
    abandoned.abandon()
    abandoned.write(BODY)  # a late write of the stream feeding it is ignored

    assert read_copy(ENDPOINT, obj, 0, 9) is None
    assert os.listdir(copies_dir()) == []


def test_the_chunk_that_read_it_deletes_it():
    obj = an_object()
    kept(obj)
    discard(ENDPOINT, obj)
    discard(ENDPOINT, obj)  # twice: nothing to do

    assert read_copy(ENDPOINT, obj, 0, 9) is None and os.listdir(copies_dir()) == []


def test_copies_stop_at_their_budget_and_are_off_at_zero(monkeypatch):
    monkeypatch.setenv(object_copies.BUDGET_ENV, "1")
    big = an_object(size=700_000)
    assert keeper_for(ENDPOINT, big) is not None
    assert keeper_for(ENDPOINT, an_object(etag='"e2"', size=700_000)) is None  # over 1 MB

    monkeypatch.setenv(object_copies.BUDGET_ENV, "0")
    assert keeper_for(ENDPOINT, an_object(etag='"e4"')) is None
    assert keeper_for(ENDPOINT, an_object(size=object_copies.LARGEST + 1)) is None


def test_a_budget_measured_on_disk_sweeps_copies_a_day_old(monkeypatch):
    old, fresh = an_object(etag='"old"'), an_object(etag='"new"')
    kept(old), kept(fresh)
    day_ago = time.time() - object_copies.STALE_SECONDS - 60
    os.utime(copy_path(ENDPOINT, old), (day_ago, day_ago))
    monkeypatch.setattr(object_copies, "_used", None)  # another process: it measures the disk

    assert keeper_for(ENDPOINT, an_object(etag='"third"')) is not None
    assert object_copies._used == 2 * len(BODY)  # the fresh copy and the one just reserved
    assert read_copy(ENDPOINT, old, 0, 9) is None and read_copy(ENDPOINT, fresh, 0, 9) is not None
