"""Advisory file locks, so two local runs on the same application do not interleave.

``app_lock`` is the one lock per server and application name, whatever the command (``app``,
``apply``, ``keys create``, ``keys rotate``, ``keys prune``): a ``provision app X`` and an
``apply`` declaring X never both create X. A process that holds an application's lock may take it
again (the executor's threads create keys while ``apply`` holds the locks of its applications).

They serialise runs on one machine only; two machines provisioning the same name at once can
still race (Orkes has no unique names and no conditional create).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterable, Iterator

from orkes_provision import trust
from orkes_provision.errors import ConfigError, LockHeld
from orkes_provision.paths import state_dir


@contextlib.contextmanager
def file_lock(name: str, *, wait_seconds: float = 30.0, what: str | None = None) -> Iterator[None]:
    """Hold an exclusive lock named ``name``; wait up to ``wait_seconds`` for it, then LockHeld."""
    lock_dir = trust.private_directory(state_dir() / "locks")
    digest = hashlib.sha256(name.encode()).hexdigest()[:24]
    path = lock_dir / f"{digest}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise ConfigError(f"cannot use the lock file {path}: {err.strerror or err}",
                          f"remove it (no provision run is using it if none is running): rm {path}") from None
    info = os.fstat(fd)
    problem = trust.file_problem(info, None)
    if problem is not None:  # another user's lock file could be held by them forever, or be a link elsewhere
        os.close(fd)
        raise trust.refusal(path, info, problem)
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockHeld(f"another provision run holds the lock for {what or name}") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


_HELD: dict[str, int] = {}
_HELD_LOCK = threading.Lock()


def app_lock_name(server: str, app: str) -> str:
    return f"app|{server}|{app}"


@contextlib.contextmanager
def app_lock(server: str, apps: str | Iterable[str], *, wait_seconds: float = 30.0,
             what: str | None = None) -> Iterator[None]:
    """Hold the lock of each application named ``apps`` on ``server`` (taken in sorted order, so two
    runs locking overlapping sets cannot deadlock). Re-entrant within a process."""
    names = sorted({apps} if isinstance(apps, str) else set(apps))
    with contextlib.ExitStack() as stack:
        for app in names:
            stack.enter_context(_reentrant(app_lock_name(server, app), wait_seconds,
                                           what or f"application {app}"))
        yield


@contextlib.contextmanager
def _reentrant(name: str, wait_seconds: float, what: str) -> Iterator[None]:
    with _HELD_LOCK:
        if _HELD.get(name):
            _HELD[name] += 1
            owned = False
        else:
            owned = True
    if not owned:
        try:
            yield
        finally:
            with _HELD_LOCK:
                _HELD[name] -= 1
        return
    with file_lock(name, wait_seconds=wait_seconds, what=what):
        with _HELD_LOCK:
            _HELD[name] = 1
        try:
            yield
        finally:
            with _HELD_LOCK:
                _HELD.pop(name, None)
