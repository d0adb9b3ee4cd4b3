"""Checking a JSON value nested too deep for the recursive parsers (about 1,000 levels), as
strictly as they check the rest: a token at a time with a stack of the open brackets, so
any depth costs memory for the stack only. The scanner meets such values rarely: speed
matters less here than saying exactly what a strict parser says."""

import re
from typing import Optional


class NotJSON(ValueError):
    """Text that no strict parser reads: ``pos`` is where, an index into the text."""

    def __init__(self, pos: int, reason: str):
        super().__init__(reason)
        self.pos, self.reason = pos, reason


# One token after optional JSON whitespace; the group that matched tells its kind. The
# possessive ``++`` and ``*+`` keep a long string that never closes from backtracking.
_TOKEN = re.compile(r'''[ \t\n\r]*+(?:
    ([\[{]) | ([\]}]) | (,) | (:)
  | ("(?:[^"\\\x00-\x1f]++|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*+")
  | (-?(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?(?:[eE][+-]?[0-9]++)?)
  | (true|false|null))''', re.VERBOSE)
_OPEN, _CLOSE, _COMMA, _COLON, _STRING, _NUMBER, _LITERAL = range(1, 8)
# The start of a token that the end of the text may have cut: more text may complete it.
_CUT = re.compile(r'''[ \t\n\r]*+(?:
    "(?:[^"\\\x00-\x1f]++|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*+(?:\\(?:u[0-9a-fA-F]{0,3})?)?
  | -?(?:(?:0|[1-9][0-9]*+)(?:\.[0-9]*+)?(?:[eE][+-]?[0-9]*+)?)?
  | t(?:r(?:u)?)? | f(?:a(?:l(?:s)?)?)? | n(?:u(?:l)?)?)\Z''', re.VERBOSE)
_CLOSES = {"[": "]", "{": "}"}
# What may come next: a value; a key; a value or the close of an empty array; a key or the
# close of an empty object; the colon after a key; a comma or the close after an item.
_VALUE, _KEY, _VALUE_OR_CLOSE, _KEY_OR_CLOSE, _COLON_NEXT, _AFTER_ITEM = range(6)


def value_end(text: str, start: int) -> Optional[int]:
    """Where the array or object at ``text[start]`` ends, checked as RFC 8259 JSON; None if
    ``text`` ends first (it may go on); ``NotJSON`` if it is not JSON."""
    stack: list = []
    state = _VALUE
    pos = start
    while True:
        match = _TOKEN.match(text, pos)
        if match is None:
            if _CUT.match(text, pos):
                return None
            raise NotJSON(_skip_ws(text, pos), "not a JSON token")
        kind, token = match.lastindex, match.group(match.lastindex)
        at, pos = match.start(kind), match.end()
        if kind == _CLOSE:
            if not stack or token != _CLOSES[stack[-1]] or state in (_VALUE, _KEY, _COLON_NEXT):
                raise NotJSON(at, f"unexpected {token!r}")
            stack.pop()
            if not stack:
                return pos
            state = _AFTER_ITEM
        elif kind in (_NUMBER, _LITERAL) and (pos == len(text) or
                                              kind == _NUMBER and _CUT.match(text, at)):
            return None  # a number (1, 1., 1e) or a literal the end of the text may have cut
        else:
            state = _next_state(kind, state, stack, at, token)


def _next_state(kind: int, state: int, stack: list, at: int, token: str) -> int:
    """The state after a token other than a closing bracket (the stack grows at an opening)."""
    if kind == _OPEN and state in (_VALUE, _VALUE_OR_CLOSE):
        stack.append(token)
        return _KEY_OR_CLOSE if token == "{" else _VALUE_OR_CLOSE
    if kind == _COMMA and state == _AFTER_ITEM:
        return _KEY if stack[-1] == "{" else _VALUE
    if kind == _COLON and state == _COLON_NEXT:
        return _VALUE
    if kind == _STRING and state in (_KEY, _KEY_OR_CLOSE):
        return _COLON_NEXT
    if kind in (_STRING, _NUMBER, _LITERAL) and state in (_VALUE, _VALUE_OR_CLOSE):
        return _AFTER_ITEM
    raise NotJSON(at, f"unexpected {token[:20]!r}")


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\n\r":
        pos += 1
    return pos
