"""JSON as the app database stores it: orjson's text, exact for integers beyond 64 bits, and
the NUL rule (Postgres JSONB can't store a NUL character, so no database gets one)."""

import json
import re
from typing import Any

import orjson

from .errors import NulCharacter

NUL_REASON = "record contains a NUL character (\\u0000), which Postgres JSONB cannot store"
# orjson writes NUL as \u0000; an escaped backslash before "u0000" (\\u0000) is no NUL.


_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def dumps_exact(value) -> bytes:
    """orjson's JSON; the stdlib's for the rare integer over 64 bits, which orjson refuses."""
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        if "64-bit" not in str(exc):
            raise
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def has_nul(data: bytes) -> bool:
    """Whether orjson's JSON text holds a NUL character."""
    return b"\\u0000" in data and _NUL.search(data) is not None


def stored_json(value) -> bytes:
    """The JSON a ``tasks`` row stores; NulCharacter if Postgres JSONB could not hold it."""
    data = dumps_exact(value)
    if has_nul(data):
        raise NulCharacter(NUL_REASON)
    return data


def storable(record: Any) -> Any:
    """The record as JSONB can hold it: NUL characters become U+FFFD."""
    if record is None:
        return None
    try:
        text = dumps_exact(record)
    except (TypeError, ValueError, RecursionError):  # nested deeper than orjson writes (254 levels)
        return None
    if has_nul(text):
        return orjson.loads(_NUL.sub(rb"\1\\ufffd", text))
    return orjson.loads(text)
