"""database.py's helpers against real databases: errors classified by SQLSTATE / SQLite
result code (never by message text), one-line messages without passwords, the schema head
read from the migration files."""

import sqlite3
import subprocess
import sys
import threading
import uuid

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from conftest import PG_SERVER, postgres_available, skip_unless_ci, _drop
from durable_ingest import database
from durable_ingest.errors import one_line


@pytest.fixture
def pg_url():
    """A freshly created, empty Postgres database (dropped afterwards)."""
    if not postgres_available():
        skip_unless_ci(f"Postgres not reachable at {PG_SERVER}")
    name = f"di_test_{uuid.uuid4().hex[:12]}"
    url = f"{PG_SERVER}/{name}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield url
    _drop(name)


def raised(url: str, *statements: str) -> BaseException:
    """The SQLAlchemy error that connecting to ``url`` and running ``statements`` raises."""
    engine = sa.create_engine(database.normalise_url(url))
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    pytest.fail("no error")


CLASSIFIERS = ("is_unreachable", "is_missing_database", "is_retryable_conflict",
               "is_unique_violation", "is_insufficient_privilege")


def classes(exc) -> set:
    return {name for name in CLASSIFIERS if getattr(database, name)(exc)}


# -- Postgres -------------------------------------------------------------------------------
def test_a_closed_port_is_unreachable():
    exc = raised("postgresql://postgres:secret@127.0.0.1:1/postgres", "SELECT 1")

    assert classes(exc) == {"is_unreachable"}
    assert database.sqlstate(exc) is None  # libpq gives connection failures no code
    assert one_line(database.driver_error(exc), "postgresql://postgres:secret@127.0.0.1:1/postgres").startswith(
        'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused')


def test_a_connection_to_a_missing_database_is_unreachable_and_the_server_says_why(pg_url):
    missing = pg_url + "_missing"

    exc = raised(missing, "SELECT 1")

    assert classes(exc) == {"is_unreachable"}
    assert database.postgres_database_exists(missing) is False
    assert database.postgres_database_exists(pg_url) is True


def test_a_missing_database_named_in_a_statement_is_missing(pg_url):
    exc = raised(pg_url, f'ALTER DATABASE "no_such_db_{uuid.uuid4().hex[:8]}" SET work_mem = 1024')

    assert database.sqlstate(exc) == "3D000"
    assert classes(exc) == {"is_missing_database"}


def test_unique_violation(pg_url):
    exc = raised(pg_url, "CREATE TABLE t (k int PRIMARY KEY)", "INSERT INTO t VALUES (1), (1)")

    assert database.sqlstate(exc) == "23505"
    assert classes(exc) == {"is_unique_violation"}
    assert database.sqlstate(exc.orig) == "23505"  # the driver's error itself, too


def test_insufficient_privilege(pg_url):
    role = f"di_test_role_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        exc = raised(pg_url, f'SET ROLE "{role}"', "CREATE TABLE t (k int)")
    finally:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP ROLE "{role}"')

    assert database.sqlstate(exc) == "42501"
    assert classes(exc) == {"is_insufficient_privilege"}


@pytest.mark.parametrize("code", ["40001", "40P01"])
def test_serialization_failure_and_deadlock_are_retryable(pg_url, code):
    # The server raises them with this code, as a real conflict would.
    exc = raised(pg_url, f"DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '{code}'; END $$")

    assert database.sqlstate(exc) == code
    assert classes(exc) == {"is_retryable_conflict"}


def test_a_real_serialization_failure_is_retryable(pg_url):
    engine = sa.create_engine(database.normalise_url(pg_url), isolation_level="SERIALIZABLE")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (k int)")
        first, second = engine.connect(), engine.connect()
        for conn in (first, second):
            conn.exec_driver_sql("SELECT count(*) FROM t")
        first.exec_driver_sql("INSERT INTO t VALUES (1)")
        second.exec_driver_sql("INSERT INTO t VALUES (2)")
        first.commit()
        with pytest.raises(DBAPIError) as info:
            second.commit()
        second.close()
        first.close()
    finally:
        engine.dispose()

    assert database.is_retryable_conflict(info.value)


def test_upgrade_schema_creates_a_missing_database(pg_url):
    missing = pg_url + "_created"
    try:
        database.upgrade_schema(database.normalise_url(missing))

        assert database.postgres_database_exists(missing)
        engine = sa.create_engine(database.normalise_url(missing))
        assert database.schema_version(engine) == database.schema_head()
        engine.dispose()
    finally:
        _drop(missing.rsplit("/", 1)[1])


def test_upgrade_schema_names_the_unreachable_server_without_the_password():
    url = "postgresql+psycopg://ingest:s3cret@127.0.0.1:1/ingest"

    with pytest.raises(database.DatabaseError) as info:
        database.upgrade_schema(url)

    message = str(info.value)
    assert message.startswith("cannot connect to postgresql+psycopg://ingest:***@127.0.0.1:1/ingest: ")
    assert "s3cret" not in message


# -- SQLite ---------------------------------------------------------------------------------
def test_sqlite_file_that_cannot_be_opened_is_unreachable(tmp_path):
    exc = raised(f"sqlite:///{tmp_path}/no/such/dir/app.sqlite", "SELECT 1")

    assert database.sqlite_code(exc) == sqlite3.SQLITE_CANTOPEN
    assert classes(exc) == {"is_unreachable"}


