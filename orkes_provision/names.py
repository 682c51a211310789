"""The one check for every name a user gives: applications, tasks, workflows, environments, tags,
groups, users, workers, key ids.

Names end up in env files (a header comment), in URLs, in messages on a terminal and in files that
other tools parse line by line. A control character or anything ``str.splitlines()`` breaks on
(``\\n \\r \\v \\f \\x1c \\x1d \\x1e \\x85 U+2028 U+2029``) could start a new line there, e.g. an
``LD_PRELOAD=`` assignment that bash and python-dotenv load, and the bidirectional controls make
a name read differently than it is. None of these has a use in a name, so they are refused, once,
before any request. Kept dependency-free: the CLI's argument types import it at start-up.
"""

from __future__ import annotations

import unicodedata

from orkes_provision.errors import UsageError

# Bidirectional embedding, override and isolate controls, and the marks: "Trojan Source" characters.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Zero-width no-break space (byte order mark): invisible, and some tools strip it from a line.
_INVISIBLE = frozenset("\ufeff")


def forbidden_character(value: str) -> str | None:
    """The first character a name may not hold, or ``None``."""
    for ch in value:
        if ch in _BIDI or ch in _INVISIBLE or unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs"):
            return ch
    return None


def describe_character(ch: str) -> str:
    """``U+2028 (LINE SEPARATOR)``: the code point, and its name where Unicode gives one."""
    name = unicodedata.name(ch, "")
    if not name and ch in _C0_NAMES:
        name = _C0_NAMES[ch]
    return f"U+{ord(ch):04X}" + (f" ({name})" if name else "")


def check_name(value: str, what: str = "name") -> str:
    """``value`` stripped of surrounding white space; ``UsageError`` naming the offending code point."""
    bad = forbidden_character(value)
    if bad is not None:
        raise UsageError(f"the {what} contains {describe_character(bad)}, a control or line-separator character",
                         f"give the {what} without control characters; names are plain text on one line")
    stripped = value.strip()
    if not stripped:
        raise UsageError(f"the {what} is blank", f"give a {what}")
    return stripped


_C0_NAMES = {"\n": "LINE FEED", "\r": "CARRIAGE RETURN", "\t": "TAB", "\v": "LINE TABULATION",
             "\f": "FORM FEED", "\x00": "NUL", "\x1b": "ESCAPE", "\x1c": "FILE SEPARATOR",
             "\x1d": "GROUP SEPARATOR", "\x1e": "RECORD SEPARATOR", "\x7f": "DELETE",
             "\x85": "NEXT LINE"}
