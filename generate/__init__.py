"""Synthetic randomuser.me-shaped datasets, for ``ingest generate`` and the benchmarks.

- ``datasets``: the records, their files (array, envelope, NDJSON) and the seeded choices;
- ``pools``: the values they are drawn from (names, places, time zones per nationality).

May import: the standard library only.
"""
