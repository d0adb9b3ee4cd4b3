"""A transform for randomuser records: keep the login, not its secrets; drop the pictures.

    ingest load data/randomuser-1000.json --transform examples/redact.py:redact --key login.uuid
"""

SECRETS = ("password", "salt", "md5", "sha1", "sha256")


def redact(record: dict) -> dict:
    login = record.get("login")
    if isinstance(login, dict):
        record["login"] = {k: v for k, v in login.items() if k not in SECRETS}
    record.pop("picture", None)
    return record
