"""Reading JSON datasets as streams.

A dataset is one file in one of three shapes, detected from its first bytes:

- NDJSON: one JSON value per line (blank lines skipped);
- a bare JSON array of records;
- the randomuser.me envelope ``{"results": [...], "info": {...}}``.

``scan`` reads the file once, in bounded memory: it checks the whole file is readable
(so a broken file writes nothing), fingerprints it, counts the records and cuts them into
chunks of byte ranges. ``read_chunk`` later reads one chunk back from its range, so a chunk
workflow's inputs hold offsets, never records.
"""

import codecs
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator, Optional, Union

MAX_RECORD_BYTES = 1 << 20  # one record, in bytes; larger NDJSON lines go to `errors`
MAX_DOCUMENT_RECORD_BYTES = 16 << 20  # hard cap on one record inside a JSON document
BLOCK_BYTES = 1 << 20
BOM = codecs.BOM_UTF8
FORMATS = ("json", "ndjson")


class InputError(Exception):
    """A problem with a whole input file; the message names the file and the fix."""


@dataclass(frozen=True)
class RecordProblem:
    """Why one record can't be transformed; it goes to ``errors`` without retries."""

    kind: str
    message: str


@dataclass
class Plan:
    """What ``scan`` learnt of a dataset: enough to load it chunk by chunk."""

    path: str
    shape: str  # "ndjson", "array" or "envelope"
    fingerprint: str
    size: int
    records: int = 0
    # (start byte, end byte, first position, record count) per chunk
    chunks: list = field(default_factory=list)


class _Chunker:
    """Cuts a stream of records, given by byte offsets, into chunks of ``chunk_size``."""

    def __init__(self, chunk_size: int):
        self.chunk_size = chunk_size
        self.chunks: list = []
        self.records = 0
        self._start: Optional[int] = None
        self._end = 0
        self._first = 0
        self._count = 0

    def add(self, start: int, end: int) -> None:
        if self._start is None:
            self._start, self._first, self._count = start, self.records, 0
        self._end = end
        self._count += 1
        self.records += 1
        if self._count == self.chunk_size:
            self.close()

    def close(self) -> None:
        if self._start is not None:
            self.chunks.append((self._start, self._end, self._first, self._count))
            self._start = None


def fingerprint_of(content_hash: str, label: str) -> str:
    """A dataset's identity: its bytes, plus a label to load the same bytes again on purpose."""
    return hashlib.sha256(f"{content_hash}:{label}".encode()).hexdigest()[:20]


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


def scan(path: str, chunk_size: int, fmt: Optional[str] = None, label: str = "") -> Plan:
    """Read the dataset once: validate, fingerprint and cut it into chunks."""
    with open_input(path) as f:
        head = f.read(BLOCK_BYTES)
        size = os.fstat(f.fileno()).st_size
        body_start = len(BOM) if head.startswith(BOM) else 0
        if head.startswith(b"\x1f\x8b"):
            raise InputError(f"{path}: is gzip-compressed; decompress it first (gunzip -k {path})")
        if not head[body_start:].strip():
            what = "is empty" if size == 0 else "holds only whitespace"
            raise InputError(f"{path}: {what}; nothing to load")
        shape = _detect_shape(path, head, body_start, fmt)
        f.seek(body_start)
        hasher = hashlib.sha256()
        chunker = _Chunker(chunk_size)
        if shape == "ndjson":
            _scan_ndjson(path, f, body_start, hasher, chunker)
        else:
            _DocumentScanner(path, f, body_start, hasher, chunker, shape).scan()
        chunker.close()
    return Plan(
        path=os.path.abspath(path),
        shape=shape,
        fingerprint=fingerprint_of(hasher.hexdigest(), label),
        size=size,
        records=chunker.records,
        chunks=chunker.chunks,
    )


