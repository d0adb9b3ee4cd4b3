"""What a load did, for people (``str``) and for scripts (``asdict``): ``LoadResult``,
``Detached`` for a run queued for workers, or ``NothingYet`` when every file was still
being written; and whether it failed (``ErrorBudget``, ``LoadResult.failure``): the exit
code and the one line that says why."""

from dataclasses import asdict, dataclass, field
from typing import Optional

from ..contract import TASKS, Summary
from ..errors import EXIT_BAD_INPUT, EXIT_RECORD_ERRORS


@dataclass(frozen=True)
class ErrorBudget:
    """How many records may end in ``errors`` before a load exits 4 (``--max-errors``): a
    count, or a percentage of the run's records; None for either: no limit."""

    count: Optional[int] = None
    percent: Optional[float] = None
    option: str = ""  # how it was asked, when not as --max-errors

    @classmethod
    def parse(cls, text: Optional[str]) -> "ErrorBudget":
        """``N`` or ``P%`` (a ``ValueError`` that says what is expected otherwise)."""
        if text is None:
            return cls()
        written = text.strip()
        try:
            if written.endswith("%"):
                percent = float(written[:-1])
                if 0 <= percent <= 100:
                    return cls(percent=percent)
            elif int(written) >= 0:
                return cls(count=int(written))
        except ValueError:
            pass
        raise ValueError(f"{text!r} is neither a count (e.g. 10) nor a percentage from 0% to "
                         "100% (e.g. 0.5%)")

    def exceeded(self, errors: int, records: int) -> bool:
        if self.count is not None:
            return errors > self.count
        if self.percent is not None:
            return errors > records * self.percent / 100
        return False

    def __str__(self) -> str:
        if self.option:
            return self.option
        limit = self.count if self.count is not None else f"{self.percent:g}%"
        return f"--max-errors {limit}"
from ..views.states import pages_dict


