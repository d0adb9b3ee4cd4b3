"""Validating a dataset file and cutting it into chunks of byte ranges.

A dataset is one file in one of three shapes, detected from its first bytes:

- NDJSON: one JSON value per line (blank lines skipped);
- a bare JSON array of records;
- the randomuser.me envelope ``{"results": [...], "info": {...}}``.

A gzip-compressed file (told by its magic bytes, whatever its name) is first decompressed
into the spool directory, and that copy is what gets scanned and read.

``scan`` reads the file once, in bounded memory: it checks the whole file is readable
(so a broken file writes nothing), fingerprints it, counts the records and cuts them into
chunks of byte ranges. ``read_chunk`` later reads one chunk back from its range, so a chunk
workflow's inputs hold offsets, never records.
"""

import codecs
import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from typing import BinaryIO, Optional

from ..contract import fingerprint_of
from ..errors import InputError
from .common import (BLOCK_BYTES, EXPECTED, MAX_DOCUMENT_RECORD_BYTES, iter_lines, json_type,
                     open_input, value_end)
from .spool import remove_quietly, readable_copy

BOM = codecs.BOM_UTF8
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
FORMATS = ("json", "ndjson")


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

    def add(self, start: int, end: int, count: int = 1) -> None:
        """Add ``count`` consecutive records spanning bytes ``start..end``; ``count`` must be
        at most ``room()``, so a chunk's end is always the end of a record that was added."""
        if self._start is None:
            self._start, self._first, self._count = start, self.records, 0
        self._end = end
        self._count += count
        self.records += count
        if self._count == self.chunk_size:
            self.close()

    def room(self) -> int:
        """How many more records the chunk being filled takes."""
        return self.chunk_size - (0 if self._start is None else self._count)

    def close(self) -> None:
        if self._start is not None:
            self.chunks.append((self._start, self._end, self._first, self._count))
            self._start = None


def scan(path: str, chunk_size: int, fmt: Optional[str] = None, label: str = "",
         name: Optional[str] = None) -> Plan:
    """Read the dataset once: validate, fingerprint and cut it into chunks.

    A gzip file is decompressed into the spool first; the plan then points at that copy.
    Messages call the file ``name`` (say, "stdin" for a spooled copy of it), else ``path``.
    """
    name = name or path
    copy, decompressed = readable_copy(path, name)
    if not decompressed:
        return _scan_file(path, name, chunk_size, fmt, label)
    try:
        return _scan_file(copy, f"{name} (decompressed)", chunk_size, fmt, label)
    except InputError:
        remove_quietly(copy)  # its content can never load: don't keep it in the spool
        raise


def _scan_file(path: str, name: str, chunk_size: int, fmt: Optional[str], label: str) -> Plan:
    """Scan the file at ``path``; messages call it ``name`` (what the user passed)."""
    with open_input(path) as f:
        head = f.read(BLOCK_BYTES)
        size = os.fstat(f.fileno()).st_size
        body_start = len(BOM) if head.startswith(BOM) else 0
        if head.startswith(UTF16_BOMS):
            raise InputError(f"{name}: is UTF-16 encoded; re-encode it as UTF-8 (iconv -f UTF-16 -t UTF-8)")
        if not head[body_start:].strip():
            what = "is empty" if size == 0 else "holds only whitespace"
            raise InputError(f"{name}: {what}; nothing to load, check that it is the right file")
        shape = _detect_shape(name, head, body_start, fmt)
        f.seek(body_start)
        hasher = hashlib.sha256()
        chunker = _Chunker(chunk_size)
        if shape == "ndjson":
            _scan_ndjson(name, f, body_start, hasher, chunker)
        else:
            _DocumentScanner(name, f, body_start, hasher, chunker, shape).scan()
        chunker.close()
    return Plan(
        path=os.path.abspath(path),
        shape=shape,
        fingerprint=fingerprint_of(hasher.hexdigest(), label),
        size=size,
        records=chunker.records,
        chunks=chunker.chunks,
    )


def _detect_shape(name: str, head: bytes, body_start: int, fmt: Optional[str]) -> str:
    """NDJSON when the first line is a whole JSON value and more follows; else a document.

    A file starting with '[' is always an array: a one-line array is more likely than NDJSON
    whose first record is not an object.
    """
    body = head[body_start:].lstrip()
    first = body[:1]
    if fmt == "ndjson":
        return "ndjson"
    if first == b"[":
        return "array"
    if fmt != "json" and _first_line_is_a_value(body):
        return "ndjson"
    if first == b"{":
        return "envelope"
    raise _not_a_dataset(name, head, body)


