"""Where this tool delivered each application's key: store specs and key ids, never secrets.

Rotation reads this to write the new key everywhere the old one went. File:
``$XDG_STATE_HOME/orkes-provision/deliveries.json``, keyed by server URL then application name.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orkes_provision.fileio import atomic_write, read_json
from orkes_provision.locks import file_lock
from orkes_provision.paths import state_dir


@dataclass(frozen=True)
class Delivery:
    store: str
    key_id: str
    app_id: str
    time: str


def deliveries_path() -> Path:
    return state_dir() / "deliveries.json"


def _load() -> dict[str, dict[str, list[dict[str, Any]]]]:
    data = read_json(deliveries_path(), {})
    return data if isinstance(data, dict) else {}


def deliveries_for(server: str, app: str) -> list[Delivery]:
    rows = _load().get(server, {}).get(app, [])
    return [Delivery(**row) for row in rows]


def record_delivery(server: str, app: str, app_id: str, store: str, key_id: str) -> None:
    """Remember that ``key_id`` now lives in ``store`` (one row per store spec)."""
    with file_lock("deliveries.json", what="the deliveries record"):
        data = _load()
        rows = [r for r in data.setdefault(server, {}).get(app, []) if r.get("store") != store]
        now = datetime.now(UTC).isoformat(timespec="seconds")
        rows.append(asdict(Delivery(store=store, key_id=key_id, app_id=app_id, time=now)))
        data[server][app] = sorted(rows, key=lambda r: str(r["store"]))
        atomic_write(deliveries_path(), json.dumps(data, indent=2, sort_keys=True).encode())


def forget_deliveries(server: str, app: str) -> None:
    with file_lock("deliveries.json", what="the deliveries record"):
        data = _load()
        if data.get(server, {}).pop(app, None) is not None:
            atomic_write(deliveries_path(), json.dumps(data, indent=2, sort_keys=True).encode())
