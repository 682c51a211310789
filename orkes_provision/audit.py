"""The audit log: one JSON line per provisioning or rotation action, never a secret.

File: ``$XDG_STATE_HOME/orkes-provision/audit.log`` (override the directory with
``ORKES_PROVISION_STATE_DIR``). Fields: time (UTC ISO 8601), actor (the provisioning key id),
server, action, target, result, plus optional app and keyId.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orkes_provision import trust
from orkes_provision.errors import ProvisionError
from orkes_provision.fileio import append_json_line
from orkes_provision.paths import state_dir


def audit_path() -> Path:
    return state_dir() / "audit.log"


def record(*, action: str, target: str, result: str, server: str, actor: str | None,
           app: str | None = None, key_id: str | None = None) -> None:
    entry: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "actor": actor, "server": server, "action": action, "target": target, "result": result,
    }
    if app is not None:
        entry["app"] = app
    if key_id is not None:
        entry["keyId"] = key_id
    append_json_line(audit_path(), entry)


@contextlib.contextmanager
def recorded(*, action: str, target: str, server: str, actor: str | None, app: str | None = None,
             key_id: str | None = None) -> Iterator[None]:
    """Record ``action`` as ``ok`` when the block completes, as ``failed`` when it raises a ProvisionError."""
    try:
        yield
    except ProvisionError:
        record(action=action, target=target, result="failed", server=server, actor=actor, app=app, key_id=key_id)
        raise
    record(action=action, target=target, result="ok", server=server, actor=actor, app=app, key_id=key_id)


def read(since: datetime | None = None) -> Iterator[dict[str, Any]]:
    try:
        raw = trust.read_trusted(audit_path())
    except FileNotFoundError:
        return
    if raw is None:
        return
    lines = raw.decode("utf-8", errors="replace").splitlines()
    for line in lines:
        try:
            entry = json.loads(line)
            when = datetime.fromisoformat(entry["time"])
        except (json.JSONDecodeError, TypeError, KeyError, ValueError):
            continue  # a torn or foreign line (a crash, a hand edit): skip it rather than fail the listing
        if not isinstance(entry, dict) or not isinstance(entry.get("action"), str):
            continue
        if since is not None and (when.tzinfo is None or when < since):
            continue
        yield entry
