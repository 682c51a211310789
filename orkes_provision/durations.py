"""Durations as people write them: 90s, 15m, 2h, 7d, 500ms, or combined (1h30m).

The one parser behind every duration option of the CLI (``--grace``, ``--switch-wait``,
``--timeout``, ``--token-ttl``, ``--since``). A bare number counts as seconds, as ``sleep 15`` does, for a
wait; an age or a lifetime (``--older-than``, ``--max-key-age``, ``keyMaxAge``, ``--grace``, ``--token-ttl``)
needs its unit: ``--older-than 30`` meant 30 days to the person who wrote it, and rotated every key.
"""

from __future__ import annotations

import re
from datetime import timedelta

from orkes_provision.errors import UsageError

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|[smhd])")
_BARE = re.compile(r"\d+(?:\.\d+)?")
_UNITS = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
EXAMPLES = "0s, 90s, 15m, 2h or 1h30m"


def parse_duration(text: str, *, unit_for_bare: str | None = None) -> timedelta:
    """``text`` as a duration; with ``unit_for_bare`` a bare number is refused, suggesting that unit."""
    value = text.strip().lower().replace(" ", "")
    if _BARE.fullmatch(value):
        if unit_for_bare is not None and float(value) != 0:  # nothing is ambiguous about 0
            raise UsageError(f"'{text.strip()}' has no unit", f"did you mean {value}{unit_for_bare}?")
        return timedelta(seconds=float(value))
    parts = _PART.findall(value)
    if not value or "".join(n + u for n, u in parts) != value:
        raise UsageError(f"'{text}' is not a duration", f"write it like {EXAMPLES}")
    total = timedelta()
    for number, unit in parts:
        total += timedelta(**{_UNITS[unit]: float(number)})
    return total


def format_duration(value: timedelta) -> str:
    """The shortest way to write ``value`` that ``parse_duration`` reads back (for defaults in --help)."""
    millis = round(value.total_seconds() * 1000)
    if millis % 1000:
        return f"{millis}ms"
    seconds = millis // 1000
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out or "0s"
