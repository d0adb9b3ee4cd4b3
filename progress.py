"""A one-line progress display on stderr while a load runs, in the style of dlt:
``files: done/total | records: done/total (pct) | elapsed | rate/s | ETA``.

Shown only on a terminal: never when stderr is piped, under CI (``CI`` set), or with
``--no-progress``.
"""

import os
import sys
import time


def wanted(requested: bool) -> bool:
    return requested and sys.stderr.isatty() and not os.environ.get("CI")


class Progress:
    def __init__(self, total: int, label: str = "records", enabled: bool = True, files: int = 0):
        self.total, self.label, self.enabled, self.files = total, label, enabled, files
        self.started = time.time()
        self.drawn = 0.0

    def update(self, done: int, files_done: int = 0) -> None:
        now = time.time()
        if not self.enabled or now - self.drawn < 0.2:
            return
        self.drawn = now
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        pct = 100.0 * done / self.total if self.total else 100.0
        eta = f"{(self.total - done) / rate:.0f} s" if rate > 0 and done < self.total else "-"
        files = f"files {files_done:,}/{self.files:,} | " if self.files > 1 else ""
        sys.stderr.write(f"\r{files}{self.label}: {done:,}/{self.total:,} ({pct:.0f}%) | "
                         f"{elapsed:.1f} s | {rate:,.0f}/s | ETA {eta}  ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.drawn:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