def _first_line_is_a_value(body: bytes) -> bool:
    line, newline, rest = body.partition(b"\n")
    if not (newline and rest.strip()):
        return False
    try:
        json.loads(line.decode("utf-8"))
        return True
    except (ValueError, RecursionError):  # too deep to tell: treat it as a document
        return False


def _not_a_dataset(name: str, head: bytes, body: bytes) -> InputError:
    if len(head) < BLOCK_BYTES:  # the whole file is in ``body``: is it one JSON value?
        try:
            value = json.loads(body.decode("utf-8"))
            return InputError(f"{name}: holds a single JSON {json_type(value)}, not records; {EXPECTED}")
        except ValueError:
            pass
    return InputError(f"{name}: is not valid JSON (it starts with {body[:20]!r}); {EXPECTED}")


def _scan_ndjson(name: str, f: BinaryIO, offset: int, hasher, chunker: _Chunker) -> None:
    for line_number, (start, end, line) in enumerate(iter_lines(f, offset, hasher=hasher), 1):
        if line is None:
            chunker.add(start, end)  # too large: reported as a record error when loaded
        elif line.strip():
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{name}: line {line_number} is not valid UTF-8 (byte {start + exc.start}); "
                    "re-encode the file as UTF-8 (iconv -t UTF-8)"
                ) from None
            chunker.add(start, end)


