"""A transform that rejects records failing a check, and skips test accounts.

A rejected record goes to `errors` at once with its reason (``Rejected`` is never retried:
the record would fail again); a record the function returns None for is skipped on purpose
(no row; counted as skipped).

    ingest load data/randomuser-1000.json --transform examples/validate.py:check_person
"""

from durable_ingest.errors import Rejected


def check_person(record: dict):
    email = record.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise Rejected(f"email {email!r} is not an address")
    if email.endswith("@example.test"):
        return None  # a test account: not loaded
    return record
