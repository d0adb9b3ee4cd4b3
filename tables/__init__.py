"""Dataset tables (``ingest load --table NAME``): each dataset in a table of its own, a
typed column per scalar field (nested objects flattened with ``__``), the whole record kept
in ``data``, columns added as new fields appear.

- ``names``: the table's name, checked; a field's column name;
- ``types``: a value's type, which values a column takes, how a value is written;
- ``catalog``: ``ingest_tables`` and ``ingest_columns``, and the DDL that follows them;
- ``rows``: a chunk's records as rows, column by column;
- ``write``: the rows into the table (COPY, inserts, keyed upserts).

May import: ``store`` (the datasource, keyed writes), ``codec``, ``models``, ``contract`` and
``errors``; never a source, a step or anything above.
"""
