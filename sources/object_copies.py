"""Copies of the objects a scan downloaded, kept in this machine's spool so that the chunks
loaded on this machine read their pieces from disk instead of downloading each object a
second time (for small objects the cost of a bucket load is per request, not per byte).

A copy is named by everything that identifies the version the scan read (endpoint, bucket,
key, ETag, VersionId, size), written as the body streams in and renamed into place only
once the whole body was read and scanned: a copy that exists is that version, whole. A chunk
on another machine, or one that finds no copy, reads by ranged GETs as before.

The copies are a bounded cache, never a second input: objects over ``LARGEST`` are not kept,
nor any once the copies reach ``INGEST_S3_COPIES_MB`` (0 turns them off); a copy is deleted
by the chunk that reads the object's last piece, by the plan when the object does not load
(its content was loaded before, or it is bad input), and by any scan once it is a day old.
"""

import hashlib
import os
import threading
import time
from typing import Optional

from .s3 import S3Object
from .spool import remove_quietly, spool_dir

BUDGET_ENV = "INGEST_S3_COPIES_MB"
DEFAULT_BUDGET_MB = 1024
LARGEST = 16 << 20  # a bigger object is read again by ranges: a second request costs it little
STALE_SECONDS = 24 * 3600
MEASURE_EVERY = 5.0  # seconds between two sums of the copies on disk, once over the budget

_lock = threading.Lock()
_used: Optional[int] = None  # bytes of copies on disk, as this process last knew them
_measured = 0.0


def copies_dir() -> str:
    return os.path.join(spool_dir(), "s3-copies")


def copy_path(endpoint: str, obj: S3Object) -> str:
    names = "\0".join([endpoint, obj.bucket, obj.key, obj.etag, obj.version_id or "",
                       str(obj.size)])
    return os.path.join(copies_dir(), hashlib.sha256(names.encode()).hexdigest()[:40] + ".data")


def budget() -> int:
    """The bytes the copies may take (``INGEST_S3_COPIES_MB``; unreadable: the default)."""
    try:
        return max(0, int(os.environ.get(BUDGET_ENV, DEFAULT_BUDGET_MB))) << 20
    except ValueError:
        return DEFAULT_BUDGET_MB << 20


class Keeper:
    """What a scan writes its object's body into, as it streams (``write``), and then
    ``commit``s (whole: renamed into place) or ``abandon``s."""

    def __init__(self, endpoint: str, obj: S3Object):
        self.obj, self.final = obj, copy_path(endpoint, obj)
        self.partial = f"{self.final[:-5]}-{os.getpid()}-{threading.get_ident()}.partial"
        self.written = 0
        self.done = False
        self._file = None

    def write(self, data: bytes) -> None:
        if self.done:
            return
        try:
            if self._file is None:
                self._file = open(self.partial, "wb")
            self._file.write(data)
        except OSError:  # a full or read-only spool costs the chunks a download, no more
            self.abandon()
        self.written += len(data)

    def commit(self) -> None:
        """Put the copy in place if it holds the whole object; otherwise drop it."""
        if self.done:
            return
        try:
            if self._file is not None:
                self._file.close()
            if self.written != self.obj.size:
                raise OSError("incomplete")
            os.replace(self.partial, self.final)
            self.done = True
        except OSError:
            self.abandon()

    def abandon(self) -> None:
        if self.done:
            return
        self.done = True
        if self._file is not None and not self._file.closed:
            self._file.close()
        remove_quietly(self.partial)
        _release(self.obj.size)


def keeper_for(endpoint: str, obj: S3Object) -> Optional[Keeper]:
    """A ``Keeper`` for the object, if a copy of it fits (size, budget, a writable spool)."""
    if obj.size > LARGEST or obj.size == 0 or not _reserve(obj.size):
        return None
    try:
        os.makedirs(copies_dir(), exist_ok=True)
    except OSError:
        _release(obj.size)
        return None
    return Keeper(endpoint, obj)


def read_copy(endpoint: str, obj: S3Object, start: int, end: int) -> Optional[bytes]:
    """The bytes ``[start, end)`` of the object's copy on this machine, or None (no copy)."""
    try:
        with open(copy_path(endpoint, obj), "rb") as f:
            if os.fstat(f.fileno()).st_size != obj.size:
                return None
            f.seek(start)
            data = f.read(end - start)
    except OSError:
        return None
    return data if len(data) == end - start else None


def discard(endpoint: str, obj: S3Object) -> None:
    """Delete the object's copy, if this machine has one."""
    try:
        os.remove(copy_path(endpoint, obj))
    except OSError:
        return
    _release(obj.size)


def _reserve(size: int) -> bool:
    global _used, _measured
    limit = budget()
    if limit == 0:
        return False
    with _lock:
        if _used is None or (_used + size > limit and time.monotonic() - _measured > MEASURE_EVERY):
            _used, _measured = _measure(), time.monotonic()
        if _used + size > limit:
            return False
        _used += size
        return True


def _release(size: int) -> None:
    global _used
    with _lock:
        if _used is not None:
            _used = max(0, _used - size)


def _measure() -> int:
    """The bytes of the copies on disk, once those over a day old are deleted (copies whose
    last piece another machine read, or left by a run that was killed and never resumed)."""
    total, now = 0, time.time()
    try:
        with os.scandir(copies_dir()) as entries:
            for entry in entries:
                try:
                    stat = entry.stat()
                except OSError:
                    continue
                if now - stat.st_mtime > STALE_SECONDS:
                    remove_quietly(entry.path)
                else:
                    total += stat.st_size
    except OSError:
        return total
    return total