@dataclass
class LoadResult:
    """What a load did, for people (``str``) and for scripts (``asdict``)."""

    run_id: str
    dataset: str
    records: int
    tasks: int
    errors: int
    retries: int
    chunks: int
    files_loaded: int
    files_already_loaded: int
    files_bad: int
    already_loaded: bool
    elapsed_s: float
    bad_files: list = field(default_factory=list)  # one line each (the first 20)
    skipped_inputs: str = ""  # what folders and globs passed over, one line
    skipped: int = 0  # records without a row on purpose (transform None, --key already there)
    updated: int = 0  # (--key --on-conflict update) rows replaced
    workers: int = 1  # processes that loaded chunks: this one and its helpers
    pages: Optional[dict] = None  # with URL inputs: PageCounts, and "fetched"
    table: str = TASKS  # where the records went: tasks, or a dataset table (--table)
    objects_changed: int = 0  # objects of buckets replaced before their chunks read them
    held_back: int = 0  # unfinished last NDJSON lines, left for a later run
    files_changed: list = field(default_factory=list)  # rewritten since loaded (the first 20)
    files_changed_count: int = 0
    files_changed_skipped: int = 0  # of those, left alone (--changed skip)
    keyed: bool = False
    incremental: Optional[dict] = None  # (--incremental) {"field", "used", "new"}

    @classmethod
    def from_summary(cls, summary: Summary, already_loaded: bool, elapsed_s: float,
                     bad_files: list, skipped_inputs: str = "", workers: int = 1,
                     table: str = TASKS, changed: int = 0, notes: Optional[dict] = None,
                     keyed: bool = False) -> "LoadResult":
        notes = notes or {}
        loaded, already = summary.files_new, summary.files_already
        if already_loaded:
            loaded, already = 0, loaded + already
        return cls(run_id=summary.run_id, dataset=summary.inputs, records=summary.records,
                   tasks=summary.tasks, errors=summary.errors, retries=summary.retries,
                   chunks=summary.chunks, files_loaded=loaded, files_already_loaded=already,
                   files_bad=summary.files_bad, already_loaded=already_loaded,
                   elapsed_s=elapsed_s, bad_files=bad_files, skipped_inputs=skipped_inputs,
                   skipped=summary.skipped, updated=summary.updated, workers=workers,
                   pages=pages_dict(summary.pages), table=table, objects_changed=changed,
                   held_back=notes.get("held_back", 0), files_changed=notes.get("changed", []),
                   files_changed_count=notes.get("changed_count", 0),
                   files_changed_skipped=notes.get("changed_skipped", 0), keyed=keyed,
                   incremental=summary.incremental)

    @property
    def has_errors(self) -> bool:
        return self.errors > 0

    @property
    def nothing_landed(self) -> bool:
        """Records were read and every one ended in ``errors``: a total failure."""
        return self.errors > 0 and self.tasks + self.updated + self.skipped == 0

    def failure(self, budget: ErrorBudget = ErrorBudget()) -> Optional[tuple]:
        """(exit code, the one line that says why) when this load failed, else None: bad
        inputs exit 3 (``input_lines`` said why); every record in ``errors``, or more than
        ``budget`` allows, exit 4."""
        if self.bad_inputs:  # the lines of ``input_lines`` say which and why
            return EXIT_BAD_INPUT, ""
        see = f"`ingest errors {self.run_id}` shows why, `ingest retry {self.run_id}` tries them again"
        if self.nothing_landed:
            return EXIT_RECORD_ERRORS, (f"exit {EXIT_RECORD_ERRORS}: no record loaded, all "
                                        f"{self.errors:,} ended in errors; {see}")
        if budget.exceeded(self.errors, self.records):
            return EXIT_RECORD_ERRORS, (f"exit {EXIT_RECORD_ERRORS}: {self.errors:,} of "
                                        f"{self.records:,} records ended in errors, more than "
                                        f"{budget} allows; {see}")
        return None

    @property
    def bad_inputs(self) -> int:
        """Files and pages that could not be loaded at all, and objects replaced before they
        were read (exit 3)."""
        return self.files_bad + (self.pages or {}).get("failed", 0) + self.objects_changed

    @property
    def records_per_s(self) -> float:
        return self.records / max(self.elapsed_s, 1e-9)

    @property
    def files(self) -> int:
        return self.files_loaded + self.files_already_loaded + self.files_bad

    def input_lines(self) -> list:
        """One line per bad input (the first 20) and one for what folders skipped."""
        lines = [f"bad input: {line}" for line in self.bad_files]
        if self.bad_inputs > len(self.bad_files):
            lines.append(f"... and {self.bad_inputs - len(self.bad_files)} more bad inputs: "
                         f"ingest errors {self.run_id}")
        return lines + ([self.skipped_inputs] if self.skipped_inputs else [])

    def asdict(self) -> dict:
        shown = asdict(self)
        shown.pop("skipped_inputs")
        return {**shown, "inserted": self.tasks, "elapsed_s": round(self.elapsed_s, 3),
                "records_per_s": round(self.records_per_s, 1)}

    def __str__(self) -> str:
        lines = []
        if self.already_loaded:
            lines.append(f"{self.dataset}: already loaded by run {self.run_id}; nothing to do "
                         "(use --label to load it again as a new dataset)")
        into = f"  -> table {self.table}" if self.table != TASKS else ""
        lines += [f"run {self.run_id}  {self.dataset}{into}"]
        if self.files > 1 or self.files_bad or self.files_already_loaded and not self.already_loaded:
            lines.append(f"  files: {self.files_loaded:,} new files loaded, "
                         f"{self.files_already_loaded:,} already loaded, {self.files_bad:,} bad")
        if self.pages is not None:
            from ..views.render import describe_pages

            lines.append(describe_pages(self.pages))
        if self.incremental:
            from ..views.render import describe_incremental

            lines.append(describe_incremental(self.incremental))
        shaped = (f" | updated {self.updated}" if self.updated else "") + \
            (f" | skipped {self.skipped}" if self.skipped else "")
        lines.append(
            f"  records {self.records} | tasks {self.tasks}{shaped} | errors {self.errors}"
            f" | retries {self.retries} | elapsed {self.elapsed_s:.2f} s"
            f" | {self.records_per_s:,.0f} records/s")
        return "\n".join(lines + self.landing_lines())

    def landing_lines(self) -> list:
        """Unfinished last lines held back, and files rewritten since they were loaded."""
        lines = []
        if self.held_back:
            lines.append(f"  {self.held_back} incomplete last line held back: it loads once "
                         "complete" if self.held_back == 1 else f"  {self.held_back:,} "
                         "incomplete last lines held back: they load once complete")
        count = self.files_changed_count
        if count:
            names = ", ".join(self.files_changed) + (
                f" and {count - len(self.files_changed):,} more" if count > len(self.files_changed) else "")
            files = "file" if count == 1 else "files"
            lines.append(f"  {count:,} {files} rewritten since loaded: {names}")
            if self.files_changed_skipped:
                lines.append(f"  {self.files_changed_skipped:,} left alone (--changed skip)")
            if count > self.files_changed_skipped:
                lines.append("  their records loaded as new content; " + (
                    "with --key, records already stored were skipped or updated (--on-conflict)"
                    if self.keyed else "without --key, the records they still share with what "
                    "was loaded are now stored twice (--changed skip leaves such files alone)"))
        return lines


@dataclass(frozen=True)
class Detached:
    run_id: str
    dataset: str
    records: int
    state: str

    def asdict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        state = "queued" if self.state == "ENQUEUED" else f"already {self.state}"
        return (f"{self.run_id}  {self.dataset}: {state} ({self.records} records); "
                f"follow it with: ingest status {self.run_id}")


@dataclass(frozen=True)
class NothingYet:
    """A load whose every file was left for a later run (``--settle``): no run at all."""

    settling: int
    why: str
    bad_inputs: int = 0
    has_errors: bool = False

    def asdict(self) -> dict:
        return {"run_id": None, "records": 0, "files_settling": self.settling}

    def input_lines(self) -> list:
        return []

    def failure(self, budget=None):
        """Nothing read, nothing failed: a later run takes the files (exit 0)."""
        return None

    def __str__(self) -> str:
        return f"nothing to load yet: {self.why}"
