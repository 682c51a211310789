"""Where orkes-provision keeps its local files (XDG base directories)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from orkes_provision import trust


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var, "").strip()
    return Path(value) if value and os.path.isabs(value) else Path.home() / fallback


def state_dir() -> Path:
    """Deliveries, rotation progress, audit log, locks: no secrets live here."""
    env = os.environ
    return _state_dir(env.get("ORKES_PROVISION_STATE_DIR", ""), env.get("XDG_STATE_HOME", ""), env.get("HOME", ""))


@functools.lru_cache(maxsize=8)
def _state_dir(override: str, xdg_state_home: str, home: str) -> Path:
    # Every audit line and lock asks (thousands in an apply); the answer changes only with these variables.
    # Made 0700 on first use and refused when another user owns it or can write to it (trust.py): the
    # deliveries, intents, rotation records, locks and audit log in it are trusted for what they say.
    path = Path(override.strip()) if override.strip() else _xdg("XDG_STATE_HOME", ".local/state") / "orkes-provision"
    return trust.private_directory(path)


def data_dir() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share") / "orkes-provision"
