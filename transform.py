"""The transform every record goes through, and the faults a demo or a test can inject.

The transform uppercases every string value, recursively; keys and other values stay as
they are. Injected faults are deterministic: ``--fail-task N`` always fails task N, and
``--flaky-rate P --seed S`` fails an attempt with probability P, decided by a hash of
(seed, position, attempt), so a rerun or a replay sees the same failures.
"""

import hashlib
from dataclasses import dataclass

from .errors import NestingTooDeep

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


def transform(record: dict, position: int, attempt: int, faults: Faults) -> dict:
    """One attempt at transforming the record at ``position``."""
    if faults.any:
        faults.check(position, attempt)
    return uppercase_strings(record)
