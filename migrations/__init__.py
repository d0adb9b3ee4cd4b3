"""Alembic migrations of the ``tasks`` and ``errors`` tables."""
