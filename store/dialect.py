"""INSERT ... ON CONFLICT in the app database's own dialect (Postgres or SQLite)."""


def insert_ignoring_conflicts(session_or_connection, model):
    return dialect_insert(session_or_connection, model).on_conflict_do_nothing()


def dialect_insert(session_or_connection, model):
    dialect = session_or_connection.get_bind().dialect if hasattr(session_or_connection, "get_bind") \
        else session_or_connection.dialect
    if dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(model)
