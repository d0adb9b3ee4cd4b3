"""What this machine remembers of the inputs it read, so that a rerun does not read them
again: small files under the spool, one per input, each written atomically (whatever is
there is whole), best effort (a spool that can't be written only costs a read).

``MachineCache`` is the mechanism; ``FingerprintCache`` (in ``sources.objects``) keeps the
fingerprints of bucket objects by ETag; ``KnownFiles`` keeps, per local file, the size and
modification time it had when it was read and what it held: the quick check rsync and make
use. A file whose path, size and modification time (to the nanosecond) match is taken to
hold the same bytes and is neither read nor decompressed; ``--full-check`` reads every file
anyway (a file rewritten in place with the same size and the same modification time, on
purpose or by a clock gone back, is only seen then). Whether a content was *loaded* is
never decided here: the database's claims say it.
"""

import hashlib
import os
import threading
from dataclasses import asdict, dataclass
from typing import Optional

import orjson

from .spool import remove_quietly, spool_dir


class MachineCache:
    """Small values under ``<spool>/<name>/``, each in its own file named by a hash of its
    key's parts."""

    def __init__(self, name: str):
        self.directory = os.path.join(spool_dir(), name)

    def path(self, *parts: str) -> str:
        digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()
        return os.path.join(self.directory, digest[:2], digest[2:40])

    def read(self, *parts: str) -> Optional[bytes]:
        try:
            with open(self.path(*parts), "rb") as f:
                return f.read(4096)
        except OSError:
            return None

    def write(self, value: bytes, *parts: str) -> None:
        path = self.path(*parts)
        partial = f"{path}-{os.getpid()}-{threading.get_ident()}.partial"
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(partial, "wb") as f:
                f.write(value)
            os.replace(partial, path)
        except OSError:
            remove_quietly(partial)


@dataclass(frozen=True)
class Seen:
    """A local file as this machine last read it: its size and modification time then (of
    the compressed file, for gzip), its fingerprint and the bytes it covers (see
    ``sources.content``; of the decompressed bytes, for gzip)."""

    size: int
    mtime_ns: int
    fingerprint: str
    covered: int
    decompressed: bool = False
    held_back: int = 0
    positions: Optional[int] = None  # its records, when it was scanned (not only hashed)

    def matches(self, stat: os.stat_result) -> bool:
        return (stat.st_size, stat.st_mtime_ns) == (self.size, self.mtime_ns)


class KnownFiles:
    """``Seen`` per local file (its absolute path) and identity label."""

    def __init__(self, label: str):
        self.label = label
        self.cache = MachineCache("file-fingerprints")

    def get(self, origin: str) -> Optional[Seen]:
        raw = self.cache.read(origin, self.label)
        if raw is None:
            return None
        try:
            return Seen(**orjson.loads(raw))
        except (ValueError, TypeError):
            return None

    def put(self, origin: str, seen: Seen) -> None:
        self.cache.write(orjson.dumps(asdict(seen)), origin, self.label)