class _DocumentScanner:
    """Walks a JSON document in bounded memory, noting the records' byte offsets.

    The exact path: the stdlib decoder parses one record at a time out of a sliding text
    window (``buf``) that the file is read into 1 MiB at a time. Offsets are kept in bytes
    because that is how a chunk is read back. The fast path (``_fast_runs``) takes many
    records at once out of the same window, as its bytes (``raw``); see there why it gives
    the same plan and the same errors.
    """

    def __init__(self, name, f, offset, hasher, chunker, shape):
        import orjson

        self.name, self.f, self.hasher, self.chunker, self.shape = name, f, hasher, chunker, shape
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.json = json.JSONDecoder(parse_constant=self._reject_constant)
        self.orjson = orjson
        self.buf = ""
        self.raw = b""  # the bytes of the window: from at most buf[i] up to read_to
        self.i = 0  # index into buf
        self.byte = offset  # file offset of buf[i]
        self.read_to = offset  # file offset of the next block
        self.eof = False
        # The fast path's state (see _fast_runs): candidates to try in the next run; records
        # the exact path takes before the next try, and after the next failure.
        self.run_hint = _FIRST_RUN
        self.exact_records = 0
        self.backoff = 1
        self.exact_until = None  # read_to when no boundary was left: exact until a read

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
            self._fail(
                f"has more data after the JSON document, at byte {self.byte}; remove it, or "
                "pass --format ndjson if the file holds one record per line"
            )

    # -- reading ------------------------------------------------------------------------
    def _fill(self) -> bool:
        if self.eof:
            return False
        block = self.f.read(BLOCK_BYTES)
        self.hasher.update(block)
        pending = self.decoder.getstate()[0]  # bytes of a character cut by the last block
        try:
            text = self.decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{self.name}: is not valid UTF-8 at byte {self.read_to - len(pending) + exc.start}; "
                "re-encode the file as UTF-8 (iconv -t UTF-8)"
            ) from None
        self.raw = self.raw[self.byte - self._raw_start():] + block
        self.read_to += len(block)
        if not block:
            self.eof = True
        self.buf = self.buf[self.i:] + text
        self.i = 0
        return True

    def _raw_start(self) -> int:
        """The file offset of raw[0]."""
        return self.read_to - len(self.raw)

    def _more(self) -> bool:
        """Read on into a value that spans the window's end; False at the end of the file."""
        if len(self.buf) - self.i > MAX_DOCUMENT_RECORD_BYTES:
            self._fail(
                f"has a record over {MAX_DOCUMENT_RECORD_BYTES >> 20} MiB near byte {self.byte}; "
                "split it, or convert the file to NDJSON"
            )
        return self._fill()

    def _peek(self) -> str:
        while self.i >= len(self.buf):
            if not self._fill():
                return ""
        return self.buf[self.i]

    def _advance(self, chars: int) -> None:
        self.byte += len(self.buf[self.i:self.i + chars].encode("utf-8"))
        self.i += chars

    def _byte_at(self, index: int) -> int:
        return self.byte + len(self.buf[self.i:index].encode("utf-8"))

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
        if not got:
            self._truncated()
        if got != ch:
            self._invalid(self.byte, f"expected '{ch}' but found {got!r}")
        self._advance(1)

    def _value(self):
        """Decode the value at the cursor; returns (value, start byte, end byte).

        A value nested too deep for the recursive decoder (about 1000 levels) is only
        delimited, and returned as None: it is a record problem, reported when loaded.
        """
        while True:
            try:
                value, end = self.json.raw_decode(self.buf, self.i)
            except json.JSONDecodeError as exc:
                cut = self._cut_short(exc)
                if cut and self._more():
                    continue
                if cut:
                    self._truncated()
                self._invalid(self._byte_at(exc.pos), exc.msg)
            except RecursionError:
                value, end = None, value_end(self.buf, self.i)
                if end is None:
                    if self._more():
                        continue
                    self._truncated()
            except ValueError as exc:
                self._invalid(self.byte, str(exc))
            if end == len(self.buf) and not self.eof and self._fill():
                continue  # a number at the window's edge may go on in the next block
            start = self.byte
            self._advance(end - self.i)
            return value, start, self.byte

    def _cut_short(self, exc: json.JSONDecodeError) -> bool:
        """Whether the text may just end too soon, inside a value (``tru``, ``-``, ``"\\u00``):
        nothing but a few characters of that value follow the error."""
        if exc.msg.startswith("Unterminated string"):
            return True
        tail = self.buf[exc.pos:].rstrip()
        return len(tail) < 16 and not any(c in tail for c in ',:[]{}"')

    def _fail(self, what: str):
        raise InputError(f"{self.name}: {what}")

    def _invalid(self, byte: int, reason: str):
        self._fail(
            f"is not valid JSON at byte {byte} ({reason}); fix the file there, or pass "
            "--format ndjson if it holds one record per line"
        )

    def _truncated(self):
        self._fail(
            f"ends in the middle of the JSON document (at byte {self.read_to}); the file "
            "looks truncated: copy or download it again"
        )

    # -- structure ----------------------------------------------------------------------
    def _records(self) -> None:
        self._skip_ws()
        if self._peek() == "]":
            self._advance(1)
            return
        while True:
            self._skip_ws()
            self._fast_runs()
            _, start, end = self._value()
            self.chunker.add(start, end)
            self._skip_ws()
            ch = self._peek()
            if ch == "]":
                self._advance(1)
                return
            if not ch:
                self._truncated()
            if ch != ",":
                self._invalid(self.byte, f"expected ',' or ']' after record {self.chunker.records - 1}")
            self._advance(1)

    def _fast_runs(self) -> None:
        """Add the records from the cursor on in runs, each proven with one orjson parse, for
        as long as that works; the exact path then takes the next record.

        Why a run is exactly what the exact path would find: the cursor is where a record
        starts. A candidate boundary (``_BOUNDARY``) is ``}``, JSON whitespace, ``,``, JSON
        whitespace, ``{``. Take the bytes from the cursor to a candidate's ``}``: if
        ``b"[" + those + b"]"`` parses, into n values, then the candidate is a real boundary
        between records: had it been inside a string, the slice would end in a string; had
        it been inside a record's nested value, a bracket would be left open; either way the
        parse fails. The n values are the records the exact path would find there, with
        the same extents: the bytes after each value are the same in the file as in the
        slice, but for the last, which ends with the candidate's ``}`` and so is a whole
        object; and orjson accepts no text that the stdlib decoder refuses (it is the
        stricter one: 64-bit numbers at most, no lone surrogates, no NaN, at most 1024
        levels, the same four whitespace characters; a record too deep for the stdlib
        decoder is delimited by its brackets there, to the same end). Candidates inside a
        run that were not boundaries only mean n is smaller than the number of candidates:
        n is counted, never assumed. So a run adds the same records and byte range, and
        chunks are cut after the same records, since a run never goes past a chunk's end.

        Runs never read the file: the window, the hash and the decoder stay where the exact
        path would have them, so every error, every size limit and every record cut by the
        window's end is the exact path's, and memory stays one 1 MiB window whatever the
        chunk size. A failed attempt costs a parse, so ``run_hint`` (how many candidates to
        try) doubles after a run and shrinks after a failure, and failures in a row leave
        1, 2, 4... records to the exact path before the next try: text where most candidates
        are false (records holding arrays of objects) costs little more than the exact path.
        """
        if self.exact_records:
            self.exact_records -= 1
            return
        if self.read_to == self.exact_until:
            return
        start = self.byte
        while self._fast_run():
            pass
        base = self._raw_start()
        self.i += _characters_in(self.raw[start - base:self.byte - base])
        if self.read_to == self.exact_until:
            # The exact path reads on from here: drop the text before the cursor, through
            # which its parse errors would count lines.
            self.buf, self.i = self.buf[self.i:], 0

    def _fast_run(self) -> bool:
        """Add one run of records from ``self.byte`` (``self.i`` lags behind); False if none."""
        base = self._raw_start()
        at = self.byte - base
        want = min(self.run_hint, self.chunker.room())
        cuts = list(itertools.islice(_BOUNDARY.finditer(self.raw, at), want))
        if not cuts:  # no boundary before the window's end: the exact path reads on
            self.exact_until = self.read_to
            return False
        run = self._parse_run(at, cuts)
        if run is None:
            self.run_hint = max(_MIN_RUN, self.run_hint // 4)
            # The exact path takes the next record now, and more after failures in a row.
            self.exact_records, self.backoff = self.backoff - 1, min(self.backoff * 2, _MAX_BACKOFF)
            return False
        count, cut = run
        self.run_hint = min(self.run_hint * 2, _MAX_RUN)
        self.backoff = 1
        self.chunker.add(self.byte, base + cut.start() + 1, count)
        self.byte = base + cut.end() - 1  # the "{" of the next record
        return True

    def _parse_run(self, at: int, cuts: list) -> Optional[tuple]:
        """(record count, candidate) of a run from ``raw[at]`` to the last candidate, or to
        the last one before the text orjson refused there; None if neither parses."""
        window = memoryview(self.raw)
        for _ in range(2):
            cut = cuts[-1]
            try:
                count = len(self.orjson.loads(b"".join((b"[", window[at:cut.start() + 1], b"]"))))
            except self.orjson.JSONDecodeError as exc:
                # The text before the error parsed, so a run may end there (exc.pos counts
                # characters, never more than bytes: a safe bound).
                error = at - 1 + exc.pos
                cuts = [c for c in cuts[:-1] if c.start() < error]
                if not cuts:
                    return None
                continue
            # Non-object records between the candidates may make more than the chunk takes.
            return (count, cut) if count <= self.chunker.room() else None
        return None

    def _envelope(self) -> None:
        self._expect("{")
        found = False
        self._skip_ws()
        if self._peek() == "}":
            self._advance(1)
        else:
            while True:
                self._skip_ws()
                ch = self._peek()
                if not ch:
                    self._truncated()
                if ch != '"':
                    self._invalid(self.byte, "expected a key in double quotes")
                key, _, _ = self._value()
                self._expect(":")
                self._skip_ws()
                if key == "results" and not found:
                    found = True
                    ch = self._peek()
                    if ch != "[":
                        if not ch:
                            self._truncated()
                        value, _, _ = self._value()
                        what = "null" if value is None else _a(json_type(value))
                        self._fail(
                            f"has 'results' that is {what}, not a list of records; "
                            'expected {"results": [...]}'
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
                if not ch:
                    self._truncated()
                if ch != ",":
                    self._invalid(self.byte, "expected ',' or '}'")
                self._advance(1)
        if not found:
            self._fail(
                "is a JSON object without a 'results' list; expected {\"results\": [...]}, "
                "an array of records, or NDJSON (--format ndjson)"
            )


# Where one record of an array may end and the next begin; see _DocumentScanner._fast_runs.
_BOUNDARY = re.compile(rb"\}[ \t\r\n]*,[ \t\r\n]*\{")
_UTF8_LEADS = bytes(b for b in range(256) if not 0x80 <= b < 0xC0)  # all but continuation bytes
# Candidates a fast run tries, and records left to the exact path after failures in a row;
# see _DocumentScanner._fast_runs.
_FIRST_RUN, _MIN_RUN, _MAX_RUN = 64, 16, 1 << 16
_MAX_BACKOFF = 256


def _characters_in(utf8: bytes) -> int:
    """How many characters valid UTF-8 bytes hold: all but the continuation bytes."""
    return len(utf8) - len(utf8.translate(None, _UTF8_LEADS))


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun
