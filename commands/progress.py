"""A one-line progress display on stderr while a load runs, in the style of dlt:
``files: done/total | records: done/total (pct) | elapsed | rate/s | ETA``; a load of API
pages shows the pages fetched so far, and its records' total grows with them.

Shown only on a terminal: never when stderr is piped, under CI (``CI`` set), or with
``--no-progress``.
"""

import os
import sys
import time
from typing import Optional


def wanted(requested: bool) -> bool:
    return requested and sys.stderr.isatty() and not os.environ.get("CI")


class Progress:
    def __init__(self, total: int, label: str = "records", enabled: bool = True, files: int = 0,
                 pages: bool = False):
        self.total, self.label, self.enabled, self.files = total, label, enabled, files
        self.pages = pages  # the run fetches pages: its total grows as they come
        self.started = time.time()
        self.drawn = 0.0
        self.base = 0  # records done before this command began (a run it finishes)

    def resumed_at(self, done: int) -> "Progress":
        """The run had ``done`` records when this command took it up: the rate and the ETA
        count only what this command does."""
        self.base = done
        return self

    def update(self, done: int, files_done: int = 0, pages: Optional[dict] = None) -> None:
        now = time.time()
        if not self.enabled or now - self.drawn < 0.2:
            return
        self.drawn = now
        elapsed = now - self.started
        rate = max(done - self.base, 0) / elapsed if elapsed > 0 else 0.0
        total = self.total + (pages or {}).get("records", 0)
        pct = 100.0 * done / total if total else (0.0 if self.pages else 100.0)
        eta = f"{(total - done) / rate:.0f} s" if rate > 0 and done < total and not self.pages else "-"
        files = f"files {files_done:,}/{self.files:,} | " if self.files > 1 else ""
        if self.pages:
            files += f"pages {self.pages_line(pages or {})} | "
        sys.stderr.write(f"\r{files}{self.label}: {done:,}/{total:,} ({pct:.0f}%) | "
                         f"{elapsed:.1f} s | {rate:,.0f}/s | ETA {eta}  ")
        sys.stderr.flush()

    @staticmethod
    def pages_line(pages: dict) -> str:
        failed = f" ({pages['failed']:,} failed)" if pages.get("failed") else ""
        return f"{pages.get('fetched', 0):,} fetched{failed}"

    def close(self) -> None:
        if self.enabled and self.drawn:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
