"""What happens to each record between reading and storing: the transform (a built-in or the
user's own ``MODULE:FUNCTION``), the record's key (``--key``), and the faults a demo or a
test can inject.

The default transform, ``identity``, stores records as read. ``uppercase`` (the demo's, one
flag away: ``--transform uppercase``) uppercases every string value, recursively; keys and
other values stay as they are.
A user's transform takes a record (a dict) and returns the record to store (a dict), or
None to skip it. Injected faults are deterministic: ``--fail-task N`` always fails task N,
and ``--flaky-rate P --seed S`` fails an attempt with probability P, decided by a hash of
(seed, position, attempt), so a rerun or a replay sees the same failures.
"""

import functools
import hashlib
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Optional

from .codec import key_text, stored_json
from .errors import (BadTransformResult, MissingKey, NestingTooDeep, NotStorable, RecordError,
                     TransformNotFound, one_line)

MAX_DEPTH = 64  # deeper records go to `errors` (NestingTooDeep)


class InjectedFailure(Exception):
    """The demo's deliberate failure of a task (``--fail-task``)."""


class TransientFailure(Exception):
    """A simulated flaky dependency (``--flaky-rate``): the next attempt may succeed."""


@dataclass(frozen=True)
class Faults:
    fail_tasks: frozenset = frozenset()
    flaky_rate: float = 0.0
    seed: int = 0

    @property
    def any(self) -> bool:
        return bool(self.fail_tasks) or self.flaky_rate > 0

    def check(self, position: int, attempt: int) -> None:
        """Raise the failure injected for this attempt at this position, if any."""
        if position in self.fail_tasks:
            raise InjectedFailure(f"task {position} failed on purpose (--fail-task {position})")
        if self.flaky_rate > 0:
            key = b"%d:%d:%d" % (self.seed, position, attempt)
            draw = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest()) / 2.0**64
            if draw < self.flaky_rate:
                raise TransientFailure(
                    f"task {position} hit a simulated transient fault on attempt {attempt} "
                    f"(--flaky-rate {self.flaky_rate})"
                )

    def as_dict(self) -> dict:
        return {"fail_tasks": sorted(self.fail_tasks), "flaky_rate": self.flaky_rate, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict) -> "Faults":
        return cls(frozenset(d.get("fail_tasks", ())), d.get("flaky_rate", 0.0), d.get("seed", 0))


def uppercase_strings(record: dict) -> dict:
    """Uppercase every string value inside ``record``; keys and non-strings unchanged."""
    return _upper_dict(record, 1)


# Two mutually recursive loops rather than one generic function: type checks inline,
# half the calls, and the depth guard only where nesting grows. This is the hot path.
def _upper_dict(d: dict, depth: int) -> dict:
    if depth > MAX_DEPTH:
        raise NestingTooDeep(f"record is nested deeper than {MAX_DEPTH} levels")
    out = {}
    for key, value in d.items():
        kind = type(value)
        if kind is str:
            out[key] = value.upper()
        elif kind is dict:
            out[key] = _upper_dict(value, depth + 1)
        elif kind is list:
            out[key] = _upper_list(value, depth + 1)
        else:
            out[key] = value
    return out


def _upper_list(items: list, depth: int) -> list:
    if depth > MAX_DEPTH:
        raise NestingTooDeep(f"record is nested deeper than {MAX_DEPTH} levels")
    out = []
    for value in items:
        kind = type(value)
        if kind is str:
            out.append(value.upper())
        elif kind is dict:
            out.append(_upper_dict(value, depth + 1))
        elif kind is list:
            out.append(_upper_list(value, depth + 1))
        else:
            out.append(value)
    return out


def identity(record: dict) -> dict:
    """Store the record as it was read."""
    return record


BUILTINS = {"uppercase": uppercase_strings, "identity": identity}
DEFAULT = "identity"  # a new run records its transform by name, never "the default"


# -- the user's transform --------------------------------------------------------------------------
def recorded_spec(spec: str) -> str:
    """The transform as a run records it: a file path made absolute, so that a worker or a
    later ``ingest resume`` started elsewhere finds the same file."""
    target, _, function = spec.rpartition(":")
    if _is_file(target):
        return f"{os.path.abspath(target)}:{function}"
    return spec


def resolve(spec: str, directory: str = "") -> Callable:
    """The function ``spec`` names: a built-in, ``MODULE:FUNCTION`` (imported from
    ``directory``, the load's working directory, first, as ``python -m`` would from there)
    or ``path/to/file.py:FUNCTION``. ``TransformNotFound`` names what is wrong."""
    if spec in BUILTINS:
        return BUILTINS[spec]
    return _imported(spec, directory)


@functools.cache
def _imported(spec: str, directory: str) -> Callable:
    target, colon, name = spec.rpartition(":")
    if not colon or not target or not name:
        raise TransformNotFound(f"--transform {spec}: expected MODULE:FUNCTION, "
                                f"path/to/file.py:FUNCTION or one of {', '.join(BUILTINS)}")
    try:
        module = _load_file(target) if _is_file(target) else _load_module(target, directory)
    except TransformNotFound:
        raise
    except Exception as exc:  # the user's module may raise anything while it is imported
        raise TransformNotFound(f"--transform {spec}: cannot import {target}: "
                                f"{type(exc).__name__}: {one_line(exc)}") from None
    function = getattr(module, name, None)
    if function is None:
        raise TransformNotFound(f"--transform {spec}: {target} has no {name}")
    if not callable(function):
        raise TransformNotFound(f"--transform {spec}: {name} in {target} is "
                                f"{type(function).__name__}, not a function")
    return function