def _detect_shape(path: str, head: bytes, body_start: int, fmt: Optional[str]) -> str:
    """NDJSON when the first line is a whole JSON value and more follows; else a document."""
    body = head[body_start:].lstrip()
    first = body[:1]
    if fmt == "ndjson":
        return "ndjson"
    if fmt == "json" or first == b"[":
        if first == b"[":
            return "array"
        if first == b"{":
            return "envelope"
        raise _not_a_dataset(path, body)
    if first != b"{":
        raise _not_a_dataset(path, body)
    line, newline, rest = body.partition(b"\n")
    if newline and rest.strip():
        try:
            json.loads(line)
            return "ndjson"
        except ValueError:
            pass
    return "envelope"


def _not_a_dataset(path: str, body: bytes) -> InputError:
    try:
        value = json.loads(body) if len(body) < BLOCK_BYTES else None
    except ValueError:
        value = None
    if value is not None or body[:1] in (b'"', b"-") or body[:1].isdigit() or body[:4] in (b"true", b"null", b"fals"):
        return InputError(
            f"{path}: holds a single JSON {type(value).__name__ if value is not None else 'value'}, "
            "not records; expected an array of objects, NDJSON or a {\"results\": [...]} envelope"
        )
    return InputError(
        f"{path}: is not valid JSON (starts with {body[:20]!r}); expected an array of objects, "
        "NDJSON or a {\"results\": [...]} envelope"
    )


def _scan_ndjson(path: str, f: BinaryIO, offset: int, hasher, chunker: _Chunker) -> None:
    for line_number, (start, end, line) in enumerate(iter_lines(f, offset, hasher=hasher), 1):
        if line is None:
            chunker.add(start, end)  # too large: reported as a record error when loaded
        elif line.strip():
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{path}: line {line_number} is not valid UTF-8 (byte {start + exc.start}); "
                    "re-encode the file as UTF-8 (iconv -t UTF-8)"
                ) from None
            chunker.add(start, end)


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


