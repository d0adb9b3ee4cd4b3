"""Read-only views for operators, shared by the commands that report (``ingest status``,
``errors``, ``files``, ``schema``) and the web page (``ingest ui``). Nothing here writes.

- ``runs``: runs and their chunks, read from DBOS's system database with its client;
- ``collected``: runs ``ingest gc`` collected, from their summary rows (``ingest_runs``);
- ``app_database``: what the app database holds for a run: its files with the rows each
  has, a dataset table's schema;
- ``error_triage``: ``errors`` rows grouped (``ingest errors``), each group's sample located;
- ``scheduled``: the schedule and tick that started each run;
- ``earlier``: the run history a SQLite database had before it moved beside it;
- ``schedules``: the schedules, their next tick, what their ticks did, their last run;
- ``states``: how a run's state reads (running, interrupted, done...), for views and waits;
- ``render``: their tables on a terminal.

May import: ``runtime.executor_lock`` (is a run's process alive?) and everything below the
DBOS story (``tables``, ``database``, ``models``, ``contract``, ``errors``); never a command,
the command line or the web page.
"""
