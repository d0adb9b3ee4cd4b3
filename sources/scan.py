"""Validating a dataset file and cutting it into chunks of byte ranges.

A dataset is one file in one of four shapes, detected from its first bytes:

- NDJSON: one JSON value per line (blank lines, of JSON whitespace only, skipped);
- a bare JSON array of records;
- the randomuser.me envelope ``{"results": [...], "info": {...}}``: an object whose
  "results" is a list;
- any other object: one record ("object").

A gzip-compressed file (told by its magic bytes, whatever its name) is first decompressed
into the spool directory, and that copy is what gets scanned and read.

``scan`` reads the file once, in bounded memory: it checks the whole file is readable
(so a broken file writes nothing), fingerprints it, counts the records and cuts them into
chunks of byte ranges. ``read_chunk`` later reads one chunk back from its range, so a chunk
workflow's inputs hold offsets, never records.
"""

import codecs
import json
import os
import shlex
from dataclasses import dataclass, field
from typing import BinaryIO, Optional

from ..contract import fingerprint_of
from ..errors import InputError
from .common import BLOCK_BYTES, EXPECTED, is_blank, iter_lines, json_type, open_input
from .content import ContentHasher
from .document import DocumentScanner
from .spool import remove_quietly, readable_copy

BOM = codecs.BOM_UTF8
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
FORMATS = ("json", "ndjson")
# A JSON document whose records are the list at a dotted path (``--records data.rows``) has
# the format ``json:data.rows``: it travels wherever a format does (the plan, a run's job).
RECORDS_PREFIX = "json:"


def records_format(path: str) -> str:
    """The format of documents whose records are at ``path``; ``UsageError`` if it is no
    dotted path of keys."""
    from ..errors import UsageError

    if not path or any(not key for key in path.split(".")):
        raise UsageError(f"--records {path!r}: give a dotted path of keys to the list of "
                         "records, e.g. data or response.docs")
    return RECORDS_PREFIX + path


def records_path(fmt: Optional[str]) -> Optional[tuple]:
    """The keys to the records of a ``records_format`` (None for any other format)."""
    if fmt and fmt.startswith(RECORDS_PREFIX):
        return tuple(fmt[len(RECORDS_PREFIX):].split("."))
    return None


@dataclass
class Plan:
    """What ``scan`` learnt of a dataset: enough to load it chunk by chunk."""

    path: str
    shape: str  # "ndjson", "array", "envelope" or "object"
    fingerprint: str
    size: int
    records: int = 0
    # (start byte, end byte, first position, record count) per chunk
    chunks: list = field(default_factory=list)
    covered: Optional[int] = None  # where the fingerprinted bytes end (see sources.content)
    held_back: int = 0  # an unfinished last line, not loaded (1) or none (0)
    # A scan of a tail (``Tail``): the fingerprint of the bytes before ``tail.start`` and
    # how many records they hold (the chunks only have the records after them).
    prefix: Optional[str] = None
    prefix_records: int = 0
    tail_start: Optional[int] = None
    # One object loaded as one record whose only list of objects is under a key: (key,
    # length), for the hint that says so (records are read from "results" only).
    records_under: Optional[tuple] = None


@dataclass(frozen=True)
class Tail:
    """Where the bytes of a file loaded before ended (``start``) and how many records they
    held (``records``): a scan that is told it fingerprints the bytes before ``start`` on the
    way (only hashed: if they are unchanged, so is their count) and chunks the records after
    it, at positions from ``records``."""

    start: int
    records: int


class _Chunker:
    """Cuts a stream of records, given by byte offsets, into chunks of ``chunk_size``."""

    def __init__(self, chunk_size: int):
        self.chunk_size = chunk_size
        self.skipped = 0  # records of a tail's prefix: counted, not chunked (see Tail)
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

    def mark(self) -> tuple:
        """Where the chunker is, for ``rewind``."""
        return (len(self.chunks), self.records, self.skipped, self._start, self._end,
                self._first, self._count)

    def rewind(self, mark: tuple) -> None:
        """Take back every record added since ``mark``."""
        closed, self.records, self.skipped, self._start, self._end, self._first, self._count = mark
        del self.chunks[closed:]

    def room(self) -> int:
        """How many more records the chunk being filled takes."""
        return self.chunk_size - (0 if self._start is None else self._count)

    def close(self) -> None:
        if self._start is not None:
            self.chunks.append((self._start, self._end, self._first, self._count))
            self._start = None


def scan(path: str, chunk_size: int, fmt: Optional[str] = None, label: str = "",
         name: Optional[str] = None, tail: Optional[Tail] = None) -> Plan:
    """Read the dataset once: validate, fingerprint and cut it into chunks.

    A gzip file is decompressed into the spool first; the plan then points at that copy.
    Messages call the file ``name`` (say, "stdin" for a spooled copy of it), else ``path``.
    """
    name = name or path
    copy, decompressed = readable_copy(path, name)
    if not decompressed:
        return _scan_file(path, name, chunk_size, fmt, label, tail)
    try:
        return _scan_file(copy, f"{name}{DECOMPRESSED}", chunk_size, fmt, label, tail)
    except InputError:
        remove_quietly(copy)  # its content can never load: don't keep it in the spool
        raise


def _scan_file(path: str, name: str, chunk_size: int, fmt: Optional[str], label: str,
               tail: Optional[Tail] = None) -> Plan:
    """Scan the file at ``path``; messages call it ``name`` (what the user passed). A tail
    that can't be read as one (the file was rewritten: its lines start elsewhere) is read
    again whole, which says what is wrong with it, if anything."""
    if tail is not None:
        try:
            return _scan_opened(path, name, chunk_size, fmt, label, tail)
        except InputError:
            pass
    return _scan_opened(path, name, chunk_size, fmt, label, None)


def _scan_opened(path: str, name: str, chunk_size: int, fmt: Optional[str], label: str,
                 tail: Optional[Tail]) -> Plan:
    with open_input(path) as f:
        size = os.fstat(f.fileno()).st_size
        return scan_stream(f, name, chunk_size, fmt, label, os.path.abspath(path), size, tail)


def scan_stream(f: BinaryIO, name: str, chunk_size: int, fmt: Optional[str], label: str,
                path: str, size: Optional[int] = None, tail: Optional[Tail] = None) -> Plan:
    """Scan a dataset from the binary stream ``f`` (a file, or an object's body as it
    downloads): read once, front to back, but for one seek back within its first block
    (past a byte-order mark). ``size``: its bytes, or None for as many as were read."""
    head = f.read(BLOCK_BYTES)
    body_start = len(BOM) if head.startswith(BOM) else 0
    if head.startswith(UTF16_BOMS):
        raise InputError(f"{name}: is UTF-16 encoded; re-encode it as UTF-8 (iconv -f UTF-16 -t UTF-8)")
    if not head[body_start:].strip():
        what = "is empty" if not head else "holds only whitespace"
        raise InputError(f"{name}: {what}; nothing to load, check that it is the right file")
    shape = detect_shape(name, head, body_start, fmt)
    f.seek(body_start)
    tail = tail if shape == "ndjson" else None  # a document that grew is another document
    hasher = ContentHasher(body_start, shape == "ndjson", tail.start if tail else None)
    chunker, records_under = _Chunker(chunk_size), None
    if shape == "ndjson":
        offset = body_start
        if tail is not None:
            offset = _hash_prefix(f, body_start, tail.start, hasher)
            chunker.records = chunker.skipped = tail.records
        _scan_ndjson(name, f, offset, hasher, chunker)
    else:
        scanner = DocumentScanner(name, f, body_start, hasher, chunker, shape,
                                  records_path(fmt))
        scanner.scan()
        shape, records_under = scanner.shape, scanner.records_under
        hasher.finish()
    chunker.close()
    prefix = fingerprint_of(hasher.snapshot, label) if hasher.snapshot is not None else None
    return Plan(
        path=path,
        shape=shape,
        fingerprint=fingerprint_of(hasher.finish(), label),
        size=f.tell() if size is None else size,
        records=chunker.records - chunker.skipped,
        chunks=chunker.chunks,
        covered=hasher.covered,
        held_back=hasher.held_back,
        prefix=prefix,
        prefix_records=chunker.skipped,
        tail_start=tail.start if tail else None,
        records_under=records_under if shape == "object" else None,
    )