class _DocumentScanner:
    """Walks a JSON document record by record in bounded memory, noting byte offsets.

    The stdlib decoder parses one record at a time out of a sliding text window; offsets
    are kept in bytes because that is how a chunk is read back.
    """

    def __init__(self, path, f, offset, hasher, chunker, shape):
        self.path, self.f, self.hasher, self.chunker, self.shape = path, f, hasher, chunker, shape
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.json = json.JSONDecoder(parse_constant=self._reject_constant)
        self.buf = ""
        self.i = 0  # index into buf
        self.byte = offset  # file offset of buf[i]
        self.eof = False

    @staticmethod
    def _reject_constant(name: str):
        raise ValueError(f"{name} is not valid JSON")

    def scan(self) -> None:
        if self.shape == "array":
            self._expect("[")
            self._records()
        else:
            self._envelope()
        self._skip_ws()
        if self._peek():
            self._fail("has extra data after the JSON document")

    # -- reading ------------------------------------------------------------------------
    def _fill(self) -> bool:
        if self.eof:
            return False
        block = self.f.read(BLOCK_BYTES)
        self.hasher.update(block)
        try:
            text = self.decoder.decode(block, final=not block)
        except UnicodeDecodeError:
            raise InputError(
                f"{self.path}: is not valid UTF-8 near byte {self.byte}; re-encode the file "
                "as UTF-8 (iconv -t UTF-8)"
            ) from None
        if not block:
            self.eof = True
        self.buf = self.buf[self.i:] + text
        self.i = 0
        return True

    def _peek(self) -> str:
        while self.i >= len(self.buf):
            if not self._fill():
                return ""
        return self.buf[self.i]

    def _advance(self, chars: int) -> None:
        self.byte += len(self.buf[self.i:self.i + chars].encode("utf-8"))
        self.i += chars

    def _skip_ws(self) -> None:
        while True:
            ch = self._peek()
            if ch and ch in " \t\r\n":
                j = self.i
                while j < len(self.buf) and self.buf[j] in " \t\r\n":
                    j += 1
                self._advance(j - self.i)
            else:
                return

    def _expect(self, ch: str) -> None:
        self._skip_ws()
        got = self._peek()
        if got != ch:
            self._fail(f"expected '{ch}' but found {got!r}" if got else f"ended early, expected '{ch}'")
        self._advance(1)

    def _value(self):
        """Decode the value at the cursor; returns (value, start byte, end byte)."""
        while True:
            try:
                value, end = self.json.raw_decode(self.buf, self.i)
            except json.JSONDecodeError as exc:
                if self._may_continue(exc) and self._fill():
                    continue
                reason = exc.msg if self.eof or not self._may_continue(exc) else "record too large"
                self._fail(f"is not valid JSON near byte {self.byte} ({reason}); is it truncated?")
            except ValueError as exc:
                self._fail(f"is not valid JSON near byte {self.byte} ({exc})")
            if end == len(self.buf) and not self.eof and self._fill():
                continue  # a number at the window's edge may go on in the next block
            start = self.byte
            self._advance(end - self.i)
            return value, start, self.byte

    def _may_continue(self, exc: json.JSONDecodeError) -> bool:
        """Whether more input could mend this error: it sits at the window's end."""
        if len(self.buf) - self.i > MAX_DOCUMENT_RECORD_BYTES:
            self._fail(
                f"has a record over {MAX_DOCUMENT_RECORD_BYTES >> 20} MiB near byte {self.byte}; "
                "split it, or convert the file to NDJSON"
            )
        return exc.msg.startswith("Unterminated string") or exc.pos >= len(self.buf) - 16

    def _fail(self, what: str):
        raise InputError(f"{self.path}: {what}")

    # -- structure ----------------------------------------------------------------------
    def _records(self) -> None:
        self._skip_ws()
        if self._peek() == "]":
            self._advance(1)
            return
        while True:
            self._skip_ws()
            _, start, end = self._value()
            self.chunker.add(start, end)
            self._skip_ws()
            ch = self._peek()
            if ch == "]":
                self._advance(1)
                return
            if ch != ",":
                self._fail(
                    f"expected ',' or ']' after record {self.chunker.records - 1} near byte {self.byte}"
                    + ("; is it truncated?" if not ch else "")
                )
            self._advance(1)

    def _envelope(self) -> None:
        self._expect("{")
        found = False
        self._skip_ws()
        if self._peek() == "}":
            self._advance(1)
        else:
            while True:
                self._skip_ws()
                if self._peek() != '"':
                    self._fail(f"expected a key near byte {self.byte}")
                key, _, _ = self._value()
                self._expect(":")
                self._skip_ws()
                if key == "results" and not found:
                    found = True
                    if self._peek() != "[":
                        value, _, _ = self._value()
                        self._fail(
                            f"'results' is a {type(value).__name__}, not a list of records"
                        )
                    self._advance(1)
                    self._records()
                else:
                    self._value()
                self._skip_ws()
                ch = self._peek()
                if ch == "}":
                    self._advance(1)
                    break
                if ch != ",":
                    self._fail(f"expected ',' or '}}' near byte {self.byte}; is it truncated?")
                self._advance(1)
        if not found:
            self._fail(
                "is a JSON object without a 'results' list; expected {\"results\": [...]}, "
                "an array of records, or NDJSON (--format ndjson)"
            )


# -- reading a chunk back ---------------------------------------------------------------
Record = Union[dict, RecordProblem]


def read_chunk(path: str, shape: str, start: int, end: int, first: int) -> Iterator[tuple]:
    """Yield (position, record or RecordProblem) for one chunk's byte range."""
    with open(path, "rb") as f:
        f.seek(start)
        if shape == "ndjson":
            yield from _read_ndjson(f, end, first)
        else:
            yield from _read_document_slice(f.read(end - start), first)


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
                record = RecordProblem("InvalidJSON", f"line is not valid JSON: {exc}")
            yield position, record if type(record) is dict else as_record(record)
        position += 1


def _read_document_slice(data: bytes, position: int) -> Iterator[tuple]:
    import orjson

    try:
        values = orjson.loads(b"[" + data + b"]")
    except orjson.JSONDecodeError:
        # orjson is stricter than the scanner (integers beyond 64 bits): use the stdlib.
        values = json.loads(b"[" + data + b"]")
    for offset, value in enumerate(values):
        yield position + offset, as_record(value)


def as_record(value) -> Record:
    if type(value) is dict or type(value) is RecordProblem:
        return value
    kind = "null" if value is None else type(value).__name__
    return RecordProblem("NotAnObject", f"record is {kind}, not a JSON object")
