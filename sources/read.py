"""A chunk's byte ranges back into records: NDJSON line by line, a JSON document's slice as
one array, each parsed exactly (``codec.loads``: integers of any size; a ``Decimal`` only
where a float would change the number). A record that can't be used becomes a
``RecordProblem`` for the ``errors`` table. ``SourceTexts`` gives back a record's text as it
is in the file, for its ``errors`` row: read again from the range only once a record of it
fails, so that good records cost nothing."""

import io
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Optional, Union

from .. import codec
from ..transform import MAX_DEPTH
from .common import MAX_RECORD_BYTES, is_blank, iter_lines, json_type, split_records


@dataclass(frozen=True)
class RecordProblem:
    """Why one record can't be transformed; it goes to ``errors`` without retries."""

    kind: str
    message: str


Record = Union[dict, RecordProblem]


def read_chunk(path: str, shape: str, start: int, end: int, first: int) -> Iterator[tuple]:
    """Yield (position, record or RecordProblem) for one chunk's byte range."""
    with open(path, "rb") as f:
        f.seek(start)
        if shape == "ndjson":
            yield from _read_ndjson(f, end, first, path)
        else:
            yield from _read_document_slice(f.read(end - start), first)


def parse_chunk(data: bytes, shape: str, first: int, name: str = "") -> Iterator[tuple]:
    """Yield (position, record or RecordProblem) for a chunk's range already read into
    memory (a ranged GET of an object in a bucket), as ``read_chunk`` does for a file's."""
    if shape == "ndjson":
        yield from _read_ndjson(io.BytesIO(data), len(data), first, name)
    else:
        yield from _read_document_slice(data, first)


def _read_ndjson(f: BinaryIO, end: int, position: int, name: str = "") -> Iterator[tuple]:
    loads, refused = codec.loads_checked, codec.JSONError
    for start, stop, line in iter_lines(f, f.tell(), end):
        if line is None:
            yield position, too_large(name, start, stop)
        elif is_blank(line):
            continue
        else:
            try:
                record, problem = loads(line)
            except refused as exc:
                record, problem = unreadable("line", exc), None
            if type(record) is not dict or problem is not None:
                record = checked(record, problem)
            yield position, record
        position += 1


def too_large(name: str, start: int, stop: int) -> RecordProblem:
    """An NDJSON line over the limit: never held, so its message says where it is."""
    return RecordProblem("RecordTooLarge", f"record is over the {MAX_RECORD_BYTES >> 20} MiB limit "
                                           f"({stop - start} bytes: bytes {start}-{stop} of {name})")


def _read_document_slice(data: bytes, position: int) -> Iterator[tuple]:
    try:
        values, problem = codec.loads_checked(b"[" + data + b"]")
    except codec.JSONError:
        values, problem = None, True
    if problem:
        # One record that can't be read or stored (a lone surrogate, 1e200000, deep nesting)
        # must not sink the chunk: parse the records one by one, as NDJSON lines are.
        values = [_loads_record(text) for text in split_records(data.decode("utf-8"))]
    for offset, value in enumerate(values):
        yield position + offset, as_record(value)


def _loads_record(text: str) -> Record:
    try:
        return checked(*codec.loads_checked(text))
    except codec.JSONError as exc:
        return unreadable("record", exc)


def checked(value, problem: Optional[str]) -> Record:
    """The record, or the problem of a number in it that no database holds."""
    if problem is not None:
        return RecordProblem("NumberOutOfRange", problem)
    return as_record(value)


def unreadable(what: str, exc: Exception) -> RecordProblem:
    """The problem of a text ``codec.loads`` refused: not JSON, too deep, or JSON that holds
    a number or a string no database can store (the message names the field)."""
    if isinstance(exc, codec.NestedTooDeep):
        return RecordProblem("NestingTooDeep", f"record is nested deeper than {MAX_DEPTH} levels")
    if isinstance(exc, codec.InvalidJSON):
        return RecordProblem("InvalidJSON", f"{what} is {exc}")
    return RecordProblem(type(exc).__name__, str(exc))  # LoneSurrogate, NumberOutOfRange


def as_record(value) -> Record:
    if type(value) is dict or type(value) is RecordProblem:
        return value
    return RecordProblem("NotAnObject", f"record is {json_type(value)}, not a JSON object")


# -- the records' texts, for errors rows ------------------------------------------------------
class SourceTexts:
    """The text of each record of one byte range of a file (a chunk's piece), as it is in
    the file: read again the first time one is asked for. An NDJSON line over the size
    limit has none (it is never held)."""

    def __init__(self, path: Optional[str], shape: str, start: int, end: int, first: int,
                 data: Optional[bytes] = None):
        """The range ``start``..``end`` of the file at ``path``, or the range's bytes already
        in memory (``data``: an object's piece); neither: no texts are known."""
        self.path, self.shape, self.start, self.end, self.first = path, shape, start, end, first
        self.data = data
        self._texts: Optional[list] = None

    def text_of(self, position: int) -> Optional[str]:
        if self._texts is None:
            self._texts = self._read()
        index = position - self.first
        return self._texts[index] if 0 <= index < len(self._texts) else None

    def _read(self) -> list:
        if self.data is not None:
            return record_texts(io.BytesIO(self.data), self.shape, len(self.data))
        if self.path is None:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.start)
            return record_texts(f, self.shape, self.end)


def record_texts(f: BinaryIO, shape: str, end: int) -> list:
    """The texts of the records from ``f``'s position up to byte ``end``, in order, without
    the JSON whitespace around them (None for an NDJSON line over the size limit)."""
    if shape == "ndjson":
        return [None if line is None else line.strip(b" \t\r").decode("utf-8", "replace")
                for _, _, line in iter_lines(f, f.tell(), end)
                if line is None or not is_blank(line)]
    return split_records(f.read(end - f.tell()).decode("utf-8"))
