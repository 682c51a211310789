"""The fault matrix: which faults are injected, how a cell's outcome is recorded, and the printed table.

A cell is one write step of one flow (``provision app``, ``apply``, ``keys rotate``) with one fault
injected once on that step's request by the sandbox's fault plan. ``RESULTS`` collects the outcome
of every cell run in this session; ``tests/reliability/conftest.py`` prints it as a table at the end
of the test run (whatever ``-s`` says), and docs/reliability.md shows the same table.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from orkes_provision.errors import ProvisionError
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.orkes.ratelimit import AdaptiveLimiter, RateLimitObserver
from orkes_provision.orkes.retry import RetryPolicy
from orkes_provision.sandbox.harness import SandboxProcess

# The client gives up on a request after this long; the "timeout" fault holds it longer.
FAULT_CLIENT_TIMEOUT = 0.75
RETRY_AFTER = 1

# Column name -> the sandbox fault plan entry (see orkes_provision/sandbox/faults.py). "timeout"
# holds the request without running it, then drops the connection; with no hold at all that is a
# connection reset before the server did anything; "drop_after_commit" runs the change, then drops.
FAULTS: dict[str, dict[str, Any]] = {
    "500": {"action": "status", "status": 500},
    "503": {"action": "status", "status": 503},
    "429 Retry-After": {"action": "status", "status": 429, "retry_after": RETRY_AFTER},
    "timeout": {"action": "timeout", "hang_seconds": 2},
    "connection reset": {"action": "timeout", "hang_seconds": 0},
    "lost after commit": {"action": "drop_after_commit"},
}


@dataclass(frozen=True)
class Step:
    """A write step: the request the fault is put on (method and a regex on the path)."""

    name: str
    method: str
    path: str


@dataclass
class Cell:
    flow: str
    step: str
    fault: str
    outcome: str = "FAILED"  # until the cell's checks pass

    @property
    def passed(self) -> bool:
        return self.outcome != "FAILED"


RESULTS: list[Cell] = []
_LOCK = threading.Lock()


def start_cell(flow: str, step: str, fault: str) -> Cell:
    cell = Cell(flow, step, fault)
    with _LOCK:
        RESULTS.append(cell)
    return cell


def describe_error(err: ProvisionError) -> str:
    """``exit N (kind)``; for a partial failure, the kind of the first failed change."""
    from orkes_provision.access.execute import PartialFailure

    kind = err.kind
    if isinstance(err, PartialFailure) and err.result.failed and err.result.failed[0].error is not None:
        kind = err.result.failed[0].error.kind
    return f"exit {err.exit_code} ({kind})"


@dataclass
class MatrixClients:
    """Admin clients shared by the cells of a module (each new client would mint a token: ~0.1 s).

    ``fault`` runs the faulted step: a short timeout, quick back-off, sleeps recorded in ``sleeps``
    rather than slept, and 429s reported to ``observer.limiter`` (set a fresh limiter per cell), as
    'provision apply' does. ``steady`` reruns and checks: default timeout and retry rules.
    """

    fault: OrkesClient
    steady: OrkesClient
    sleeps: list[float]
    observer: RateLimitObserver

    def next_cell(self) -> AdaptiveLimiter:
        self.sleeps.clear()
        self.observer.limiter = AdaptiveLimiter(4)
        return self.observer.limiter

    def close(self) -> None:
        self.fault.close()
        self.steady.close()


def matrix_clients(sandbox: SandboxProcess) -> MatrixClients:
    sleeps: list[float] = []
    observer = RateLimitObserver(AdaptiveLimiter(4))
    fault = OrkesClient(admin_credentials(sandbox), timeout=FAULT_CLIENT_TIMEOUT,
                        retry_policy=RetryPolicy(base=0.01, cap=0.05), sleep=sleeps.append, transport=observer)
    return MatrixClients(fault=fault, steady=steady_client(sandbox), sleeps=sleeps, observer=observer)


def steady_client(sandbox: SandboxProcess) -> OrkesClient:
    """The client reruns and checks use: default timeout and retry rules, short back-off."""
    return OrkesClient(admin_credentials(sandbox), timeout=10.0, retry_policy=RetryPolicy(base=0.01, cap=0.05))


def admin_credentials(sandbox: SandboxProcess) -> Credentials:
    return Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret)


def inject(sandbox: SandboxProcess, step: Step, fault: str) -> None:
    sandbox.add_fault(step.method, step.path, count=1, **FAULTS[fault])


def render(cells: list[Cell]) -> str:
    """A Markdown table: one row per flow and step, one column per fault."""
    faults = list(FAULTS)
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for cell in cells:
        rows.setdefault((cell.flow, cell.step), {})[cell.fault] = cell.outcome
    header = ["flow", "write step", *faults]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for (flow, step), outcomes in rows.items():
        lines.append("| " + " | ".join([flow, step, *(outcomes.get(f, "-") for f in faults)]) + " |")
    retried = sum(1 for c in cells if c.outcome.startswith("retried"))
    failed = sum(1 for c in cells if not c.passed)
    lines.append("")
    lines.append(f"{len(cells)} cells: {retried} succeeded through retries, {len(cells) - retried - failed} "
                 f"ended with a clear error and converged on the rerun, {failed} failed.")
    return "\n".join(lines)
