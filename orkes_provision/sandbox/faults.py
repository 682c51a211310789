"""Fault plan: make the next N matching requests fail, for tests and benchmarks. Admin only.

``POST /api/sandbox/faults`` adds one fault (answer: the fault with its ``id``)::

    {"method": "POST",                  # HTTP method, or "*" / omitted for any
     "path": "^/api/applications$",     # regex, searched in the request path (no query string)
     "count": 1,                        # how many matching requests it applies to (default 1)
     "action": "status",                # "status" | "timeout" | "drop_after_commit"
     "status": 503,                     # for "status" (default 503)
     "retryAfter": 2,                   # seconds, sent as Retry-After with status 429 (default 1)
     "hangSeconds": 30}                 # for "timeout" (default 30)

- ``status``: answer that status with an Orkes-shaped error body, without running the handler
  (nothing changes); a 429 carries ``Retry-After``.
- ``timeout``: hold the request for ``hangSeconds`` without blocking other requests (longer than
  the client's timeout), then drop the connection without an answer. The handler does not run.
- ``drop_after_commit``: run the handler (its change IS committed), then drop the connection with
  no response: the client sees a transport error (httpx ``RemoteProtocolError``/``ReadError``).

``GET /api/sandbox/faults`` lists the pending faults; ``DELETE /api/sandbox/faults`` clears them.
Faults are kept in memory (a restart clears them), are checked in the order they were added,
apply before authentication (so ``/api/token`` can fail too), and never match ``/health`` or
``/api/sandbox/...`` themselves. ``requests.log`` records a faulted request with ``"fault"``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

ACTIONS = ("status", "timeout", "drop_after_commit")


class FaultSpecError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class Fault:
    id: int
    method: str | None
    path: re.Pattern[str]
    remaining: int
    action: str
    status: int
    retry_after: int
    hang_seconds: float

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and self.path.search(path) is not None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "method": self.method or "*", "path": self.path.pattern, "count": self.remaining,
                "action": self.action, "status": self.status, "retryAfter": self.retry_after,
                "hangSeconds": self.hang_seconds}


def exempt(path: str) -> bool:
    return path == "/health" or path.startswith("/api/sandbox/") or path == "/api/sandbox"


class FaultPlan:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, spec: dict[str, Any]) -> Fault:
        fault = Fault(
            id=next(self._ids),
            method=_method(spec.get("method")),
            path=_pattern(spec.get("path")),
            remaining=_int(spec, "count", 1, minimum=1),
            action=_action(spec.get("action", "status")),
            status=_int(spec, "status", 503, minimum=100),
            retry_after=_int(spec, "retryAfter", 1, minimum=0),
            hang_seconds=float(_int(spec, "hangSeconds", 30, minimum=0)),
        )
        if fault.status > 599:
            raise FaultSpecError("status", "status must be an HTTP status code")
        self._faults.append(fault)
        return fault

    def list(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self._faults]

    def clear(self) -> None:
        self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The first fault matching this request, counted as used."""
        if exempt(path):
            return None
        for fault in self._faults:
            if fault.matches(method, path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None


def _method(value: Any) -> str | None:
    if value is None or value == "*":
        return None
    if not isinstance(value, str) or not value.isalpha():
        raise FaultSpecError("method", "method must be an HTTP method or '*'")
    return value.upper()


def _pattern(value: Any) -> re.Pattern[str]:
    if not isinstance(value, str) or not value:
        raise FaultSpecError("path", "path must be a regular expression matched against the request path")
    try:
        return re.compile(value)
    except re.error as err:
        raise FaultSpecError("path", f"path is not a valid regular expression: {err}") from err


def _action(value: Any) -> str:
    if value not in ACTIONS:
        raise FaultSpecError("action", f"action must be one of {', '.join(ACTIONS)}")
    return str(value)


def _int(spec: dict[str, Any], name: str, default: int, *, minimum: int) -> int:
    value = spec.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise FaultSpecError(name, f"{name} must be a number >= {minimum}")
    return int(value)
