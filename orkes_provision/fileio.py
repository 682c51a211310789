"""Files this tool writes: private (0600) from the first byte and replaced atomically.

A reader sees either the old file or the new one, never half of it, and no other user can ever
open the content: the temporary file is created 0600 with O_EXCL, fsynced, then renamed over
the target, and the directory is fsynced so the rename survives a crash. Local state (deliveries, rotation
records) and env files holding secrets all go through here; the audit log, which is only appended
to, writes its own lines (``audit``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from orkes_provision import trust

R = TypeVar("R")

PRIVATE_MODE = 0o600
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def write_private_file(path: Path, data: bytes, *, mode: int = PRIVATE_MODE, group: int | None = None,
                       dir_fd: int | None = None) -> None:
    """Atomically replace ``path`` with ``data``, mode 0600 (or ``mode``). Raises ``OSError`` on failure.

    ``group`` is the group id the file gets before any byte is written (to keep a shared file's
    group, e.g. root:svc 0640); when it cannot be set (the caller is not a member), the group
    bits are dropped from ``mode`` rather than given to the caller's own group.
    The rename replaces a symlink at ``path`` rather than following it; callers that must
    refuse symlinks check before calling. With ``dir_fd`` (``path``'s directory, already open and
    checked) every step is relative to it: no path is looked up again.
    """
    directory = path.parent
    if dir_fd is None:
        tmp, target = str(directory / f".{path.name}.{secrets.token_hex(6)}.tmp"), str(path)
    else:
        tmp, target = f".{path.name}.{secrets.token_hex(6)}.tmp", path.name
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, mode & PRIVATE_MODE, dir_fd=dir_fd)
    try:
        try:
            if group is not None and group != os.fstat(fd).st_gid:
                try:
                    os.fchown(fd, -1, group)
                except OSError:
                    mode &= ~0o070
            # The umask can only remove bits, but make the mode exact whatever it was.
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    if dir_fd is None:
        _fsync_directory(directory)
    else:
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)


def _fsync_directory(directory: Path) -> None:
    # Not every filesystem lets a directory be opened or fsynced; the data itself is already safe.
    try:
        dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data``, creating its directory: ``mode`` from the first byte, never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_file(path, data, mode=mode)


def read_json(path: Path, default: Any) -> Any:
    """The JSON document of a state file, read only when it passes the trust rule (``trust.read_trusted``)."""
    try:
        raw = trust.read_trusted(path)
    except FileNotFoundError:  # its directory is not there yet
        return default
    return default if raw is None else json.loads(raw)


def write_state(path: Path, data: bytes) -> None:
    """Replace a state file (deliveries, intents, rotation records): its directory made 0700 and checked."""
    trust.private_directory(path.parent)
    write_private_file(path, data)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def live_records(directory: Path, read: Callable[[Path], R | None], pid_of: Callable[[R], int]) -> list[R]:
    """The registration files (``*.json``) that running processes keep in ``directory`` (supervisors,
    agents), read with ``read``; the file of a process that is gone is removed on the way (a SIGKILLed
    process cannot remove its own)."""
    try:
        paths = sorted(directory.glob("*.json"))
    except OSError:
        return []
    found: list[R] = []
    for path in paths:
        record = read(path)
        if record is None:
            continue
        if not pid_alive(pid_of(record)):
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        found.append(record)
    return found
