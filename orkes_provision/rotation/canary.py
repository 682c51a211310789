"""The canary's proof: the workers of a rotated application run on its new key.

``keys rotate --all --canary N`` rotates N applications first and goes on only when each has
workers on this machine that report running the new key, and no other: the supervisors of
``provision run --supervise`` / ``worker run`` (``workers.status``) and the credential agents
(``agent.registry``). An application with no reporting worker proves nothing, so it fails the canary
rather than passing it by default; so does an agent that refused the new key.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from orkes_provision.agent.registry import serving_agents
from orkes_provision.errors import VerificationFailed
from orkes_provision.progress import waiting
from orkes_provision.workers.status import supervised_workers

_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Reporter:
    """A local process that says which key an application's workers use."""

    what: str  # "supervisor pid 123" / "agent pid 456"
    keys: frozenset[str]
    refused: str | None = None


def reporters(server: str, app: str) -> list[Reporter]:
    found = [Reporter(f"supervisor pid {s.supervisor_pid}", frozenset(s.keys_in_use))
             for s in supervised_workers(server, app)]
    found += [Reporter(f"agent pid {a.pid} ({a.url})", frozenset(a.keys_in_use), a.refused_key_id)
              for a in serving_agents(server, app)]
    return found


def wait_on_new_key(server: str, app: str, new_key_id: str, wait_seconds: float, *,
                    sleep: Callable[[float], None] = time.sleep) -> list[Reporter]:
    """Wait up to ``wait_seconds`` until every local worker of ``app`` reports ``new_key_id`` alone.

    Returns the reporters; ``VerificationFailed`` when none reports, one refused the key, or one
    still runs another key when the time is up.
    """
    deadline = time.monotonic() + wait_seconds
    slept = 0.0
    while True:
        found = reporters(server, app)
        refused = next((r for r in found if r.refused == new_key_id), None)
        if refused is not None:
            raise VerificationFailed(f"canary {app}: the {refused.what} refused the new key {new_key_id}",
                                     "see the agent's output; the remaining applications were not rotated")
        if found and all(r.keys == {new_key_id} for r in found):
            return found
        remaining = min(deadline - time.monotonic(), wait_seconds - slept)
        if remaining <= 0:
            break
        lagging = [r for r in found if r.keys != {new_key_id}]
        waiting(f"canary {app}: waiting for its workers to run key {new_key_id} "
                f"({len(found) - len(lagging)} of {len(found)} reporting it)", topic="canary",
                remaining=int(remaining) + 1)
        step = min(_POLL_SECONDS, remaining)
        sleep(step)
        slept += step
    if not found:
        raise VerificationFailed(
            f"canary {app}: no supervised worker or agent of {app} on this machine reports its key, so nothing "
            f"shows that its workers run on the new key {new_key_id}",
            "run the canary's workers here ('provision run --supervise', 'provision worker run' or an agent), or "
            "choose canaries that have them (name them first); the remaining applications were not rotated")
    behind = next(r for r in found if r.keys != {new_key_id})
    raise VerificationFailed(
        f"canary {app}: the {behind.what} still runs key {', '.join(sorted(behind.keys - {new_key_id})) or '?'} "
        f"after {wait_seconds:g}s, not only the new key {new_key_id}",
        "see that supervisor's output (does the new worker start?); the remaining applications were not rotated")