def detect_shape(name: str, head: bytes, body_start: int, fmt: Optional[str]) -> str:
    """NDJSON when the first line is a whole JSON value and more follows; else a document.

    A file starting with '[' is always an array: a one-line array is more likely than NDJSON
    whose first record is not an object.
    """
    body = head[body_start:].lstrip()
    first = body[:1]
    if fmt == "ndjson":
        return "ndjson"
    path = records_path(fmt)
    if path is not None:
        if first != b"{":
            raise InputError(f"{name}: --records {'.'.join(path)} reads an object's list of "
                             "records, and this is not a JSON object")
        return "envelope"
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
    file, gzipped = name.removesuffix(DECOMPRESSED), name.endswith(DECOMPRESSED)
    separator = _csv_separator(file, body)
    if separator:
        return _looks_like_csv(name, file, gzipped, separator)
    if len(head) < BLOCK_BYTES:  # the whole file is in ``body``: is it one JSON value?
        try:
            value = json.loads(body.decode("utf-8"))
            return InputError(f"{name}: holds a single JSON {json_type(value)}, not records; {EXPECTED}")
        except ValueError:
            pass
    return InputError(f"{name}: is not valid JSON (it starts with {body[:20]!r}); {EXPECTED}")


CSV_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
DECOMPRESSED = " (decompressed)"  # what a gzip file's name is scanned as


def _looks_like_csv(name: str, file: str, gzipped: bool, separator: bytes) -> InputError:
    """One line: ingest reads no CSV, and a command that turns this one into NDJSON."""
    kind, delimiter = ("TSV", ', delimiter="\\t"') if separator == b"\t" else ("CSV", "")
    local = file if "://" not in file and file not in ("-", "stdin") else f"FILE.{kind.lower()}"
    stem = os.path.basename(local).split(".")[0] or "records"
    script = ("python3 -c 'import csv, json, sys; [print(json.dumps(r)) for r in "
              f"csv.DictReader(sys.stdin{delimiter})]'")
    command = f"gzip -dc {shlex.quote(local)} | {script}" if gzipped \
        else f"{script} < {shlex.quote(local)}"
    return InputError(f"{name}: looks like {kind}, which ingest does not read; convert it to "
                      f"NDJSON (e.g. {command} > {shlex.quote(stem + '.ndjson')}) and load that")


def _csv_separator(name: str, body: bytes) -> bytes:
    """The separator of what looks like CSV (b"," or b"\\t"; b"" if it does not): a file
    named .csv or .tsv, or whose first line (no JSON) splits into fields on one of them."""
    line = body.partition(b"\n")[0].rstrip(b"\r")
    tabbed = b"\t" if line.count(b"\t") > line.count(b",") else b","
    if name.lower().endswith(CSV_SUFFIXES):
        return b"\t" if name.lower().endswith((".tsv", ".tsv.gz")) else tabbed
    fields = line.split(tabbed)
    return tabbed if len(fields) > 1 and all(f.strip() for f in fields[:2]) else b""


def _hash_prefix(f: BinaryIO, offset: int, end: int, hasher: ContentHasher) -> int:
    """Feed the bytes up to ``end`` to the hasher as they are (no lines); where it stopped."""
    while offset < end and (block := f.read(min(BLOCK_BYTES * 4, end - offset))):
        hasher.update(block)
        offset += len(block)
    return offset


def _scan_ndjson(name: str, f: BinaryIO, offset: int, hasher: ContentHasher,
                 chunker: _Chunker) -> None:
    """Chunk the lines; an unfinished last line (see ``sources.content``) is taken back once
    the hasher says so, and its bytes are not checked (a writer may be mid-character)."""
    bad_utf8: Optional[InputError] = None
    last_start, mark = None, None
    for line_number, (start, end, line) in enumerate(iter_lines(f, offset, hasher=hasher), 1):
        if bad_utf8 is not None:
            raise bad_utf8  # it was not the last line
        if line is not None and is_blank(line):
            continue
        if line is not None:
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad_utf8 = InputError(
                    f"{name}: line {line_number} is not valid UTF-8 (byte {start + exc.start}); "
                    "re-encode the file as UTF-8 (iconv -t UTF-8)")
        last_start, mark = start, chunker.mark()
        chunker.add(start, end)  # too large (None): reported as a record error when loaded
    hasher.finish()
    if last_start is not None and last_start >= hasher.covered:
        chunker.rewind(mark)  # held back
    elif bad_utf8 is not None:
        raise bad_utf8
