"""Credentials of API pages (``--header`` values, a URL's userinfo): they live in this
process only, and in the environment of its helper processes; never in a workflow's input,
a row, a message or the output. A run records only their names and a short check, so a
process that recovers the run without the same credentials waits (``CredentialsNeeded``)
rather than fetching without them, or with another command's."""

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import quote, urlsplit

from ..errors import IngestError, UsageError

CREDENTIALS_ENV = "INGEST_HTTP_CREDENTIALS"
MIN_SECRET_CHARS = 3  # shorter values are too common to mask without garbling messages


class CredentialsNeeded(IngestError):
    """This process has not the credentials the run was started with (they are never
    stored): the run waits for a process that has them."""


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


@dataclass
class Credentials:
    """Headers sent with every request and passwords per origin (from URLs' userinfo)."""

    headers: list = field(default_factory=list)  # [name, value]
    basic: dict = field(default_factory=dict)  # origin -> (user, password)

    def add_header(self, text: str) -> None:
        """One ``Name: value``; the value is never shown, not even when it is refused."""
        name, colon, value = text.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not name or not all(33 <= ord(c) <= 126 and c != ":" for c in name):
            raise UsageError(f"--header {name[:40] or '?'}: expected 'Name: value' on one line")
        if any(ord(c) < 32 or ord(c) == 127 for c in value) or not is_latin1(value):
            raise UsageError(f"--header {name}: its value has a control character or a "
                             "character HTTP headers can't carry (only Latin-1 text)")
        self.headers.append([name, value])

    def for_url(self, url: str) -> dict:
        headers = {name: value for name, value in self.headers}
        login = self.basic.get(origin_of(url))
        if login is not None and not any(n.lower() == "authorization" for n in headers):
            headers["Authorization"] = f"Basic {basic_token(*login)}"
        return headers

    def names(self) -> tuple:
        """What a run records of its credentials, to say what a process needs."""
        return tuple(sorted({n for n, _ in self.headers} | ({"Authorization"} if self.basic else set())))

    def check(self, run_id: str) -> str:
        """A short keyed digest: tells whether a process has the run's credentials, and
        tells nothing of them (8 hex digits match any of 2^32 others)."""
        if not (self.headers or self.basic):
            return ""
        canonical = json.dumps([sorted(map(tuple, self.headers)), sorted(self.basic.items())])
        return hmac.new(run_id.encode(), canonical.encode(), hashlib.sha256).hexdigest()[:8]

    def secrets(self) -> list:
        """What must never appear in a message: header values, each word of them (a
        token after "Bearer"), passwords and Basic tokens, as typed and percent-encoded."""
        values = [value for _, value in self.headers]
        values += [word for value in values for word in value.split()]
        for user, password in self.basic.values():
            values += [password, basic_token(user, password)]
        values += [quote(v, safe="") for v in values]
        return sorted({v for v in values if len(v) >= MIN_SECRET_CHARS}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text

    def dumps(self) -> str:
        return json.dumps({"headers": self.headers,
                           "basic": {o: list(login) for o, login in self.basic.items()}})

    @classmethod
    def loads(cls, text: str) -> "Credentials":
        data = json.loads(text)
        return cls(data.get("headers", []), {o: tuple(v) for o, v in data.get("basic", {}).items()})


def is_latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def basic_token(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


_credentials: Optional[Credentials] = None


def install(credentials: Credentials) -> None:
    """This process's credentials, and its helper processes' (through their environment)."""
    global _credentials
    _credentials = credentials
    if credentials.headers or credentials.basic:
        os.environ[CREDENTIALS_ENV] = credentials.dumps()
    else:
        os.environ.pop(CREDENTIALS_ENV, None)


def credentials() -> Credentials:
    global _credentials
    if _credentials is None:
        text = os.environ.get(CREDENTIALS_ENV)
        _credentials = Credentials.loads(text) if text else Credentials()
    return _credentials


def credentials_for(run_id: str, check: str, names: tuple) -> Credentials:
    """The credentials to fetch the run's pages with: none for a run started without any
    (whatever this process holds), this process's if they are the run's, else
    ``CredentialsNeeded``."""
    if not check:
        return Credentials()
    mine = credentials()
    if mine.check(run_id) == check:
        return mine
    waiting.add(run_id)
    given = " ".join(f"--header '{n}: …'" for n in names)
    raise CredentialsNeeded(f"run {run_id} fetches pages with credentials this process was "
                            f"not given: run the same command again, or ingest resume {run_id} {given}")


waiting: set = set()  # runs of this process waiting for credentials (nothing to drain)
