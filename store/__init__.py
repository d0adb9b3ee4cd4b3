"""Rows into the app database, each module one kind of row: transformed records into
``tasks`` (``tasks``, and ``keyed`` under the records' own keys), failures into ``errors``
(``error_rows``), a run's files and their claims (``files``), a finished run's summary row
(``run_summaries``); ``counting`` adds rows to the
metrics when, and only when, their transaction commits; ``datasource`` is the DBOS
datasource whose transactions the workflows' steps run in.

Every function takes the session or connection of the caller's transaction: a DBOS
datasource transaction of a workflow step, or the command's own (``sources.plan``).

May import: ``codec``, ``telemetry``, ``models``, ``contract``, ``errors``; never a source
or a table module.
"""
