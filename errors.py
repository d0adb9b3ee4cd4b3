"""Every failure a user can meet, by type: each has a one-line message that names the fix,
and the exit code the command ends with."""

EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_RECORD_ERRORS = 4


class IngestError(Exception):
    """A failure the user can act on: its message is one line that says how."""

    exit_code = EXIT_FATAL


class InputError(IngestError):
    """A problem with a whole input file; the message names the file and the fix."""

    exit_code = EXIT_BAD_INPUT


class RecordError(Exception):
    """A record that can never load, whatever the retries: it goes to ``errors`` at once."""


class NestingTooDeep(RecordError):
    """A record nested deeper than the limit."""


class NulCharacter(RecordError):
    """A record with a NUL character: Postgres JSONB can't store it (SQLite could, but one
    rule for both databases beats data that loads on one and not the other)."""


class Rejected(RecordError):
    """Raise it in your transform to send a record to ``errors`` at once, with your reason:
    no retries (any other exception is a failed attempt, retried)."""


class MissingKey(RecordError):
    """A record without the ``--key`` field, or with no string or number there."""


class BadTransformResult(RecordError):
    """The transform returned something other than a dict or None."""


class NotStorable(RecordError):
    """The transform's output holds a value JSON can't hold (a datetime, a set...)."""


class UsageError(IngestError):
    """An option's value that can't work, found after click's own checks."""

    exit_code = EXIT_USAGE


class TransformNotFound(IngestError):
    """``--transform`` names nothing that can be imported and called."""

    exit_code = EXIT_USAGE


class InputChanged(IngestError):
    """An input file is not the one that was scanned: its chunks can't be trusted."""


class RunNotFound(IngestError):
    exit_code = EXIT_BAD_INPUT

    def __init__(self, run_id: str):
        super().__init__(f"no run {run_id}; `ingest status` lists the runs")


class RunIncomplete(IngestError):
    """Part of a run was given up or failed; the message says which and how to finish it."""


class RunFailed(IngestError):
    pass


# Record problems found while reading (no exception is raised for them) and errors a
# transform's output can raise when stored: never retried, by name as stored in ``errors``.
PERMANENT_TYPES = ("NestingTooDeep", "TypeError", "JSONEncodeError", "NulCharacter",
                   "InvalidJSON", "NotAnObject", "RecordTooLarge", "BadFile", "MissingKey",
                   "BadTransformResult", "NotStorable", "Rejected")


def is_permanent(exc: BaseException) -> bool:
    """Whether a failed attempt at a record would fail again however often it is retried:
    a ``RecordError``. Anything else a transform raises is retried (the retry policy)."""
    return isinstance(exc, RecordError)


def one_line(exc: BaseException) -> str:
    """An exception's first non-empty line of text, or its type when it has none."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
