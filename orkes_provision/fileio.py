"""Small file helpers shared by every writer of local state."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from orkes_provision.credentials.privatefile import write_private_file


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data``, creating its directory: ``mode`` from the first byte, never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_file(path, data, mode=mode)


def append_json_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line; O_APPEND keeps concurrent writers' lines whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default
