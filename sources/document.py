"""Walking a JSON document (a bare array of records, the ``{"results": [...]}`` envelope, or
one object that is one record) in bounded memory, noting each record's byte range for the
chunker; a fast path proves many records at once with one orjson parse
(``DocumentScanner._fast_runs``)."""

import codecs
import itertools
import json
import re
from typing import Optional

from ..errors import InputError
from .common import BLOCK_BYTES, MAX_DOCUMENT_RECORD_BYTES
from .deep import NotJSON, value_end


class DocumentScanner:
    """Walks a JSON document in bounded memory, noting the records' byte offsets.

    The exact path: the stdlib decoder parses one record at a time out of a sliding text
    window (``buf``) that the file is read into 1 MiB at a time. Offsets are kept in bytes
    because that is how a chunk is read back. The fast path (``_fast_runs``) takes many
    records at once out of the same window, as its bytes (``raw``); see there why it gives
    the same plan and the same errors. ``shape`` is "array" or "envelope" when it starts,
    and "object" once an object turned out to be one record (see ``_envelope``).
    """

    def __init__(self, name, f, offset, hasher, chunker, shape, records: Optional[tuple] = None):
        import orjson

        self.name, self.f, self.hasher, self.chunker, self.shape = name, f, hasher, chunker, shape
        self.records = records  # --records: the keys to the list of records, else None
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
        # Top-level members that are lists of objects, (key, length); a file that is one
        # record with exactly one of them: its ``records_under`` (see ``Plan``).
        self.lists: list = []
        self.records_under: Optional[tuple] = None

    @staticmethod
    def _reject_constant(name: str):
        raise ValueError(f"{name} is not valid JSON")

    def scan(self) -> None:
        if self.shape == "array":
            self._expect("[")
            self._records()
        elif self.records:
            self._skip_ws()
            self._expect("{")
            self._at_path(0)
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

        A value nested too deep for the recursive decoder (about 1000 levels) is checked
        without recursion (``deep.value_end``) and returned as None: it is a record problem,
        reported when loaded.
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
                value, end = None, self._deep_value_end()
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

    def _deep_value_end(self) -> Optional[int]:
        try:
            return value_end(self.buf, self.i)
        except NotJSON as exc:
            self._invalid(self._byte_at(exc.pos), exc.reason)

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
        decoder is checked without recursion there, to the same end). Candidates inside a
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
        """An object: the envelope when its "results" member is a list (of duplicate names,
        the last counts, as json.loads keeps the last), else one record. Its members are
        walked in bounded memory either way; records of a "results" list that doesn't count
        are taken back from the chunker."""
        self._skip_ws()
        start = self.byte
        self._expect("{")
        before = self.chunker.mark()
        envelope = False
        for key in self._members():
            if key == "results":
                self.chunker.rewind(before)  # a later "results" replaces an earlier one
                envelope = self._results()
            else:
                self._note_list(key, self._value()[0])
        if not envelope:
            self.chunker.rewind(before)
            self._one_record(start)

    def _at_path(self, depth: int) -> None:
        """Walk the members of the object just opened, whose member ``records[depth]`` leads
        to the records: what is around them is not a record. No such member, or one that is
        not an object (or, at the end, a list): the file is refused, naming the path and the
        keys found where it stopped."""
        want, keys, found = self.records[depth], [], False
        for key in self._members():
            keys.append(key)
            if key == want and not found:
                found = self._follow(depth)
            else:
                self._value()
        if not found:
            self._missing(depth, keys)

    def _members(self):
        """The keys of the object just opened, each yielded with the cursor on its value,
        which the caller walks before taking the next; past the closing brace at the end."""
        self._skip_ws()
        if self._peek() == "}":
            self._advance(1)
            return
        while True:
            key = self._key()
            self._expect(":")
            self._skip_ws()
            yield key
            if not self._next_member():
                return

    def _follow(self, depth: int) -> bool:
        """The member on the path: the records' list at its end, else the next object down."""
        if depth == len(self.records) - 1:
            return self._results()
        if self._peek() != "{":
            self._value()
            return False
        self._advance(1)
        self._at_path(depth + 1)
        return True

    def _missing(self, depth: int, keys: list) -> None:
        path, where = ".".join(self.records), ".".join(self.records[:depth]) or "the top"
        shown = ", ".join(keys[:10]) + (", ..." if len(keys) > 10 else "") if keys else "none"
        self._fail(f"has no list of records at {path} (--records): at {where}, the keys are "
                   f"{shown}")

    def _note_list(self, key: str, value) -> None:
        """A member that is a list of objects: what a one-record object's hint names."""
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            self.lists.append((key, len(value)))

    def _key(self) -> str:
        self._skip_ws()
        ch = self._peek()
        if not ch:
            self._truncated()
        if ch != '"':
            self._invalid(self.byte, "expected a key in double quotes")
        key, _, _ = self._value()
        return key

    def _results(self) -> bool:
        """Walk the value of a "results" member: the records of a list (True), or any other
        value (False)."""
        ch = self._peek()
        if ch != "[":
            if not ch:
                self._truncated()
            self._value()
            return False
        self._advance(1)
        self._records()
        return True

    def _next_member(self) -> bool:
        """Past the comma after a member (True), or past the object's closing brace."""
        self._skip_ws()
        ch = self._peek()
        if ch == "}":
            self._advance(1)
            return False
        if not ch:
            self._truncated()
        if ch != ",":
            self._invalid(self.byte, "expected ',' or '}'")
        self._advance(1)
        return True

    def _one_record(self, start: int) -> None:
        """The object from byte ``start`` to the cursor is the file's one record."""
        if self.byte - start > MAX_DOCUMENT_RECORD_BYTES:
            self._fail(
                f"is one JSON object over {MAX_DOCUMENT_RECORD_BYTES >> 20} MiB, too large for "
                "one record; split it, or give its records as {\"results\": [...]}"
            )
        self.chunker.add(start, self.byte)
        self.shape = "object"
        if len(self.lists) == 1:
            self.records_under = self.lists[0]


# Where one record of an array may end and the next begin; see DocumentScanner._fast_runs.
_BOUNDARY = re.compile(rb"\}[ \t\r\n]*,[ \t\r\n]*\{")
_UTF8_LEADS = bytes(b for b in range(256) if not 0x80 <= b < 0xC0)  # all but continuation bytes
# Candidates a fast run tries, and records left to the exact path after failures in a row;
# see DocumentScanner._fast_runs.
_FIRST_RUN, _MIN_RUN, _MAX_RUN = 64, 16, 1 << 16
_MAX_BACKOFF = 256


def _characters_in(utf8: bytes) -> int:
    """How many characters valid UTF-8 bytes hold: all but the continuation bytes."""
    return len(utf8) - len(utf8.translate(None, _UTF8_LEADS))

