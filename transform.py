"""The transform every record goes through, and the faults a demo or a test can inject.

The transform uppercases every string value, recursively; keys and other values stay as
they are. Injected faults are deterministic: ``--fail-task N`` always fails task N, and
``--flaky-rate P --seed S`` fails an attempt with probability P, decided by a hash of
(seed, position, attempt), so a rerun or a replay sees the same failures.
"""

import zlib
from dataclasses import dataclass

MAX_DEPTH = 64  # deeper records go to `errors` (NestingTooDeep)


class InjectedFailure(Exception):
    """The demo's deliberate failure of a task (``--fail-task``)."""


class TransientFailure(Exception):
    """A simulated flaky dependency (``--flaky-rate``): the next attempt may succeed."""


class NestingTooDeep(Exception):
    """A record nested deeper than MAX_DEPTH levels."""


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
            draw = zlib.crc32(b"%d:%d:%d" % (self.seed, position, attempt)) / 4294967296.0
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


def uppercase_strings(value, depth: int = 0):
    """Uppercase every string value inside ``value``; keys and non-strings unchanged."""
    kind = type(value)
    if kind is str:
        return value.upper()
    if kind is dict:
        if depth >= MAX_DEPTH:
            raise NestingTooDeep(f"record is nested deeper than {MAX_DEPTH} levels")
        depth += 1
        return {k: uppercase_strings(v, depth) for k, v in value.items()}
    if kind is list:
        if depth >= MAX_DEPTH:
            raise NestingTooDeep(f"record is nested deeper than {MAX_DEPTH} levels")
        depth += 1
        return [uppercase_strings(v, depth) for v in value]
    return value


def transform(record: dict, position: int, attempt: int, faults: Faults) -> dict:
    """One attempt at transforming the record at ``position``."""
    if faults.any:
        faults.check(position, attempt)
    return uppercase_strings(record)


def title_of(position: int) -> str:
    return f"task {position}"
