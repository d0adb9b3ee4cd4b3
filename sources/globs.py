"""Which names are data files, and what a glob matches: shared by local folders and globs
(``plan``) and S3 prefixes and globs (``s3``), so both take the same files.

``glob_regex`` turns a pattern's ``/``-separated parts into a regular expression for a
path relative to the pattern's fixed root: ``*``, ``?`` and ``[...]`` (``[!...]`` negated)
stay within one component, ``**`` is any depth, and a component matches a name starting
with ``.`` only when the pattern's component starts with ``.`` itself.
"""

import re

DATA_SUFFIXES = (".json", ".ndjson", ".jsonl")


def is_data_file(name: str) -> bool:
    base = name[:-3] if name.lower().endswith(".gz") else name
    return base.lower().endswith(DATA_SUFFIXES)


def has_magic(spec: str) -> bool:
    return any(c in spec for c in "*?[")


def glob_regex(parts: list) -> str:
    regex = ""
    for number, part in enumerate(parts):
        last = number == len(parts) - 1
        if part == "**":
            regex += "(?:[^/]+/)*" if not last else ".*"
            continue
        regex += _component_regex(part) + ("" if last else "/")
    return regex


def _component_regex(part: str) -> str:
    out, i = "" if part.startswith(".") else "(?!\\.)", 0
    while i < len(part):
        c = part[i]
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[" and part.find("]", i + 2) > 0:
            end = part.find("]", i + 2)
            body = part[i + 1:end]
            out += "[" + ("^" + body[1:] if body.startswith("!") else body) + "]"
            i = end
        else:
            out += re.escape(c)
        i += 1
    return out
