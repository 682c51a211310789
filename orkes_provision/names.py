"""The one check for every name a user gives: applications, tasks, workflows, environments, tags,
groups, users, workers, key ids.

Names end up in env files (a header comment), in URLs, in messages on a terminal and in files that
other tools parse line by line. A control character or anything ``str.splitlines()`` breaks on
(``\\n \\r \\v \\f \\x1c \\x1d \\x1e \\x85 U+2028 U+2029``) could start a new line there, e.g. an
``LD_PRELOAD=`` assignment that bash and python-dotenv load, and the bidirectional controls make
a name read differently than it is. Unicode's default-ignorable code points (zero-width space and
joiners, soft hyphen, variation selectors, tag characters, Hangul fillers) are invisible: ``w1`` and
``w1<U+200B>`` would be two applications that print alike. None of these has a use in a name, so
they are refused, once, before any request. Names already on a server that look alike (the same
``skeleton``: NFKC, ignorables dropped) are warned about where they are listed.
Kept dependency-free: the CLI's argument types import it at start-up.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable

from orkes_provision.errors import UsageError

# Bidirectional embedding, override and isolate controls, and the marks: "Trojan Source" characters.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Zero-width no-break space (byte order mark): invisible, and some tools strip it from a line.
_INVISIBLE = frozenset("\ufeff")


# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties.txt), as inclusive ranges.
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)


def default_ignorable(ch: str) -> bool:
    code = ord(ch)
    return any(low <= code <= high for low, high in _DEFAULT_IGNORABLE)


def forbidden_character(value: str) -> str | None:
    """The first character a name may not hold, or ``None``."""
    for ch in value:
        if (ch in _BIDI or ch in _INVISIBLE or unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs")
                or default_ignorable(ch)):
            return ch
    return None


def skeleton(name: str) -> str:
    """What ``name`` looks like: NFKC, without default-ignorable code points. Two names with one
    skeleton (``w1``, ``w1<U+200B>``, fullwidth ``w<U+FF11>``) are confusable."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", name) if not default_ignorable(ch)).strip()


def visible(name: str) -> str:
    """``name`` with its invisible and non-ASCII look-alike characters spelled out (``w1\\u200b``)."""
    return "".join(ch if ch.isascii() and ch.isprintable() else f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF
                   else f"\\U{ord(ch):08x}" for ch in name)


def confusable_groups(names: list[str]) -> list[list[str]]:
    """The sets of two or more distinct names that share a skeleton, each sorted, in name order."""
    by_skeleton: dict[str, set[str]] = {}
    for name in names:
        by_skeleton.setdefault(skeleton(name), set()).add(name)
    return sorted(sorted(group) for group in by_skeleton.values() if len(group) > 1)


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
        kind = "an invisible (default-ignorable)" if default_ignorable(bad) and bad not in _BIDI else \
            "a control or line-separator"
        raise UsageError(f"the {what} contains {describe_character(bad)}, {kind} character",
                         f"give the {what} without control characters; names are plain text on one line")
    stripped = value.strip()
    if not stripped:
        raise UsageError(f"the {what} is blank", f"give a {what}")
    return stripped


_C0_NAMES = {"\n": "LINE FEED", "\r": "CARRIAGE RETURN", "\t": "TAB", "\v": "LINE TABULATION",
             "\f": "FORM FEED", "\x00": "NUL", "\x1b": "ESCAPE", "\x1c": "FILE SEPARATOR",
             "\x1d": "GROUP SEPARATOR", "\x1e": "RECORD SEPARATOR", "\x7f": "DELETE",
             "\x85": "NEXT LINE"}


def closest(word: str, known: Iterable[str], *, cutoff: float = 0.75, typos_only: bool = False) -> str | None:
    """The name of ``known`` that ``word`` most likely meant: the same but for case, else the closest one.

    difflib's ratio: 'greetngs'/'greetings' is 0.94, 'shipp'/'ship' 0.89; unrelated names stay below 0.75.
    Names that share a long part (e-mail addresses of one domain: 'cy@example.com'/'bob@example.com' is
    0.9) need ``typos_only``: the guess must then be a typo away, at most one edit (a letter added,
    dropped, changed, or two swapped) in five letters.
    """
    names = sorted(set(known))
    same_case = [n for n in names if n.lower() == word.lower()]
    if same_case:
        return same_case[0]
    close = difflib.get_close_matches(word, names, n=len(names) or 1, cutoff=cutoff)
    if typos_only:
        close = [c for c in close if _edits(word.lower(), c.lower()) <= max(1, len(word) // 5)]
    return close[0] if close else None


def _edits(a: str, b: str) -> int:
    """Insertions, deletions, substitutions and swaps of neighbours turning ``a`` into ``b``."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]
