"""``python -m durable_ingest.cli``: the ``ingest`` command, for processes that start another
(helpers, tests) without relying on the console script being on PATH."""

from .main import entry_point

entry_point()
