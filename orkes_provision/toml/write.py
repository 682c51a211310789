"""TOML as text: writing the environment files ``provision export`` makes, and finding lines in them.

The standard library reads TOML but neither writes it nor says where a value sits. Two small
pieces fill that gap for the shapes environment and project files have:

- ``dumps``: tables of scalars, lists and inline tables, with arrays of tables (``[[tasks]]``,
  ``[[applications.grants]]``) for lists of objects at table level. Deterministic (the caller's key
  order), and checked: what it writes reads back equal with ``tomllib``.
- ``line_index``: the line of every table and key, by the path pydantic and the checks use
  (``applications[2].grants[0].access``), so findings can say ``env.toml:14``.
"""

from __future__ import annotations

import bisect
import functools
import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class NotRepresentable(ValueError):
    """A value TOML cannot hold (``null``), with the path to it."""


def dumps(document: Mapping[str, Any]) -> str:
    """``document`` as TOML text; ``NotRepresentable`` for a ``None`` anywhere in it."""
    lines: list[str] = []
    _table(lines, (), document)
    text = "\n".join(lines).strip("\n") + "\n"
    if tomllib.loads(text) != _plain(document):
        raise AssertionError("the TOML writer lost something; report this")  # pragma: no cover
    return text


def _table(lines: list[str], path: tuple[str, ...], table: Mapping[str, Any]) -> None:
    arrays: list[tuple[str, list[Mapping[str, Any]]]] = []
    for key, value in table.items():
        if _is_table_array(value):
            arrays.append((key, list(value)))
            continue
        lines.append(f"{_key(key)} = {_value(value, (*path, key))}")
    for key, items in arrays:
        header = ".".join(_key(part) for part in (*path, key))
        for item in items:
            lines.append("")
            lines.append(f"[[{header}]]")
            _table(lines, (*path, key), item)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _value(value: Any, path: tuple[str, ...]) -> str:
    if value is None:
        raise NotRepresentable(f"{'.'.join(path)}: null has no TOML form")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            raise NotRepresentable(f"{'.'.join(path)}: NaN is not a usable value")
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_key(str(k))} = {_value(v, (*path, str(k)))}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_value(v, (*path, f"[{i}]")) for i, v in enumerate(value)) + "]"
    raise NotRepresentable(f"{'.'.join(path)}: {type(value).__name__} has no TOML form")


def _string(text: str) -> str:
    # JSON's escapes are all valid in a TOML basic string; DEL is the one control character JSON leaves raw.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ----------------------------------------------------------------------------------------- lines

_HEADER = re.compile(r"^\s*(\[\[?)\s*(?P<name>[^\[\]#]+?)\s*\]\]?\s*(#.*)?$")
_KEY_PART = re.compile(r"""\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*""")


def line_index(text: str) -> dict[str, int]:
    """Where each table and key starts (1-based line), by its path: ``applications[0].grants[1].tasks``.

    Arrays of tables are counted as TOML counts them; a key written twice keeps its first line.
    Values spanning lines (arrays, multi-line strings) are skipped over. Inline tables and arrays of
    inline tables are not looked into: their keys map to the line of the key that holds them.
    """
    index: dict[str, int] = {}
    counts: dict[str, int] = {}
    current = ""
    scanner = _ValueScanner()
    for number, line in enumerate(text.splitlines(), start=1):
        if scanner.open:
            scanner.feed(line)
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        header = _HEADER.match(line)
        if header is not None and stripped.startswith("["):
            parts = _split_key(header["name"])
            if parts is None:
                continue
            parent = _resolve(parts[:-1], counts)
            path = f"{parent}.{parts[-1]}" if parent else parts[-1]
            if stripped.startswith("[["):
                position = counts.get(path, 0)
                counts[path] = position + 1
                path = f"{path}[{position}]"
            current = path
            index.setdefault(current, number)
            continue
        key_text, sep, rest = _split_assignment(line)
        if not sep:
            continue
        parts = _split_key(key_text)
        if parts is None:
            continue
        path = ".".join([current, *parts]) if current else ".".join(parts)
        index.setdefault(path, number)
        scanner.feed(rest)
    return index