def _is_file(target: str) -> bool:
    return target.endswith(".py") or os.sep in target or "/" in target


def _load_file(path: str):
    if not os.path.isfile(path):
        raise TransformNotFound(f"--transform {path}: no such file")
    name = "ingest_transform_" + hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _load_module(name: str, directory: str):
    directory = directory or os.getcwd()
    if directory not in sys.path:
        sys.path.insert(0, directory)
    module = importlib.import_module(name)
    # Python imports a name once per process: a worker serving runs of two folders that both
    # have a shapes.py must not shape one run with the other's code.
    found = getattr(module, "__file__", None)
    local = os.path.join(directory, *name.split("."))
    if found and _is_under(found, directory) is False and (
            os.path.exists(local + ".py") or os.path.isdir(local)):
        raise TransformNotFound(f"--transform {name}: this process already imported {name} from "
                                f"{found}, not from {directory}; run this run's chunks in another "
                                "worker, or give the transform as path/to/file.py:FUNCTION")
    return module


def _is_under(path: str, directory: str) -> bool:
    return os.path.abspath(path).startswith(os.path.abspath(directory) + os.sep)


# -- keys ------------------------------------------------------------------------------------------
# A key is indexed (unique): Postgres refuses index entries over ~2,700 bytes, and a key that
# long is no identifier anyway. Such a record goes to errors, under its file and position.
MAX_KEY_BYTES = 1000
def key_path(path: str) -> tuple:
    """``login.uuid`` -> ("login", "uuid"); ValueError if a part is empty."""
    parts = tuple(path.split("."))
    if not all(parts):
        raise ValueError(f"--key {path!r}: expected a field name or a dotted path such as login.uuid")
    return parts


def key_of(record: dict, parts: tuple, path: str) -> str:
    """The record's key: the string, or the number's text (``codec.key_text``: an int's
    digits, a float as JSON writes it, a Decimal by its value), at ``path`` (so ``1`` and
    ``"1"`` are one key). ``MissingKey`` if there is none, or it is not a string or number,
    or it is over ``MAX_KEY_BYTES``."""
    value = record
    for part in parts:
        if type(value) is not dict or part not in value:
            raise MissingKey(f"record has no {path}")
        value = value[part]
    kind = type(value)
    if kind is str:
        if not value:
            raise MissingKey(f"{path} is an empty string")
        if "\x00" in value:
            raise MissingKey(f"{path} contains a NUL character (\\u0000)")
        if len(value) > MAX_KEY_BYTES // 4 and len(value.encode()) > MAX_KEY_BYTES:
            raise MissingKey(f"{path} is longer than {MAX_KEY_BYTES} bytes, too long for a key")
        return value
    if kind is int or kind is float or kind is Decimal:
        text = key_text(value)
        if len(text) > MAX_KEY_BYTES:
            raise MissingKey(f"{path} is a number longer than {MAX_KEY_BYTES} bytes, too long for a key")
        return text
    kind_name = {bool: "a boolean", dict: "an object", list: "an array", type(None): "null"}
    raise MissingKey(f"{path} is {kind_name.get(kind, kind.__name__)}, not a string or number")


# -- one attempt at one record ---------------------------------------------------------------------
class Shaper:
    """How a run turns a record into what it stores: its transform, its faults and its key.

    ``attempt`` returns the JSON to store, or None when the transform skips the record.
    What the transform raises is a failed attempt (retried unless it is a ``RecordError``);
    an output that can't be stored is a ``RecordError``.
    """

    def __init__(self, spec: str = DEFAULT, directory: str = "", faults: Optional[Faults] = None,
                 key: str = ""):
        self.spec = spec
        self.function = resolve(spec, directory)
        # A built-in makes no float that loads did not make, so never a NaN to look for.
        self.nan_check = spec not in BUILTINS
        self.faults = faults or Faults()
        self.key = key
        self.key_parts = key_path(key) if key else ()

    def key_of(self, record: dict) -> str:
        return key_of(record, self.key_parts, self.key)

    def attempt(self, record: dict, position: int, number: int) -> Optional[bytes]:
        """The JSON to store, or None."""
        shaped = self.shape(record, position, number)
        return None if shaped is None else stored(shaped, self.nan_check)

    def shape(self, record: dict, position: int, number: int) -> Optional[dict]:
        """The record to store (not yet checked storable: see ``stored``), or None."""
        if self.faults.any:
            self.faults.check(position, number)
        shaped = self.function(record)
        if type(shaped) is dict or shaped is None:
            return shaped
        raise BadTransformResult(f"transform {self.spec} returned {type(shaped).__name__}, "
                                 "not a dict (or None to skip the record)")


def stored(record: dict, nan_check: bool = True) -> bytes:
    """The record's JSON as the app database stores it, exact for every number (Decimals and
    ints beyond 64 bits too); a ``RecordError`` if it can't be: NaN or an infinity, a type
    JSON has no place for (``NotStorable``), a number beyond Postgres (``NumberOutOfRange``),
    a NUL character. ``nan_check=False`` for a record whose floats all came from reading."""
    try:
        return stored_json(record, nan_check=nan_check)
    except RecordError:
        raise
    except (TypeError, ValueError) as exc:  # orjson.JSONEncodeError is a TypeError
        if "ecursion" in str(exc):
            raise NestingTooDeep("record is nested deeper than the 254 levels JSON output allows") from None
        raise NotStorable(f"the transform's output can't be stored as JSON: {one_line(exc)}") from None
