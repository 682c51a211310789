"""What rotation remembers between runs: its progress, and since when keys are INACTIVE.

Both files live in ``state_dir()`` and hold key ids, store specs and times, never a secret:
the new secret, once created, lives only in the credential stores it was written to.

- ``rotations/<hash>.json``: one pending rotation of one application on one server. It is
  written atomically after every step, so a run killed at any point finds where it stopped.
- ``inactive-keys.json``: ``{server: {appId: {keyId: time}}}``, the time each INACTIVE key was
  deactivated by this tool, or first seen INACTIVE. Orkes keeps no "deactivated at" time, and the
  grace period before deletion is counted from it.

Test hook: with ``ORKES_PROVISION_TEST_STOP_AFTER=<point>`` in the environment, the process kills
itself with SIGKILL right after the progress of that step is on disk (see ``STEPS``), or at
``store-write``: right after a store was written, before that is recorded (``KILL_POINTS``). Kill
tests use it; nothing else should.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orkes_provision.fileio import read_json, write_state
from orkes_provision.locks import file_lock
from orkes_provision.paths import state_dir

# The steps in order; the progress file names the last one completed.
#   planned      old keys and target stores are known, nothing changed yet
#   creating     the create request is about to be sent (a key unknown at "planned" may exist)
#   created      the new key exists; its id is recorded (the secret is only in memory)
#   store        one more store holds the new key (``storesDone`` says which)
#   stored       every target store holds the new key
#   verified     the new key authenticates and has the WORKER role and its EXECUTE grants
#   switched     stores' after-rotation hooks ran and supervised workers had time to switch
#   deactivated  every old key is INACTIVE
STEPS: tuple[str, ...] = ("planned", "creating", "created", "store", "stored", "verified", "switched",
                          "deactivated")
# Every point a kill test stops a rotation at: each step boundary, and inside the store step.
KILL_POINTS: tuple[str, ...] = ("planned", "creating", "created", "store-write", "store", "stored", "verified",
                                "switched", "deactivated")
STOP_AFTER_VARIABLE = "ORKES_PROVISION_TEST_STOP_AFTER"
FORMAT_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds")


@dataclass
class RotationProgress:
    """A rotation under way. Lists keep the order in which things were done."""

    server: str
    app: str
    app_id: str
    step: str
    started_at: str
    known_key_ids: list[str]
    old_key_ids: list[str]
    stores: list[str]
    stores_done: list[str] = field(default_factory=list)
    new_key_id: str | None = None
    deactivated: list[str] = field(default_factory=list)

    def reached(self, step: str) -> bool:
        """True when ``step`` (or a later one) is done."""
        return STEPS.index(self.step) >= STEPS.index(step)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {"version": FORMAT_VERSION, "server": data["server"], "app": data["app"], "appId": data["app_id"],
                "step": data["step"], "startedAt": data["started_at"], "knownKeyIds": data["known_key_ids"],
                "oldKeyIds": data["old_key_ids"], "stores": data["stores"], "storesDone": data["stores_done"],
                "newKeyId": data["new_key_id"], "deactivated": data["deactivated"]}

    @classmethod
    def from_json(cls, data: Any) -> RotationProgress | None:
        """The progress in ``data``, or ``None`` when it is not a progress file this version wrote."""
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION or data.get("step") not in STEPS:
            return None
        try:
            return cls(server=str(data["server"]), app=str(data["app"]), app_id=str(data["appId"]),
                       step=str(data["step"]), started_at=str(data["startedAt"]),
                       known_key_ids=[str(k) for k in data["knownKeyIds"]],
                       old_key_ids=[str(k) for k in data["oldKeyIds"]], stores=[str(s) for s in data["stores"]],
                       stores_done=[str(s) for s in data.get("storesDone", [])],
                       new_key_id=None if data.get("newKeyId") is None else str(data["newKeyId"]),
                       deactivated=[str(k) for k in data.get("deactivated", [])])
        except (KeyError, TypeError):
            return None


def progress_path(server: str, app: str) -> Path:
    # Hashed: application names may hold any character, file names may not.
    digest = hashlib.sha256(f"{server}\n{app}".encode()).hexdigest()[:24]
    return state_dir() / "rotations" / f"{digest}.json"


def load_progress(server: str, app: str) -> RotationProgress | None:
    try:
        data = read_json(progress_path(server, app), None)
    except ValueError:
        return None  # unreadable (not JSON): treated as no rotation pending; the new run rewrites it
    progress = RotationProgress.from_json(data)
    if progress is None or progress.server != server or progress.app != app:
        return None
    return progress


def save_progress(progress: RotationProgress) -> None:
    """Persist ``progress`` atomically; then honour the test stop hook for its step."""
    write_state(progress_path(progress.server, progress.app),
                 json.dumps(progress.to_json(), indent=2, sort_keys=True).encode())
    stop_if_requested(progress.step)


def clear_progress(server: str, app: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        progress_path(server, app).unlink()


def stop_if_requested(point: str) -> None:
    """Test-only: SIGKILL this process now if ``ORKES_PROVISION_TEST_STOP_AFTER`` names ``point``."""
    if os.environ.get(STOP_AFTER_VARIABLE, "").strip() == point:
        os.kill(os.getpid(), signal.SIGKILL)


# ----- since when keys are INACTIVE -------------------------------------------------------------

def inactive_path() -> Path:
    return state_dir() / "inactive-keys.json"


def _load_inactive() -> dict[str, dict[str, dict[str, str]]]:
    try:
        data = read_json(inactive_path(), {})
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def inactive_since(server: str, app_id: str) -> dict[str, datetime]:
    rows = _load_inactive().get(server, {}).get(app_id, {})
    out: dict[str, datetime] = {}
    for key_id, text in rows.items():
        with contextlib.suppress(ValueError, TypeError):
            out[key_id] = datetime.fromisoformat(text)
    return out


def update_inactive(server: str, app_id: str, *, seen: dict[str, datetime] | None = None,
                    deactivated: dict[str, datetime] | None = None,
                    forget: set[str] | None = None) -> dict[str, datetime]:
    """Update the record of ``app_id``'s INACTIVE keys and return it.

    ``seen``: keys found INACTIVE (an earlier time on record is kept); ``deactivated``: keys this
    tool just deactivated (the time is replaced); ``forget``: keys deleted or ACTIVE again.
    """
    with file_lock("inactive-keys.json", what="the inactive-keys record"):
        data = _load_inactive()
        rows = data.setdefault(server, {}).setdefault(app_id, {})
        before = dict(rows)
        for key_id, when in (seen or {}).items():
            rows.setdefault(key_id, _iso(when))
        for key_id, when in (deactivated or {}).items():
            rows[key_id] = _iso(when)
        for key_id in forget or set():
            rows.pop(key_id, None)
        if not rows:
            data[server].pop(app_id, None)
            if not data[server]:
                data.pop(server)
        if rows != before:
            write_state(inactive_path(), json.dumps(data, indent=2, sort_keys=True).encode())
    return inactive_since(server, app_id)
