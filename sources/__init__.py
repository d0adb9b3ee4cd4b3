"""Inputs into chunks, and chunks back into records.

- ``plan``: files, folders and globs named on the command line into one stream of files,
  each identified by its bytes, and the rows that plan a run;
- ``scan`` (with ``document`` for JSON documents): validate one file and cut it into byte
  ranges of records;
- ``spool``: standard input, gzip files and fetched pages copied to disk under their
  content hash;
- ``http`` (URL inputs and their paging), ``fetcher`` (one page with its retry policy) and
  ``credentials`` (never stored): API pages;
- ``identity``: the run ID a load's inputs make (the same command, the same run);
- ``read``: a chunk's byte ranges back into records;
- ``common``: what they share (limits, opening a file, lines, value ends).

May import: ``store`` (a plan writes its rows), ``transform``, ``codec``, ``telemetry``,
``contract`` and ``errors``; never a step, ``integration`` or anything above. ``plan`` is
the one module that sits a layer higher (it writes a run's files and claims through
``store``).
"""
