"""Advisory file locks, so two local runs on the same application do not interleave.

They serialise runs on one machine only; two machines provisioning the same name at once can
still race (Orkes has no unique names and no conditional create).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator

from orkes_provision.errors import LockHeld
from orkes_provision.paths import state_dir


@contextlib.contextmanager
def file_lock(name: str, *, wait_seconds: float = 30.0, what: str | None = None) -> Iterator[None]:
    """Hold an exclusive lock named ``name``; wait up to ``wait_seconds`` for it, then LockHeld."""
    lock_dir = state_dir() / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(name.encode()).hexdigest()[:24]
    fd = os.open(lock_dir / f"{digest}.lock", os.O_RDWR | os.O_CREAT, 0o600)
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
