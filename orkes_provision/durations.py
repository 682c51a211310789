"""Durations as people write them: 90s, 15m, 2h, 7d, or combined (1h30m)."""

from __future__ import annotations

import re
from datetime import timedelta

from orkes_provision.errors import UsageError

_PART = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    value = text.strip().lower()
    parts = _PART.findall(value)
    if not value or "".join(n + u for n, u in parts) != value:
        raise UsageError(f"'{text}' is not a duration", "write it like 0s, 90s, 15m, 2h or 1h30m")
    total = timedelta()
    for number, unit in parts:
        total += timedelta(**{_UNITS[unit]: int(number)})
    return total
