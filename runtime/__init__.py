"""One ``ingest`` process's DBOS: starting it and stopping it.

- ``launch``: the DBOS configuration of this process (databases, executor id, version),
  the app database's datasource, the queues it works, taking over what a crashed process of
  the same executor left, and a clean stop (``App``, a context manager every command uses);
- ``executor_lock``: one live process per executor id and system database, a lock that dies
  with its process even on kill -9;
- ``scheduler``: only ``ingest worker`` processes run DBOS's scheduler (fire schedules'
  ticks), and how soon they see a schedule changed;
- ``queue_wake``: DBOS's queue manager starts working a queue this process registered at
  once, not at its next look a second later; the chunk and retry queues are polled slowly
  while nothing runs in this process.

May import: ``integration`` (to register the workflows before launch) and everything below
it; never a command, a view or the command line.
"""
