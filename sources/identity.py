"""A run's identity: the run ID its inputs make (``RunIdentity``), so that the same command
names the same run, and a command with URLs numbers its runs (generations)."""

import hashlib
from typing import Optional

from ..contract import UrlSource


class RunIdentity:
    """A run's ID, from the identities of its files in order: a set of one file keeps that
    file's fingerprint (``ingest-<fingerprint>``), so the same command names the same run."""

    def __init__(self):
        self._hash = hashlib.sha256(b"set")
        self._first: Optional[str] = None
        self.count = 0
        self.fetches = False  # it has URL inputs
        self.settings = False  # it has settings (add_setting)

    def add(self, fingerprint: Optional[str], name: str) -> None:
        if self.count == 0:
            self._first = fingerprint
        self._hash.update(f"{fingerprint or 'bad'}\t{name}\n".encode())
        self.count += 1

    def add_setting(self, setting: str) -> None:
        """A setting that changes what the same files load (``--changed skip``): another run."""
        self._hash.update(f"setting\t{setting}\n".encode())
        self.settings = True  # never the ID of the file alone

    def add_url(self, source: UrlSource, label: str) -> None:
        """A URL input: named by what it asks for (and the label), not by what it answers,
        unknown before the run; its runs are numbered generations (``run_id(generation)``)."""
        self._hash.update(f"url\t{source.describe()}\t{label}\n".encode())
        self.fetches = True

    def run_id(self, generation: int = 1) -> str:
        """The run's ID. A command with URLs has a new run (generation) each time the last
        one finished, since the pages may say something new: its IDs share a prefix (see
        ``generations``) and end with the generation number, in hex."""
        if self.fetches:
            return f"{self.generations()}{generation:06x}"
        if self.count == 1 and self._first and not self.settings:
            return f"ingest-{self._first}"
        return f"ingest-{self._hash.hexdigest()[:20]}"

    def generations(self) -> str:
        """The prefix of the IDs of a command with URLs (then 6 hex digits of generation)."""
        return f"ingest-{self._hash.hexdigest()[:14]}"


def generation_of(run_id: str) -> int:
    return int(run_id[-6:], 16)
