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
