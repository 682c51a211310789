"""What this machine has seen a server do, so that the tool takes the way that works there.

Some behaviours are not stated by any Orkes source and differ between servers (docs/reliability.md,
UNCONFIRMED): whether a WORKER key may search tasks, how many keys an application may hold, the shape
of tag-derived grants. ``provision probe`` records what it observed, and commands record what they
run into (a 403 on search), in ``<state dir>/servers.json``: ``{server: {fact: {value, time, source}}}``.

The file holds no secret, but it steers the tool, so it is read only when it is the caller's own (or
root's), not group- or world-writable and not a link; otherwise it is ignored, as if nothing were
known (every fact has a safe default: try, and learn).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

from orkes_provision.fileio import atomic_write
from orkes_provision.orkes.urls import normalize_server_url
from orkes_provision.paths import state_dir

# Facts the tool acts on. Values are short words, so that the file reads as a report.
WORKER_TASK_SEARCH = "workerTaskSearch"  # "allowed" | "refused"
MAX_KEYS_PER_APP = "maxKeysPerApplication"  # a number, or "none-seen"
TAG_GRANT_SHAPE = "tagGrantShape"  # "per-resource" | "tag-target"


def servers_path() -> Path:
    return state_dir() / "servers.json"


def _key(server: str) -> str:
    try:
        return normalize_server_url(server, insecure_http=True)
    except Exception:  # a server the caller could not have used: stored as given
        return server.rstrip("/")


def _trusted_text(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if (not stat.S_ISREG(info.st_mode) or info.st_uid not in (os.geteuid(), 0)
                or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read(1_000_000).decode("utf-8", "replace")
    finally:
        os.close(fd)


def _load() -> dict[str, dict[str, dict[str, Any]]]:
    text = _trusted_text(servers_path())
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def facts(server: str) -> dict[str, str]:
    """Every fact recorded for ``server``: name -> value."""
    entries = _load().get(_key(server), {})
    return {name: str(entry.get("value")) for name, entry in entries.items() if isinstance(entry, dict)}


def lookup(server: str, fact: str) -> str | None:
    return facts(server).get(fact)


def record(server: str, fact: str, value: str, *, source: str) -> None:
    """Remember that ``server`` showed ``fact`` = ``value`` (``source``: who saw it, e.g. ``probe``)."""
    data = _load()
    entry = {"value": value, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": source}
    data.setdefault(_key(server), {})[fact] = entry
    with contextlib.suppress(OSError):  # advisory: a read-only state dir costs a request next time
        atomic_write(servers_path(), json.dumps(data, indent=2, sort_keys=True).encode())
