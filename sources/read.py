"""A chunk's byte ranges back into records: NDJSON line by line, a JSON document's slice as
one array; a record that can't be used becomes a ``RecordProblem`` for the ``errors`` table."""

from dataclasses import dataclass
from typing import BinaryIO, Iterator, Union

from ..transform import MAX_DEPTH
from .common import MAX_RECORD_BYTES, iter_lines, json_type, split_records


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
            yield from _read_ndjson(f, end, first)
        else:
            yield from _read_document_slice(f.read(end - start), first)


def parse_chunk(data: bytes, shape: str, first: int) -> Iterator[tuple]:
    """Yield (position, record or RecordProblem) for a chunk's range already read into
    memory (a ranged GET of an object in a bucket), as ``read_chunk`` does for a file's."""
    import io

    if shape == "ndjson":
        yield from _read_ndjson(io.BytesIO(data), len(data), first)
    else:
        yield from _read_document_slice(data, first)


def _read_ndjson(f: BinaryIO, end: int, position: int) -> Iterator[tuple]:
    import orjson

    loads = orjson.loads
    for start, stop, line in iter_lines(f, f.tell(), end):
        if line is None:
            yield position, RecordProblem(
                "RecordTooLarge",
                f"record is over the {MAX_RECORD_BYTES >> 20} MiB limit ({stop - start} bytes)",
            )
        elif not line.strip():
            continue
        else:
            try:
                record = loads(line)
            except orjson.JSONDecodeError as exc:
                record = unreadable("line", exc)
            yield position, record if type(record) is dict else as_record(record)
        position += 1


def _read_document_slice(data: bytes, position: int) -> Iterator[tuple]:
    import orjson

    try:
        values = orjson.loads(b"[" + data + b"]")
    except orjson.JSONDecodeError:
        # One record orjson refuses (a lone surrogate, 1e400, deep nesting) must not sink
        # the chunk: parse the records one by one, as NDJSON lines are.
        values = [_loads_record(text) for text in split_records(data.decode("utf-8"))]
    for offset, value in enumerate(values):
        yield position + offset, as_record(value)


def _loads_record(text: str):
    import orjson

    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return unreadable("record", exc)


def unreadable(what: str, exc: Exception) -> RecordProblem:
    """The problem of a record the JSON parser refused: too deep, or not valid JSON."""
    if "depth limit" in str(exc) or "recursion" in str(exc).lower():
        return RecordProblem("NestingTooDeep", f"record is nested deeper than {MAX_DEPTH} levels")
    return RecordProblem("InvalidJSON", f"{what} is not valid JSON: {exc}")


def as_record(value) -> Record:
    if type(value) is dict or type(value) is RecordProblem:
        return value
    return RecordProblem("NotAnObject", f"record is {json_type(value)}, not a JSON object")
