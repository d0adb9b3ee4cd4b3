"""Objects of S3 buckets as a run's inputs, at plan time: the store a process reads them
with, and each new object read once, as it downloads.

``scan_object`` makes one streaming pass over an object's body that both fingerprints and
scans it, exactly as a file's scan does (gzip decompressed on the fly, a UTF-8 byte-order
mark skipped, the label added), so the same bytes in a file and in a bucket are one
content. ``FingerprintCache`` remembers, per machine (in the spool), the fingerprint of each
object it read, under what names that content in the bucket: its bucket, key, ETag,
VersionId and size (and the endpoint and label). An object seen before is then known
without downloading it again.
"""

import gzip
import io
import os
import sys
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

from ..errors import InputError, UsageError
from .common import BLOCK_BYTES
from .object_copies import Keeper, keeper_for
from .s3 import NEEDS_EXTRA, ObjectChanged, S3Object, S3Store
from .known import MachineCache
from .scan import scan_stream
from .spool import GZIP_MAGIC

DOWNLOADS = 8  # objects (or pieces of them) downloaded at once by one process

OVERRIDE_ENV = "INGEST_S3_ENDPOINT"  # --endpoint-url of worker and resume, for its helpers too
_stores: dict = {}
_shared = threading.Lock()
_pool: Optional[ThreadPoolExecutor] = None


def use_endpoint(url: str) -> None:
    """``--endpoint-url`` of ``ingest worker`` or ``ingest resume``: what this process (and
    its helpers, through the environment) reads every run's objects from, whatever
    endpoint the run recorded."""
    os.environ[OVERRIDE_ENV] = url


def chosen_endpoint(endpoint: Optional[str]) -> str:
    """The endpoint this process reads a run's objects from ("": AWS's)."""
    return os.environ.get(OVERRIDE_ENV) or endpoint or ""


def store_for(endpoint: Optional[str]) -> S3Store:
    """This process's store for a run's endpoint (one client per endpoint, made on first use)."""
    chosen = chosen_endpoint(endpoint) or None
    with _shared:
        if chosen not in _stores:
            _stores[chosen] = S3Store(chosen)
        return _stores[chosen]


def resolved_endpoint(given: Optional[str]) -> str:
    """The endpoint a run records for its workers: ``--endpoint-url``, else the one this
    process's environment names (``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``), else ""
    (AWS). A URL with credentials in it is refused: the endpoint is stored and shown."""
    from urllib.parse import urlsplit

    url = given or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            raise UsageError("--endpoint-url (or AWS_ENDPOINT_URL) must be an http(s) URL of "
                             "the S3 endpoint, without credentials, e.g. http://127.0.0.1:9000")
    return url


def check_extra() -> None:
    """``UsageError`` (exit 2) if boto3, the ``s3`` extra, is not installed."""
    import importlib.util

    if importlib.util.find_spec("boto3") is None:
        raise UsageError(NEEDS_EXTRA)


def pool() -> ThreadPoolExecutor:
    """The threads that download objects (made on first use: after any fork)."""
    global _pool
    with _shared:
        if _pool is None:
            _pool = ThreadPoolExecutor(DOWNLOADS, thread_name_prefix="ingest-s3")
        return _pool


# -- one read that fingerprints and scans ---------------------------------------------------
@dataclass(frozen=True)
class ObjectPlan:
    """What the scan of an object found: enough to load it chunk by chunk."""

    fingerprint: str
    shape: str
    records: int
    pieces: list  # [start, end, first position, count], in its (decompressed) bytes
    compression: Optional[str] = None  # "gzip": the pieces are ranges of its decompressed bytes


