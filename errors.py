"""Every failure a user can meet, by type: each has a one-line message that names the fix,
and the exit code the command ends with; ``one_line`` is how any error is shown in one line,
passwords scrubbed. (Imports nothing of the package: every module may import it.)"""

import re
from typing import Optional
from urllib.parse import unquote

EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_RECORD_ERRORS = 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


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


class NumberOutOfRange(RecordError):
    """A number no database holds: beyond Postgres numeric (131,072 digits before the point,
    16,383 after) or Python's int<->str limit. The message names the field."""


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


class MissingFolder(IngestError):
    """A SQLite database URL names a file in a folder that does not exist."""

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


class TableNotFound(IngestError):
    exit_code = EXIT_BAD_INPUT

    def __init__(self, table: str):
        super().__init__(f"no dataset table {ascii(table)[1:-1][:80]}; `ingest schema` lists them "
                         "(a table is made by its first load: ingest load FILE --table NAME)")


class RunIncomplete(IngestError):
    """Part of a run was given up or failed; the message says which and how to finish it."""


class RunFailed(IngestError):
    pass


# Record problems found while reading (no exception is raised for them) and errors a
# transform's output can raise when stored: never retried, by name as stored in ``errors``.
PERMANENT_TYPES = ("NestingTooDeep", "TypeError", "JSONEncodeError", "NulCharacter",
                   "InvalidJSON", "NotAnObject", "RecordTooLarge", "BadFile", "BadPage",
                   "MissingKey", "BadTransformResult", "NotStorable", "Rejected",
                   "NumberOutOfRange", "LoneSurrogate", "ObjectChanged")


def is_permanent(exc: BaseException) -> bool:
    """Whether a failed attempt at a record would fail again however often it is retried:
    a ``RecordError``. Anything else a transform raises is retried (the retry policy)."""
    return isinstance(exc, RecordError)


def one_line(exc: BaseException, *urls: str) -> str:
    """An error as the user sees it: the first non-empty line of its message (its ``repr``
    when it has none), with the passwords of ``urls`` and of any URL in it scrubbed. For a
    database error, pass the driver's (``database.driver_error``), not SQLAlchemy's wrapper."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return scrub(lines[0] if lines else repr(exc), *urls)


_USERINFO = re.compile(r"(://[^:/@]*:)[^@]*@")


def scrub(text: str, *urls: str) -> str:
    """Remove any password of ``urls`` from ``text`` (a driver's message, say): decoded, as
    written in the URL (percent-encoded) and as SQLAlchemy re-encodes it; then mask the
    password of any ``scheme://user:password@`` left in the text."""
    secrets = set()
    for url in urls:
        if not url:
            continue
        secrets.update(_password_forms(url))
    for secret in sorted(secrets, key=len, reverse=True):  # "p%40ss" before "p"
        text = text.replace(secret, "***")
    return _USERINFO.sub(r"\1***@", text)


def _password_forms(url: str) -> set:
    forms = {_raw_password(url)}
    try:
        from sqlalchemy import make_url

        parsed = make_url(url)
        if parsed.password is not None:
            forms.add(str(parsed.password))
            forms.add(_raw_password(parsed.render_as_string(hide_password=False)))
    except Exception:
        pass
    forms |= {unquote(form) for form in forms if form}
    return {form for form in forms if form}  # never replace "" (it matches everywhere)


def _raw_password(url: str) -> Optional[str]:
    """The password as written: between the first ``:`` of the user info and the last ``@``."""
    _, sep, rest = url.partition("://")
    if not sep:
        rest = url
    if "@" not in rest:
        return None
    userinfo = rest.rsplit("@", 1)[0]
    return userinfo.split(":", 1)[1] if ":" in userinfo else None
