"""The ``ingest`` command line: it parses options, calls ``commands`` (loads and what follows
them) or ``views`` (read-only views), and prints. No DBOS calls of its own.

- ``main``: the ``ingest`` group and every subcommand (``entry_point`` is the console
  script; ``python -m durable_ingest.cli`` runs it too);
- ``options``: the options that more than one command takes, and the one-line failures;
- ``gc``: ``ingest gc``, added to the group here (``main`` is at its size limit).

May import: anything of the package; nothing imports it. Only here is click used and only
here is a command's result printed.
"""

from .gc import gc
from .main import entry_point, main

main.add_command(gc)

__all__ = ["entry_point", "main"]
