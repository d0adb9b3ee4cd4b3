"""A chunk's pieces of objects in buckets, read where they are: ranged GETs conditional on
the ETag (and VersionId) the scan recorded, a few fetched ahead of the one being parsed, in
order (``ObjectPieces``). So a worker on any machine needs the database and AWS
credentials, never the files. On the machine that scanned an object, its pieces are read
from the copy the scan kept (``object_copies``), the same version, without a request.

A gzip object can't be read by ranges: the chunk's process decompresses it once into its own
spool (``local_copy``, named by the content's fingerprint, renamed into place when complete
and checked against the fingerprint) and reads the ranges of that copy.

A piece of an object that is no longer the one scanned (``ObjectChanged``) is never read,
so no chunk mixes two versions: each of its records becomes an ``ObjectChanged`` problem
(an ``errors`` row without the record), and the rest of the chunk loads.
"""

import gzip
import hashlib
import os
import threading
import zlib
from collections import deque
from typing import Optional

from ..contract import fingerprint_of
from ..errors import InputError
from .common import BLOCK_BYTES
from .object_copies import discard, read_copy
from .objects import chosen_endpoint, pool, store_for
from .read import RecordProblem, SourceTexts, parse_chunk, read_chunk
from .s3 import ObjectChanged, S3Object, split_url
from .scan import BOM
from .spool import SPOOL_DIR_ENV, remove_quietly, spool_dir

READ_AHEAD = 4  # pieces of a chunk fetched at once, ahead of the one being parsed
AHEAD_BYTES = 64 << 20  # and their bytes, at most (but always one piece)
_copying: dict = {}  # fingerprint -> the lock of its decompression in this process
_shared = threading.Lock()


def object_of(file) -> S3Object:
    """The object a ``sources`` row names, as its scan found it."""
    bucket, key = split_url(file.path)
    return S3Object(file.path, bucket, key, file.size, file.etag or "", file.version_id)


def changed_message(obj: S3Object) -> str:
    pinned = f"version {obj.version_id}" if obj.version_id else f"ETag {obj.etag}"
    return (f"{obj.url}: changed since it was scanned (no longer {pinned}); its records were "
            "not read: the new content loads as a new file on the next run (ingest load again)")


class ObjectPieces:
    """The pieces ``(file row, [start, end, first position, count])`` of a chunk's objects,
    in order: ``next_records()`` gives the records of the next one while the following ones
    (up to ``READ_AHEAD``, and ``AHEAD_BYTES``) are fetched."""

    def __init__(self, pieces: list, endpoint: Optional[str], label: str):
        self.pieces, self.endpoint, self.label = pieces, endpoint, label
        self.ahead: deque = deque()
        self.following = 0

    def next_records(self) -> tuple:
        """((position, record or RecordProblem) of the next piece, its ``SourceTexts``)."""
        self._fetch_ahead()
        file, (start, end, position, count), future = self.ahead.popleft()
        try:
            got = future.result()
        except ObjectChanged:
            problem = RecordProblem("ObjectChanged", changed_message(object_of(file)))
            return (((position + n, problem) for n in range(count)),
                    SourceTexts(None, file.shape, start, end, position))
        if isinstance(got, str):  # a decompressed copy in this process's spool
            return (read_chunk(got, file.shape, start, end, position),
                    SourceTexts(got, file.shape, start, end, position))
        return (parse_chunk(got, file.shape, position, file.path),
                SourceTexts(None, file.shape, start, end, position, data=got))

    def _fetch_ahead(self) -> None:
        in_flight = sum(piece[1] - piece[0] for _, piece, _ in self.ahead)
        while self.following < len(self.pieces) and len(self.ahead) < READ_AHEAD:
            file, piece = self.pieces[self.following]
            if self.ahead and in_flight + piece[1] - piece[0] > AHEAD_BYTES:
                return
            self.ahead.append((file, piece, pool().submit(self._fetch, file, piece)))
            in_flight += piece[1] - piece[0]
            self.following += 1

    def _fetch(self, file, piece: list):
        """The piece's bytes (from the copy this machine's scan kept, else a ranged GET), or
        (gzip) the path of the object's decompressed copy."""
        store, obj = store_for(self.endpoint), object_of(file)
        if file.compression == "gzip":
            return local_copy(store, obj, file.fingerprint, self.label)
        endpoint = chosen_endpoint(self.endpoint)
        kept = read_copy(endpoint, obj, piece[0], piece[1])
        if kept is None:
            return store.read_range(obj, piece[0], piece[1])
        if piece[0] == file.pieces[-1][0]:  # its last piece: the copy has served
            discard(endpoint, obj)
        return kept

    def close(self) -> None:
        """Pieces fetched ahead and not wanted: cancelled, or waited for."""
        for _, _, future in self.ahead:
            future.cancel()
        for _, _, future in self.ahead:
            if not future.cancelled():
                future.exception()
        self.ahead.clear()


def local_copy(store, obj: S3Object, fingerprint: str, label: str) -> str:
    """The object decompressed into this process's spool, downloaded once (streamed); the
    copy is named by its content and checked against it (``ObjectChanged`` if it differs)."""
    final = os.path.join(spool_dir(), f"s3-gunzip-{fingerprint}.data")
    with _shared:
        lock = _copying.setdefault(fingerprint, threading.Lock())
    with lock:  # two chunks of one object in this process: the second finds the copy
        if os.path.exists(final):
            return final
        partial = f"{final[:-len('.data')]}-{os.getpid()}-{threading.get_ident()}.partial"
        try:
            content = _decompress(store, obj, partial)
        except BaseException:
            remove_quietly(partial)
            raise
        if fingerprint_of(content, label) != fingerprint:
            remove_quietly(partial)
            raise ObjectChanged(obj)
        os.replace(partial, final)
    return final


def _decompress(store, obj: S3Object, partial: str) -> str:
    """Stream the object through gzip into ``partial``; the SHA-256 of what a scan hashes
    (the decompressed bytes after a byte-order mark)."""
    hasher = hashlib.sha256()
    try:
        os.makedirs(spool_dir(), exist_ok=True)
        with store.open(obj) as body, gzip.GzipFile(fileobj=body) as unpacked, \
                open(partial, "wb") as out:
            first = True
            while block := unpacked.read(BLOCK_BYTES):
                out.write(block)
                hasher.update(block[len(BOM):] if first and block.startswith(BOM) else block)
                first = False
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise InputError(f"{obj.url}: is a corrupt or truncated gzip file ({exc})") from None
    except OSError as exc:
        raise InputError(f"{obj.url}: cannot decompress it into {spool_dir()} ({exc.strerror}); "
                         f"free some space there or point {SPOOL_DIR_ENV} at a larger "
                         "directory") from None
    return hasher.hexdigest()
