"""Local files of a landing folder as a run meets them: still being written (``--settle``),
known to this machine (the quick check of ``sources.known``: neither read nor
decompressed), or read and fingerprinted (``plan.identify``), and then remembered.

A file is known by its ``origin``: its absolute path and, for a load with a label, a table
or a key, a hash of them (a file loaded into two tables is two files of two lineages).
"""

import hashlib
import os
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from .known import KnownFiles, Seen

SHOWN = 20  # names of files kept for the output


@dataclass(frozen=True)
class LocalPolicy:
    """How this run treats local files: ``settle`` seconds a file must have been left alone
    before it loads; ``full_check`` reads every file even if this machine knows it."""

    settle: float = 0.0
    full_check: bool = False


@dataclass
class Settling:
    """The files left for a later run because they were modified too recently."""

    seconds: float = 0.0
    count: int = 0
    names: list = field(default_factory=list)

    def add(self, name: str) -> None:
        self.count += 1
        if len(self.names) < SHOWN:
            self.names.append(name)

    def describe(self) -> str:
        if not self.count:
            return ""
        shown = ", ".join(self.names) + (f" and {self.count - len(self.names)} more"
                                         if self.count > len(self.names) else "")
        files = "file" if self.count == 1 else "files"
        return (f"{self.count:,} {files} modified less than {self.seconds:g} s ago left for a "
                f"later run (--settle): {shown}")


def origin_of(path: str, label: str) -> str:
    origin = os.path.abspath(path)
    return f"{origin}\x1f{hashlib.sha256(label.encode()).hexdigest()[:12]}" if label else origin


def identify_local(name: str, label: str, policy: LocalPolicy, known: KnownFiles,
                   settling: Settling, read: Callable, recall: Callable):
    """The file's ``Identified`` (None if it is left for a later run): ``recall(name, seen,
    origin)`` if this machine knows its size and modification time, else ``read(name)``,
    remembered if the file did not change while it was read."""
    origin = origin_of(name, label)
    try:
        before = os.stat(name)
    except OSError:
        return replace(read(name), origin=origin)  # read says why it can't be
    if policy.settle and time.time() - before.st_mtime < policy.settle:
        settling.add(name)
        return None
    seen = known.get(origin)
    if seen is not None and not policy.full_check and seen.matches(before):
        return recall(name, seen, origin)
    item = replace(read(name), origin=origin)
    if item.error is None and _unchanged(name, before):
        known.put(origin, Seen(before.st_size, before.st_mtime_ns, item.fingerprint,
                               item.covered, item.decompressed, item.held_back,
                               item.positions))
    return item


def _unchanged(name: str, before: os.stat_result) -> bool:
    try:
        after = os.stat(name)
    except OSError:
        return False
    return (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
