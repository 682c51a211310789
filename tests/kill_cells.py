"""The kill tests' table: one cell per point a command was SIGKILLed at, and what one rerun left.

``record`` adds a cell; the root conftest prints ``render(CELLS)`` at the end of the run (whatever
``-s`` says), as the fault matrix does (tests/reliability/matrix.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

CELLS: list[KillCell] = []
_LOCK = threading.Lock()


@dataclass
class KillCell:
    command: str
    killed_at: str
    rerun: str = "-"
    active_keys: str = "-"
    stores: str = "-"
    authenticates: str = "-"
    outcome: str = "FAILED"  # until the cell's checks pass


def record(command: str, killed_at: str) -> KillCell:
    cell = KillCell(command, killed_at)
    with _LOCK:
        CELLS.append(cell)
    return cell


def render(cells: list[KillCell]) -> str:
    header = ["command", "SIGKILL at", "rerun", "ACTIVE keys", "stores hold it", "authenticates", "result"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for c in cells:
        lines.append("| " + " | ".join([c.command, c.killed_at, c.rerun, c.active_keys, c.stores, c.authenticates,
                                        c.outcome]) + " |")
    failed = sum(1 for c in cells if c.outcome != "ok")
    lines += ["", f"{len(cells)} cells: {len(cells) - failed} converged on one rerun, {failed} failed."]
    return "\n".join(lines)
