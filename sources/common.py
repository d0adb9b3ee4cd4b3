"""What scanning and reading a dataset share: the size limits, opening an input, splitting
NDJSON into lines in big blocks (and which are blank), and splitting a chunk of a document
into its records' texts without parsing them."""

import os
import re
from typing import BinaryIO, Iterator, Optional

from ..errors import InputError

MAX_RECORD_BYTES = 1 << 20  # one record, in bytes; larger NDJSON lines go to `errors`
MAX_DOCUMENT_RECORD_BYTES = 16 << 20  # hard cap on one record inside a JSON document
BLOCK_BYTES = 1 << 20
EXPECTED = 'expected an array of objects, NDJSON, a {"results": [...]} envelope or one object'


def open_input(path: str) -> BinaryIO:
    """Open a dataset, turning every way it can't be read into a one-line InputError."""
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory; pass a JSON or NDJSON file")
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; check the path") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied; make the file readable") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror}); check the path") from None


def json_type(value) -> str:
    """The JSON name of a decoded value's type, as users know it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def is_blank(line: bytes) -> bool:
    """An NDJSON line of JSON whitespace only, skipped (a form feed is no JSON whitespace:
    bytes.strip would take it for blank)."""
    return not line.strip(b" \t\r")


def iter_lines(f: BinaryIO, offset: int, end: Optional[int] = None, hasher=None) -> Iterator[tuple]:
    """Yield (start, end, line) for each line from ``offset`` up to ``end`` (or EOF).

    Reads big blocks, so the GIL is rarely released for I/O; a line over MAX_RECORD_BYTES
    is skipped without being held, and yielded as ``None``.
    """
    carry = b""
    oversize = False
    carry_start = offset
    while end is None or offset < end:
        want = BLOCK_BYTES * 4 if end is None else min(BLOCK_BYTES * 4, end - offset)
        block = f.read(want)
        if not block:
            break
        if hasher is not None:
            hasher.update(block)
        block_start = offset
        offset += len(block)
        lines = block.split(b"\n")
        last = lines.pop()  # the part after the block's last newline (may be empty)
        cursor = block_start
        for index, line in enumerate(lines):
            line_end = cursor + len(line) + 1
            if index == 0 and (carry or oversize):
                if oversize or len(carry) + len(line) > MAX_RECORD_BYTES:
                    yield carry_start, line_end, None
                else:
                    yield carry_start, line_end, carry + line
                carry, oversize = b"", False
            elif len(line) > MAX_RECORD_BYTES:
                yield cursor, line_end, None
            else:
                yield cursor, line_end, line
            cursor = line_end
        if lines:
            carry, carry_start = last, cursor
        else:
            carry += last
        if len(carry) > MAX_RECORD_BYTES:
            carry, oversize = b"", True
    if carry or oversize:
        yield carry_start, offset, None if oversize else carry


# A string or a bracket or comma.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(")?|[\[\]{},]')


def split_records(text: str) -> list:
    """The records of a chunk's text (records joined by commas), split without parsing."""
    records, depth, start = [], 0, 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
        elif token in ("]", "}"):
            depth -= 1
        elif token == "," and depth == 0:
            records.append(text[start:match.start()].strip())
            start = match.end()
    records.append(text[start:].strip())
    return records
