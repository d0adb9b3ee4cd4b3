"""What a file's fingerprint covers, shared by ``identify`` (which only hashes) and ``scan``
(which also cuts records), so both always agree.

The fingerprint hashes the bytes after a UTF-8 byte-order mark, except, in NDJSON, an
unfinished last line: one with no newline after it that does not parse as JSON (a writer
is still at it). That line is *held back*: it is no record, no ``errors`` row and no part of
the file's identity, so the file as it will be once the line is complete is the same file
grown by a tail (see ``sources.rows``). ``covered`` is where the hashed bytes end.

A hasher can also remember the hash of the first ``snapshot_at`` bytes on the way (a file
that grew: are its old bytes unchanged?) without a second pass.
"""

import codecs
import hashlib
import json
from functools import lru_cache
from typing import Optional

from ..contract import fingerprint_of
from .common import BLOCK_BYTES, MAX_RECORD_BYTES


class ContentHasher:
    """Feed it a file's bytes from ``start`` (past any byte-order mark) with ``update``;
    ``finish`` says what was covered. ``ndjson``: hold back an unfinished last line."""

    def __init__(self, start: int, ndjson: bool, snapshot_at: Optional[int] = None):
        self._sha = hashlib.sha256()
        self.fed = start  # file offset of the next byte
        self.ndjson = ndjson
        self.snapshot_at = snapshot_at
        self.snapshot: Optional[str] = None  # hex digest of the bytes before snapshot_at
        self._at_newline = (self._sha.copy(), start)  # the hash just after the last newline
        self._tail = b""  # the bytes after the last newline (while they might be held back)
        self._tail_size = 0
        self.covered = start
        self.held_back = 0  # 1 if an unfinished last line (not blank) was held back

    def update(self, block) -> None:
        if not self.ndjson:
            self._hash(block)
            return
        cut = block.rfind(b"\n")
        if cut < 0:
            self._hash(block)
            self._keep(block)
            return
        self._hash(memoryview(block)[:cut + 1])
        self._at_newline = (self._sha.copy(), self.fed)
        self._tail, self._tail_size = b"", 0
        rest = memoryview(block)[cut + 1:]
        self._hash(rest)
        self._keep(rest)

    def _keep(self, data) -> None:
        self._tail_size += len(data)
        if self._tail_size <= MAX_RECORD_BYTES + 1:
            self._tail += bytes(data)
        else:
            self._tail = b""

    def _hash(self, data) -> None:
        at = self.snapshot_at
        if at is not None and self.snapshot is None and self.fed <= at <= self.fed + len(data):
            before = at - self.fed
            self._sha.update(data[:before])
            self.snapshot = self._sha.hexdigest()
            data, self.fed = data[before:], at
        self._sha.update(data)
        self.fed += len(data)

    def finish(self) -> str:
        """The hex digest of the covered bytes; sets ``covered`` and ``held_back``."""
        if self.ndjson and self._tail_size and not finished_line(self._tail, self._tail_size):
            sha, self.covered = self._at_newline
            self.held_back = int(self._tail_size > MAX_RECORD_BYTES
                                 or bool(self._tail.strip(b" \t\r")))
            return sha.hexdigest()
        self.covered = self.fed
        return self._sha.hexdigest()


def finished_line(tail: bytes, size: int) -> bool:
    """Whether a last line with no newline after it is a whole JSON value (loaded as it is,
    as before); a longer one than a record may be is never finished (it can't load)."""
    if size > MAX_RECORD_BYTES or not tail.strip(b" \t\r"):
        return False
    try:
        json.loads(tail)
    except (ValueError, RecursionError):
        return False
    return True


@lru_cache(maxsize=256)
def still_holds(path: str, size: int, mtime_ns: int, covered: int, fingerprint: str,
                label: str) -> bool:
    """Whether the file at ``path`` (now ``size`` bytes, modified at ``mtime_ns``: the key
    of the answer, kept per process) still starts with the ``covered`` bytes that were
    fingerprinted: a file that only grew since its scan (a log appended to while it loads)
    still holds every record its pieces name."""
    try:
        with open(path, "rb") as f:
            start = len(codecs.BOM_UTF8) if f.read(3) == codecs.BOM_UTF8 else 0
            f.seek(start)
            sha, left = hashlib.sha256(), covered - start
            while left > 0 and (block := f.read(min(left, BLOCK_BYTES * 4))):
                sha.update(block)
                left -= len(block)
    except OSError:
        return False
    return left <= 0 and fingerprint_of(sha.hexdigest(), label) == fingerprint
