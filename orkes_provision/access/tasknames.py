"""Task names the server does not know: which of them are typos of a registered task, and the error that says so.

A grant on a task that does not exist protects nothing and hides a typo. When the name is close to a
registered one (``greetngs`` for ``greetings``, ``Ship`` for ``ship``) the user meant that task:
the answer is "did you mean", never "register it" (``--register-tasks`` would register the typo).
"""

from __future__ import annotations

from collections.abc import Iterable

from orkes_provision.errors import NotFound
from orkes_provision.names import closest

__all__ = ["UnknownTasks", "check_tasks_exist", "closest"]


class UnknownTasks(NotFound):
    """Task definitions the server lacks. ``near`` maps each name that is a near miss to the registered
    name meant; ``unmatched`` are the others, which registering would fix. When every name is a near
    miss, ``corrections`` (read by the CLI) turns the command line into the one meant."""

    def __init__(self, missing: Iterable[str], known: Iterable[str], *, outcome: str = "",
                 register_hint: str = "register them first, or add --register-tasks to register a minimal "
                                      "definition") -> None:
        known = set(known)
        self.missing = list(dict.fromkeys(missing))
        self.near = {m: c for m in self.missing if (c := closest(m, known)) is not None}
        self.unmatched = [m for m in self.missing if m not in self.near]
        shown = ", ".join(f"{m} (did you mean {self.near[m]}?)" if m in self.near else m for m in self.missing)
        plural = "s" if len(self.missing) > 1 else ""
        message = f"task definition{plural} not found on the server: {shown}" + (f"; {outcome}" if outcome else "")
        if self.unmatched:
            hint = register_hint
        else:
            hint = "use the registered name" + ("s" if len(self.near) > 1 else "") + ": " + ", ".join(
                sorted(set(self.near.values())))
        super().__init__(message, hint)
        if not self.unmatched:
            self.corrections = dict(self.near)


def check_tasks_exist(wanted: Iterable[str], known: Iterable[str], *, outcome: str = "",
                      register_hint: str | None = None) -> None:
    """Raise ``UnknownTasks`` for the names of ``wanted`` not in ``known``."""
    known = set(known)
    missing = [t for t in wanted if t not in known]
    if missing:
        raise (UnknownTasks(missing, known, outcome=outcome) if register_hint is None else
               UnknownTasks(missing, known, outcome=outcome, register_hint=register_hint))
