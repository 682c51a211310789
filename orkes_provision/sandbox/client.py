"""The sandbox's own client: ``OrkesClient`` plus the fault plan, which is no part of the Orkes API.

Tests and benchmarks that inject faults through an authenticated client use this; the production
client knows nothing of the sandbox's test hooks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orkes_provision.orkes.client import OrkesClient

FAULTS_PATH = "/sandbox/faults"


class SandboxClient(OrkesClient):
    """An ``OrkesClient`` that can also fill and clear the sandbox's fault plan (admin only)."""

    def add_fault(self, method: str, path: str, *, count: int = 1, action: str = "status", status: int = 503,
                  retry_after: float | None = None, hang_seconds: float | None = None) -> dict[str, Any]:
        """Make the sandbox fail the next ``count`` requests matching ``method`` and the ``path`` regex."""
        body: dict[str, Any] = {"method": method, "path": path, "count": count, "action": action, "status": status}
        if retry_after is not None:
            body["retryAfter"] = retry_after
        if hang_seconds is not None:
            body["hangSeconds"] = hang_seconds
        where = f"POST {FAULTS_PATH}"
        return self._dict(self._json(self._send("POST", FAULTS_PATH, json=body, safe=False), where), where)

    def add_faults(self, faults: list[Mapping[str, Any]]) -> None:
        """Add several faults, each a dict in the sandbox's wire form (``retryAfter``, ``hangSeconds``)."""
        for fault in faults:
            self._send("POST", FAULTS_PATH, json=dict(fault), safe=False)

    def clear_faults(self) -> None:
        self._send("DELETE", FAULTS_PATH, safe=True)
