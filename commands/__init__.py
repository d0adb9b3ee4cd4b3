"""What each command does with a run, below the command line and above DBOS: plan it, start
or attach to it, wait for it, show its progress, and report what it did.

- ``load``: ``ingest load``: name and fingerprint the inputs, find the run they make, start
  it or attach to it, wait, report;
- ``waiting``: the one place a command polls DBOS while its run goes on;
- ``progress``: the one-line progress display on a terminal;
- ``results``: what a load did, for people and for scripts (``LoadResult``);
- ``resume``: ``ingest resume`` and ``ingest retry``: finishing what was interrupted;
- ``worker``: ``ingest worker``, a process that works the shared queues;
- ``helper_processes``: the helper processes of ``--workers N``;
- ``schedules``: ``ingest schedule``: recurring loads, checked and stored, and a worker's
  catch-up on the ticks missed while no worker ran.
- ``gc``: ``ingest gc`` and ``worker --retention``'s schedule.

May import: ``views``, ``runtime``, ``integration`` and everything below; never click, the
command line or the web page (a command returns what it did; the command line prints it).
"""
