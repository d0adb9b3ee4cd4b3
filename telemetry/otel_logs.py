"""OpenTelemetry's own warnings (each retry, each failed export, tracebacks) condensed into
one line, shown once: telemetry never floods the terminal of a load."""

import logging
import re
import sys
from typing import Callable, Optional


class _OneLine(logging.Handler):
    """OpenTelemetry's warnings (each retry, each failed export, tracebacks) as one line."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.warn: Optional[Callable[[str], None]] = None
        self.shown = False

    def emit(self, record: logging.LogRecord) -> None:
        self.say(f"warning: {_condense(record)}; the load goes on (further telemetry "
                 "warnings are not shown)")

    def say(self, line: str) -> None:
        if self.shown or self.warn is None:
            return
        self.shown = True
        try:
            self.warn(line)
        except Exception:
            pass


def _condense(record: logging.LogRecord) -> str:
    try:
        text = record.getMessage()
    except Exception:
        text = str(record.msg)
    errno = re.search(r"\[Errno -?\d+\] [^'\")\]]+", text)
    if errno and "export" in text:
        return f"telemetry export failed ({errno.group(0).strip()})"
    first = text.strip().splitlines()[0] if text.strip() else record.levelname
    return "telemetry: " + (first if len(first) <= 160 else first[:157] + "...")


def condense_opentelemetry_logs(warn: Callable[[str], None]) -> None:
    """From now on, OpenTelemetry's log records go to ``warn`` as one line, once."""
    logger = logging.getLogger("opentelemetry")
    handler = _one_line()
    if handler is None:
        handler = _OneLine()
        logger.addHandler(handler)
    logger.propagate = False
    handler.warn, handler.shown = warn, False


def _one_line() -> Optional[_OneLine]:
    return next((h for h in logging.getLogger("opentelemetry").handlers if isinstance(h, _OneLine)), None)


def warn_once(line: str) -> None:
    """A telemetry warning, unless one was shown already."""
    handler = _one_line()
    if handler is not None and handler.warn is not None:
        handler.say(line)
    else:
        print(line, file=sys.stderr)
