"""Where orkes-provision keeps its local files (XDG base directories)."""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var, "").strip()
    return Path(value) if value and os.path.isabs(value) else Path.home() / fallback


def config_dir() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "orkes-provision"


def state_dir() -> Path:
    """Deliveries, rotation progress, audit log, locks: no secrets live here."""
    override = os.environ.get("ORKES_PROVISION_STATE_DIR", "").strip()
    if override:
        return Path(override)
    return _xdg("XDG_STATE_HOME", ".local/state") / "orkes-provision"


def data_dir() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share") / "orkes-provision"
