"""A compiled walk for the common shape of a chunk's records: the typed load's hot path.

Records of one dataset mostly share one shape: the same keys, nested the same way, with
values of the same types. Once ``Rows`` has walked a few records and knows where each field's
values go, ``compile_shape`` writes a Python function for that shape (one line per field:
``v = r['email']``, a type check, ``row[7] = v``) that places a record's values about three
times faster than the general walk. It places a record only if it has exactly that shape
(the same keys at every level, and answers False for any other, which
the general walk then places. A value of another type than the field's usual one, or one
its column can't hold, is placed by the general walk's own ``place``: so the result never
depends on which path a record took.

The function's text is made only of the record's keys as Python literals (``repr``), column
indexes and names of this module's making; it runs in a namespace of its own.
"""

from typing import Callable, Optional

from .types import BIGINT, DOUBLE, EXACT_IN_DOUBLE, INT64, TEXT, TIMESTAMP, is_timestamp

_INDENT = "    "


class _Writer:
    """The lines of a compiled walk, and the values they refer to by name."""

    def __init__(self, copy: bool, misfit, place: Callable):
        self.copy, self.lines, self.names = copy, [], {"MISFIT": misfit, "place": place}
        self.count = 0

    def name(self, value) -> str:
        self.count += 1
        name = f"_{self.count}"
        self.names[name] = value
        return name

    def emit(self, depth: int, text: str) -> None:
        self.lines.append(_INDENT * depth + text)


def compile_shape(record: dict, fields: dict, copy: bool, misfit,
                  place: Callable) -> Optional[Callable]:
    """``walk(record, row) -> bool`` for records with the keys of ``record``; ``fields`` is the
    ``Rows`` cache (``_Field`` by key, with ``children``), ``place(field, type, value, row)``
    the general walk's placing of one value. None when some field was never met."""
    out = _Writer(copy, misfit, place)
    out.emit(0, "def walk(r, row):")
    out.emit(1, "try:")
    if not _emit_object(out, record, fields, "r", 2):
        return None
    out.emit(2, "return True")
    out.emit(1, "except KeyError:")
    out.emit(2, "return False")
    namespace = dict(out.names)
    exec(compile("\n".join(out.lines), "<compiled record shape>", "exec"), namespace)  # noqa: S102
    return namespace["walk"]


def _emit_object(out: _Writer, record: dict, fields: dict, var: str, depth: int) -> bool:
    out.emit(depth, f"if len({var}) != {len(record)}: return False")
    for key, value in record.items():
        field = fields.get(key)
        if field is None:
            return False
        item = f"{var}[{key!r}]"
        if type(value) is dict:
            child = f"d{depth}_{out.count}"
            out.count += 1
            out.emit(depth, f"{child} = {item}")
            out.emit(depth, f"if type({child}) is not dict: return False")
            if not _emit_object(out, value, field.children, child, depth):
                return False
        elif not field.key:  # the key is written from the key, not from the record
            _emit_value(out, field, item, depth)
    return True


def _emit_value(out: _Writer, field, item: str, depth: int) -> None:
    """A leaf: its usual type written inline, any other type (or a value its column can't
    hold) placed by the general walk, null left null."""
    me = out.name(field)
    out.emit(depth, f"v = {item}")
    out.emit(depth, "t = type(v)")
    if field.kind is None:  # only nulls so far
        out.emit(depth, f"if v is not None: place({me}, t, v, row)")
        return
    kind, index = field.kind, field.index
    column_type = field.types[kind]
    out.emit(depth, f"if t is {out.name(kind)}:")
    inner = depth + 1
    if kind is int and column_type in (BIGINT, DOUBLE):
        low, high = INT64 if column_type == BIGINT else (-EXACT_IN_DOUBLE, EXACT_IN_DOUBLE)
        out.emit(inner, f"if {low} <= v <= {high}: row[{index}] = {_plain(out, field, column_type)}")
        out.emit(inner, f"else: place({me}, t, v, row)")
    elif kind is str and column_type == TEXT and out.copy:
        escape = out.name(field.plain[kind])
        # isprintable is False for tab, newline and carriage return: one pass for the common
        # case (the escape writer changes nothing else, so a false alarm costs only a call).
        out.emit(inner, f"row[{index}] = v if v.isprintable() and '\\\\' not in v "
                        f"else {escape}(v)")
    elif kind is str and column_type == TEXT:
        out.emit(inner, f"row[{index}] = v")
    elif kind is str and column_type == TIMESTAMP:  # written as it is, once it is one
        out.emit(inner, f"if {out.name(is_timestamp)}(v): row[{index}] = v")
        out.emit(inner, f"else: place({me}, t, v, row)")
    else:  # the cached writer checks what the type does not settle
        out.emit(inner, f"w = {out.name(field.writer)}(v)")
        out.emit(inner, f"if w is MISFIT: place({me}, t, v, row)")
        out.emit(inner, f"else: row[{index}] = w")
    out.emit(depth, f"elif v is not None: place({me}, t, v, row)")


def _plain(out: _Writer, field, column_type: str) -> str:
    """The unchecked writer of an integer already known to fit."""
    if not out.copy and column_type == BIGINT:
        return "v"
    return f"{out.name(field.plain[int])}(v)"
