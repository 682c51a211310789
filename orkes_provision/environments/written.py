"""The files ``export`` wrote on this machine, so that it replaces only those.

``export`` writes workflow files beside the environment file (``./workflows/`` without ``-o``), where
a project may already keep its own, hand-written definitions. A file is export's to replace when it
does not exist, already holds what export would write, or still holds what export last wrote there
(its SHA-256 is in the record). Anything else was written or edited by someone else: replacing it
needs ``--force``. The record (``exported.json`` in the state directory) holds paths and digests only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from orkes_provision.fileio import atomic_write, read_json
from orkes_provision.locks import file_lock
from orkes_provision.paths import state_dir

_RECORD = "exported.json"
_WHAT = "the record of exported files"


def _record_path() -> Path:
    return state_dir() / _RECORD


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load() -> dict[str, str]:
    try:
        data = read_json(_record_path(), {})
    except ValueError:
        return {}  # unreadable: nothing is known to be export's, which only makes export more careful
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _current(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def written_by_export(path: Path) -> bool:
    """Does ``path`` still hold what export last wrote there on this machine?"""
    current = _current(path)
    return current is not None and _load().get(str(path.resolve())) == _digest(current)


def not_ours(targets: Mapping[Path, tuple[bytes | None, bytes]]) -> list[Path]:
    """The files of ``targets`` (path: (what it holds now or ``None``, what export would write)) that
    exist, would change, and were not written by export."""
    record = _load()
    foreign = []
    for path, (current, data) in targets.items():
        if current is None or current == data:
            continue
        if record.get(str(path.resolve())) != _digest(current):
            foreign.append(path)
    return foreign


def remember(written: Iterable[tuple[Path, bytes]]) -> None:
    """Record what export just wrote, by path and digest."""
    with file_lock(_RECORD, what=_WHAT):
        record = _load()
        for path, data in written:
            record[str(path.resolve())] = _digest(data)
        atomic_write(_record_path(), json.dumps(record, indent=2, sort_keys=True).encode())
