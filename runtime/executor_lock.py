"""One live process per DBOS executor id and system database: a lock that dies with its
process, even on kill -9 (an advisory lock on Postgres, ``flock`` on a file beside SQLite),
and a probe that tells, without taking it, whether a live process holds it."""

import hashlib
import time

from ..database import Databases, is_postgres


class ExecutorLock:
    """One live process per executor id and system database.

    DBOS recovers, at launch, every unfinished workflow of its executor id, including those
    another live process with the same id is running. Two ``ingest load`` processes on
    one machine would take each other's work and could leave it orphaned when one exits;
    so the second waits for the first (use ``ingest worker`` processes, each with its own
    id, to load in parallel). The lock dies with its process, even on kill -9.
    """

    def __init__(self, databases: Databases, executor_id: str):
        self.databases, self.executor_id = databases, executor_id
        self._held = None

    def acquire(self, on_wait) -> None:
        if self._is_postgres:
            self._held = self._postgres_lock(on_wait)
        else:
            self._held = self._file_lock(self._path, on_wait)

    def held_elsewhere(self) -> bool:
        """Whether a live process holds the lock (``ingest status``: is anyone running the
        work of this executor?). Creates nothing: no lock file, no lock left held."""
        if self._is_postgres:  # read pg_locks: a probe that took the lock would mislead another
            key = self._key & 0xFFFFFFFFFFFFFFFF
            with self._connect() as connection:
                return connection.execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid = %s AND objid = %s AND objsubid = 1)",
                    (key >> 32, key & 0xFFFFFFFF)).fetchone()[0]
        import fcntl

        try:
            with open(self._path, "r") as handle:
                # Shared: probes don't exclude each other, only a holder excludes them.
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)  # released by close
                return False
        except FileNotFoundError:
            return False
        except BlockingIOError:
            return True

    @property
    def _is_postgres(self) -> bool:
        return is_postgres(self.databases.system_url)

    @property
    def _path(self) -> str:
        from sqlalchemy import make_url

        return f"{make_url(self.databases.system_url).database}.{self.executor_id}.lock"

    @property
    def _key(self) -> int:
        from sqlalchemy import make_url

        url = make_url(self.databases.system_url)
        name = f"durable-ingest|{url.render_as_string(hide_password=True)}|{self.executor_id}"
        return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)

    def _connect(self):
        import psycopg
        from sqlalchemy import make_url

        plain = make_url(self.databases.app_url).set(drivername="postgresql")
        return psycopg.connect(plain.render_as_string(hide_password=False), autocommit=True,
                               connect_timeout=10)

    def _postgres_lock(self, on_wait):
        connection = self._connect()
        if not connection.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()[0]:
            on_wait()
            connection.execute("SELECT pg_advisory_lock(%s)", (self._key,))
        return connection

    @staticmethod
    def _file_lock(path: str, on_wait):
        import fcntl

        handle = open(path, "a+")
        for _ in range(5):  # a status probe holds it shared for an instant: no need to say so
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return handle
            except BlockingIOError:
                time.sleep(0.02)
        on_wait()
        fcntl.flock(handle, fcntl.LOCK_EX)
        return handle

    def release(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None
