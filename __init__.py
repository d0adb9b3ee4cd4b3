"""durable-ingest: crash-proof batch ingest of JSON datasets on DBOS durable workflows.

The repository root is the ``durable_ingest`` package. ``integration.py`` holds the DBOS
application (the story of a load), ``cli/`` the ``ingest`` command, ``models.py`` the
tables. Importing the package is cheap: DBOS, SQLAlchemy and OpenTelemetry load only when a
command needs them.
"""

__version__ = "0.1.0"
APP_NAME = "durable-ingest"