@pytest.mark.parametrize("key", ["PRIMARY KEY", "UNIQUE"])
def test_sqlite_unique_violation(tmp_path, key):
    exc = raised(f"sqlite:///{tmp_path}/app.sqlite", f"CREATE TABLE t (k int {key})",
                 "INSERT INTO t VALUES (1), (1)")

    assert classes(exc) == {"is_unique_violation"}


def test_sqlite_busy_is_retryable(tmp_path):
    url = f"sqlite:///{tmp_path}/app.sqlite"
    with sqlite3.connect(tmp_path / "app.sqlite") as holder:
        holder.execute("PRAGMA journal_mode=WAL")  # as every connection of a load sets it
        holder.execute("CREATE TABLE t (k int)")
    holder = sqlite3.connect(tmp_path / "app.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer
    try:
        engine = sa.create_engine(url, connect_args={"timeout": 0})
        with pytest.raises(DBAPIError) as info, engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        engine.dispose()
    finally:
        holder.close()

    assert database.sqlite_code(info.value) & 0xFF == sqlite3.SQLITE_BUSY
    assert classes(info.value) == {"is_retryable_conflict"}


def test_a_new_sqlite_connection_waits_while_another_holds_the_file(tmp_path):
    """The last connection of a process to close a WAL file holds it exclusively for an
    instant, and one opening it then is told SQLITE_BUSY at once: every connection's first
    statement tries again (here for 0.3 s, with no busy timeout of its own)."""
    from durable_ingest.runtime.launch import _sqlite_pragmas

    path = tmp_path / "app.sqlite"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE t (k int)")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.3, holder.execute, ("COMMIT",))
    release.start()
    fresh = sqlite3.connect(path, timeout=0)
    try:
        _sqlite_pragmas(fresh, None)
        assert fresh.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        release.join(timeout=5)
        fresh.close()
        holder.close()


def test_other_errors_are_none_of_these(tmp_path):
    exc = raised(f"sqlite:///{tmp_path}/app.sqlite", "SELECT * FROM no_such_table")

    assert classes(exc) == set() and database.sqlstate(exc) is None
    assert classes(ValueError("connection refused; database does not exist")) == set()


# -- one_line -------------------------------------------------------------------------------
def test_one_line_is_the_first_line_without_passwords():
    url = "postgresql://ingest:p%40ss@db/x"
    error = RuntimeError("\n  \n  login as ingest with p@ss failed  \nDETAIL: p%40ss again\n")

    assert one_line(error, url) == "login as ingest with *** failed"
    assert one_line(RuntimeError("see postgresql://u:hunter2@h/d")) == "see postgresql://u:***@h/d"
    assert one_line(RuntimeError()) == "RuntimeError()"


# -- the schema head, from the migration files ----------------------------------------------
def test_schema_head_is_alembics_head():
    from alembic.script import ScriptDirectory

    assert database.schema_head() == ScriptDirectory.from_config(database.alembic_config()).get_current_head()


def write_migration(versions, revision: str, down: str, annotated: bool = False):
    names = ("revision: str", "down_revision: Union[str, Sequence[str], None]") if annotated else (
        "revision", "down_revision")
    (versions / f"{revision}_step.py").write_text(
        f'"""Step {revision}."""\nfrom typing import Sequence, Union\n\n'
        f"{names[0]} = {revision!r}\n{names[1]} = {down}\nbranch_labels = None\n\n\n"
        "def upgrade() -> None:\n    pass\n\n\ndef downgrade() -> None:\n    pass\n")


@pytest.mark.parametrize("history, head", [
    ([("0001", "None"), ("0002", "'0001'")], "0002"),
    ([("0001", "None"), ("0002", "'0001'"), ("0003", "'0002'")], "0003"),
    # two branches and the migration that merges them
    ([("0001", "None"), ("0002a", "'0001'"), ("0002b", "'0001'"), ("0003", "('0002a', '0002b')")], "0003"),
])
@pytest.mark.parametrize("annotated", [False, True], ids=["plain", "annotated"])
def test_schema_head_follows_new_migrations(tmp_path, history, head, annotated):
    from alembic.script import ScriptDirectory

    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "__init__.py").write_text("")
    for revision, down in history:
        write_migration(versions, revision, down, annotated)

    assert database._schema_head(versions) == head
    assert ScriptDirectory(str(tmp_path)).get_current_head() == head


def test_two_unmerged_heads_are_an_error(tmp_path):
    for revision, down in [("0001", "None"), ("0002a", "'0001'"), ("0002b", "'0001'")]:
        write_migration(tmp_path, revision, down)

    with pytest.raises(database.DatabaseError, match=r"have 2 heads \(0002a, 0002b\)"):
        database._schema_head(tmp_path)


def test_schema_head_needs_no_alembic():
    code = ("import sys; from durable_ingest import database; database.schema_head(); "
            "print('alembic' in sys.modules, 'sqlalchemy' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert result.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("app, system", [
    ("durable_ingest_app.sqlite", "durable_ingest.sqlite"),  # DBOS's default: `dbos` finds it
    ("data/durable_ingest_app.sqlite", "data/durable_ingest.sqlite"),
    ("data/orders.sqlite", "data/orders_dbos_sys.sqlite"),
    ("/srv/x.db", "/srv/x_dbos_sys.db"),
])
def test_a_sqlite_system_database_sits_beside_its_app_database(app, system):
    assert database.derived_system_url(f"sqlite:///{app}") == f"sqlite:///{system}"


def test_a_postgres_system_database_is_its_own_database_on_the_same_server():
    assert database.derived_system_url("postgresql+psycopg://u:p@h:5432/sales") == \
        "postgresql+psycopg://u:p@h:5432/sales_dbos_sys"
