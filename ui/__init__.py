"""``ingest ui``: a read-only web page of the runs, against the same databases as the other
commands.

- ``server``: the HTTP server, its pages (runs, a run, its errors) and their JSON.

May import: ``views`` and everything below them; never a command or the command line.
"""
