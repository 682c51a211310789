"""Counts of inputs tried by the fuzzing tests, printed with the fault matrix at the end of the run."""

from __future__ import annotations

import threading
from collections import Counter

COUNTS: Counter[str] = Counter()
_LOCK = threading.Lock()


def count(what: str, n: int = 1) -> None:
    with _LOCK:
        COUNTS[what] += n


def render() -> str:
    return "\n".join(f"{what}: {n}" for what, n in sorted(COUNTS.items()))