def scan_object(obj: S3Object, chunk_size: int, fmt: Optional[str], label: str,
                endpoint: Optional[str]) -> ObjectPlan:
    """Download the object once, scanning and fingerprinting it as it comes (bounded
    memory), and keeping a copy for this machine's chunks where one fits (``object_copies``);
    ``InputError`` (one line) if it can't be loaded."""
    keeper = None if obj.key.lower().endswith(".gz") else keeper_for(chosen_endpoint(endpoint), obj)
    try:
        with store_for(endpoint).open(obj) as body:
            plan, gzipped = _scan_body(body if keeper is None else Tee(body, keeper), obj,
                                       chunk_size, fmt, label)
    except ObjectChanged:
        raise InputError(f"{obj.url}: was replaced while it was being read; run the command "
                         "again to load its new content") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise InputError(f"{obj.url}: is a corrupt or truncated gzip file ({exc}); upload it "
                         "again") from None
    finally:
        # A copy is kept whole and scanned, and not of a gzip body (its pieces are ranges
        # of the decompressed bytes).
        if keeper is not None and (sys.exc_info()[0] is not None or gzipped):
            keeper.abandon()
    if keeper is not None:
        keeper.commit()
    return ObjectPlan(plan.fingerprint, plan.shape, plan.records,
                      [list(p) for p in plan.chunks], "gzip" if gzipped else None)


def _scan_body(body, obj: S3Object, chunk_size: int, fmt: Optional[str], label: str) -> tuple:
    """(the scan's ``Plan``, whether the body is gzip-compressed)."""
    raw = Rewindable(body)
    gzipped = raw.read(len(GZIP_MAGIC)) == GZIP_MAGIC
    raw.seek(0)
    if not gzipped and obj.key.lower().endswith(".gz"):
        raise InputError(f"{obj.url}: is named .gz but is not gzip-compressed; rename "
                         "it without .gz if it is plain JSON, or upload it again")
    if not gzipped:
        return scan_stream(raw, obj.url, chunk_size, fmt, label, obj.url, obj.size), False
    with gzip.GzipFile(fileobj=raw) as unpacked:
        return scan_stream(Rewindable(unpacked), f"{obj.url} (decompressed)", chunk_size, fmt,
                           label, obj.url), True


class Tee:
    """A body whose bytes are also written to a ``Keeper`` as they are read."""

    def __init__(self, body, keeper: Keeper):
        self._body, self._keeper = body, keeper

    def read(self, size: int = -1) -> bytes:
        data = self._body.read(size)
        if data:
            self._keeper.write(data)
        return data


class Rewindable(io.RawIOBase):
    """A stream read front to back whose first block can be read again: a scan reads the
    head, then seeks back to just past a byte-order mark, without a second download."""

    def __init__(self, raw, keep: int = BLOCK_BYTES):
        super().__init__()
        self._raw, self._keep = raw, keep
        self._head = b""  # the first bytes of raw, while they are all that was read of it
        self._taken = 0  # bytes read from raw
        self._position = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """``size`` bytes (all the rest for -1), fewer only at the end."""
        size = -1 if size is None else size
        out = b""
        if self._position < self._taken:  # within the head, after a seek back
            out = self._head[self._position:None if size < 0 else self._position + size]
            self._position += len(out)
        while size < 0 or len(out) < size:
            data = self._raw.read(-1 if size < 0 else size - len(out))
            if not data:
                break
            if self._taken == len(self._head) and self._taken < self._keep:
                self._head += data
            self._taken += len(data)
            self._position += len(data)
            out += data
        return out

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET or not (0 <= offset <= self._taken == len(self._head)):
            raise io.UnsupportedOperation("only a seek back within the first block")
        self._position = offset
        return offset

    def tell(self) -> int:
        return self._position


# -- the fingerprints this machine knows ----------------------------------------------------
class FingerprintCache:
    """Fingerprints of the objects this machine read, one small file each under the spool
    (``s3-fingerprints/``, see ``sources.known``)."""

    def __init__(self, label: str, endpoint: Optional[str]):
        self.label, self.endpoint = label, chosen_endpoint(endpoint)
        self.cache = MachineCache("s3-fingerprints")
        self.directory = self.cache.directory

    def _parts(self, obj: S3Object) -> tuple:
        return (self.endpoint, obj.bucket, obj.key, obj.etag, obj.version_id or "",
                str(obj.size), self.label)

    def get(self, obj: S3Object) -> Optional[str]:
        """The object's fingerprint, if this machine read it before."""
        raw = self.cache.read(*self._parts(obj))
        found = (raw or b"")[:64].decode(errors="replace").strip()
        return found if len(found) == 20 and all(c in "0123456789abcdef" for c in found) else None

    def put(self, obj: S3Object, fingerprint: str) -> None:
        """Remember it (best effort: a spool that can't be written only costs a download)."""
        self.cache.write(fingerprint.encode(), *self._parts(obj))
