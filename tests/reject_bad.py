"""A transform for the tests: rejects records marked bad, keeps the others as they are."""

from durable_ingest.errors import Rejected


def shape(record: dict) -> dict:
    if record.get("bad"):
        raise Rejected("marked bad")
    return record