class FileLines:
    """The lines of one file's keys and tables, indexed on first use (a file without problems never is)."""

    def __init__(self, text: str) -> None:
        self.text = text

    @functools.cached_property
    def index(self) -> dict[str, int]:
        return line_index(self.text)

    def line(self, loc: Sequence[str | int], value: object = None) -> int | None:
        """The line of the key or table at ``loc`` (``("applications", 2, "grants", 0, "access", 1)``), else of
        the nearest one holding it: a missing key belongs to its table, a key of an inline table is on the
        line of the key holding it, and an element of a list on its key's line, or, given the element's
        ``value`` (a string), on the line of the list that has it. Line 1 for the top-level table."""
        if not self.text:
            return None
        path, found, exact = "", 1, True
        for part in loc:
            path = f"{path}[{part}]" if isinstance(part, int) else (f"{path}.{part}" if path else str(part))
            exact = path in self.index
            if exact:
                found = self.index[path]
        if not exact and isinstance(value, str):
            return self._element_line(found, value)
        return found

    @functools.cached_property
    def _lines(self) -> list[str]:
        return self.text.splitlines()

    @functools.cached_property
    def _starts(self) -> list[int]:
        return sorted(set(self.index.values()))

    def _element_line(self, start: int, value: str) -> int:
        # A list written over several lines: its element is between its key and the next key or table.
        following = bisect.bisect_right(self._starts, start)
        end = self._starts[following] - 1 if following < len(self._starts) else len(self._lines)
        quoted = (json.dumps(value, ensure_ascii=False), f"'{value}'")
        for number in range(start, end + 1):
            if any(q in self._lines[number - 1] for q in quoted):
                return number
        return start


def _resolve(parts: list[str], counts: Mapping[str, int]) -> str:
    """A header's parent path, each array of tables at its latest element (as TOML does)."""
    path = ""
    for part in parts:
        path = f"{path}.{part}" if path else part
        if path in counts:
            path = f"{path}[{counts[path] - 1}]"
    return path


def _split_key(text: str) -> list[str] | None:
    parts: list[str] = []
    rest = text
    while True:
        match = _KEY_PART.match(rest)
        if match is None:
            return None
        parts.append(next(g for g in match.groups() if g is not None))
        rest = rest[match.end():]
        if not rest:
            return parts
        if not rest.startswith("."):
            return None
        rest = rest[1:]


def _split_assignment(line: str) -> tuple[str, str, str]:
    """``key = value`` split at the first ``=`` outside quotes."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
            continue
        if char in "\"'":
            quote = char
        elif char == "=":
            return line[:i], "=", line[i + 1:]
        elif char == "#":
            break
    return line, "", ""


class _ValueScanner:
    """Follows a value over several lines: open brackets and multi-line strings."""

    def __init__(self) -> None:
        self.depth = 0
        self.multiline = ""

    @property
    def open(self) -> bool:
        return self.depth > 0 or bool(self.multiline)

    def feed(self, text: str) -> None:
        i = 0
        quote = ""
        while i < len(text):
            if self.multiline:
                end = text.find(self.multiline, i)
                if end < 0:
                    return
                i = end + 3
                self.multiline = ""
                continue
            char = text[i]
            if quote:
                if char == "\\" and quote == '"':
                    i += 2
                    continue
                if char == quote:
                    quote = ""
            elif text.startswith('"""', i) or text.startswith("'''", i):
                self.multiline = text[i:i + 3]
                i += 3
                continue
            elif char in "\"'":
                quote = char
            elif char in "[{":
                self.depth += 1
            elif char in "]}":
                self.depth = max(0, self.depth - 1)
            elif char == "#":
                return
            i += 1
