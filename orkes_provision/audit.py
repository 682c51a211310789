"""The audit log: one JSON line per provisioning or rotation action, never a secret, hash-chained.

File: ``$XDG_STATE_HOME/orkes-provision/audit.log`` (override the directory with
``ORKES_PROVISION_STATE_DIR``). Fields: time (UTC ISO 8601), actor (the provisioning key id),
server, action, target, result, plus optional app and keyId, and the chain: ``prev`` (the link of
the line before, ``GENESIS`` for the first) and ``hash`` (SHA-256 of the record's canonical JSON
without ``hash``, so of ``prev`` too). The link of a chained line is its ``hash``; of a line
written before the chain existed, the SHA-256 of its bytes. ``verify`` walks the chain and names
the first line that was edited, deleted, inserted or moved.

Appending reads the last line's link and writes the new line under ``flock`` on the log itself,
so concurrent runs (and an apply's threads) extend one chain instead of forking it.

A chain proves the order and content of what it holds, not that its tail is all there: a cut-off
tail is found only by comparing ``verify``'s head hash with one kept elsewhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orkes_provision import trust
from orkes_provision.errors import ProvisionError
from orkes_provision.paths import state_dir

GENESIS = "0" * 64
_TAIL_CHUNK = 4096
_append_lock = threading.Lock()
# (path, inode, size) after this process's last append -> that record's hash: when nobody else wrote
# since, the tail need not be read again (an apply writes thousands of lines).
_last_written: dict[tuple[str, int, int], str] = {}


def audit_path() -> Path:
    return state_dir() / "audit.log"


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()


def record_hash(entry: dict[str, Any]) -> str:
    """The ``hash`` a record must carry: SHA-256 of its canonical JSON without ``hash``."""
    return hashlib.sha256(_canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def _link(line: bytes) -> str:
    """What the next record's ``prev`` names: a chained record's ``hash``, else the line's own digest."""
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):
        entry = None
    if isinstance(entry, dict) and isinstance(entry.get("hash"), str):
        return str(entry["hash"])
    return hashlib.sha256(line).hexdigest()


def _last_line(fd: int) -> bytes | None:
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    window = _TAIL_CHUNK
    while True:
        start = max(0, size - window)
        data = os.pread(fd, size - start, start).rstrip(b"\n")
        cut = data.rfind(b"\n")
        if cut >= 0 or start == 0:
            return data[cut + 1:]
        window *= 4


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
    _append(audit_path(), entry)


def _append(path: Path, entry: dict[str, Any]) -> None:
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:  # the directory is made once, not checked at every line (an apply writes thousands)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, flags, 0o600)
    try:
        info = os.fstat(fd)  # the file opened is the file checked (trust.py): not another user's, not writable
        problem = trust.file_problem(info, None)
        if problem is not None:
            raise trust.refusal(path, info, problem)
        with _append_lock:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                stat = os.fstat(fd)
                cached = _last_written.pop((str(path), stat.st_ino, stat.st_size), None)
                torn = False
                if cached is not None:
                    entry["prev"] = cached
                else:
                    last = _last_line(fd)
                    entry["prev"] = GENESIS if last is None else _link(last)
                    # A torn last line (a crash mid-write) stays a line of its own.
                    torn = last is not None and os.pread(fd, 1, stat.st_size - 1) != b"\n"
                entry["hash"] = record_hash(entry)
                line = (b"\n" if torn else b"") + _canonical(entry) + b"\n"
                os.write(fd, line)
                _last_written.clear()
                _last_written[(str(path), stat.st_ino, stat.st_size + len(line))] = entry["hash"]
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


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


# ----- verification -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verification:
    """What ``verify`` found. ``bad_line`` is 1-based; ``chain_start`` the first chained line (``None``: none)."""

    path: str
    lines: int
    chain_start: int | None
    head: str | None
    bad_line: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.bad_line is None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "ok": self.ok, "lines": self.lines, "chainStart": self.chain_start,
                "head": self.head, "badLine": self.bad_line, "problem": self.problem}

    def render(self) -> str:
        if self.lines == 0:
            return f"{self.path}: empty, nothing to verify."
        if self.chain_start is None:
            return f"{self.path}: {self.lines} line(s), none chained: all were written before the hash chain existed."
        before = (f"; lines 1-{self.chain_start - 1} predate the chain and are vouched for only by line "
                  f"{self.chain_start}'s link to line {self.chain_start - 1}") if self.chain_start > 1 else ""
        if self.ok:
            return (f"{self.path}: chain intact, {self.lines - self.chain_start + 1} record(s) from line "
                    f"{self.chain_start}{before}.\nhead {self.head} (keep it elsewhere to detect a cut-off tail)")
        return f"{self.path}:{self.bad_line}: {self.problem}"


# complexity: one pass over the chain where each check is another way a log is tampered with (torn,
# unchained, edited, misplaced); split, each part would need the entries, links and start passed along.
def verify(path: Path | None = None) -> Verification:
    """Walk the chain of the audit log at ``path`` (default: this user's) and stop at the first bad line."""
    own = path is None
    path = path or audit_path()
    try:
        raw = trust.read_trusted(path) if own else path.read_bytes()  # a log named to check is only read
    except FileNotFoundError:
        raw = None
    if raw is None:
        return Verification(str(path), 0, None, None)
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    entries: list[dict[str, Any] | None] = []
    for line in lines:
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            entry = None
        entries.append(entry if isinstance(entry, dict) else None)
    start = next((i for i, e in enumerate(entries) if e is not None and "hash" in e), None)
    if start is None:
        return Verification(str(path), len(lines), None, None)
    links = [_link(line) for line in lines]

    def bad(index: int, problem: str) -> Verification:
        return Verification(str(path), len(lines), start + 1, None, index + 1, problem)

    for i in range(start, len(lines)):
        entry = entries[i]
        if entry is None:
            return bad(i, "not a JSON record (a torn write or a hand edit)")
        if not isinstance(entry.get("hash"), str) or not isinstance(entry.get("prev"), str):
            return bad(i, "carries no hash chain (prev, hash): inserted by hand, or an older record moved here")
        if entry["hash"] != record_hash(entry):
            return bad(i, "edited: its content does not match its hash")
        expected = GENESIS if i == 0 else links[i - 1]
        if entry["prev"] == expected:
            continue
        return bad(*_misplaced(i, entry["prev"], links))
    return Verification(str(path), len(lines), start + 1, links[-1])


def _misplaced(i: int, prev: str, links: list[str]) -> tuple[int, str]:
    """Why line ``i`` does not follow line ``i - 1``, and which line is the bad one."""
    if prev == GENESIS:
        return i, "starts a new chain here: the log was replaced or spliced before this line"
    if i >= 2 and links[i - 2] == prev:
        return i - 1, f"inserted: line {i + 1} chains to line {i - 1}, not to this line"
    if prev in links[i + 1:]:
        return i, f"out of order: it follows line {links.index(prev, i + 1) + 1}, which comes after it"
    if i >= 1 and prev in links[:i - 1]:
        return i, f"out of order: it follows line {links.index(prev) + 1}, not the line before it"
    return i, "a record before it is missing (deleted), or the line before it was replaced"
