"""The ``ingest`` command line: it parses options, calls ``commands`` (loads and what follows
them) or ``views`` (read-only views), and prints. No DBOS calls of its own.

- ``main``: the ``ingest`` group and every subcommand (``entry_point`` is the console
  script; ``python -m durable_ingest.cli`` runs it too);
- ``service``: the commands of a service left running: ``worker``, ``schedule``, ``ui``;
- ``gc``: ``ingest gc``, what old finished runs leave behind;
- ``options``: the options that more than one command takes, and the one-line failures.

May import: anything of the package; nothing imports it. Only here is click used and only
here is a command's result printed.
"""

from .main import entry_point, main

__all__ = ["entry_point", "main"]
