"""Workers die with their supervisor, even when it is SIGKILLed (issue 20).

A worker that outlives its supervisor keeps the old key after a rotation and is seen by nobody.
Two mechanisms, because each covers what the other cannot:

- ``die_with_parent`` (a ``preexec_fn``): Linux's parent-death signal (``prctl(PR_SET_PDEATHSIG)``)
  SIGKILLs the worker process itself when the thread that started it ends, however it ends.
  It reaches only that process, not the processes the worker started (a shell's child, a JVM's).
- ``Lifeline``: a small watcher process, started once per supervisor, holds the read end of a pipe
  whose write end only the supervisor has, and learns each worker's process group through it.
  When the supervisor is gone (the kernel closes its end), the watcher sends SIGTERM to every group
  still registered, then SIGKILL to what is left after the grace period, and exits.

Elsewhere (no ``prctl``) ``die_with_parent`` does nothing; the watcher works wherever pipes do.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys

_PR_SET_PDEATHSIG = 1

try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
except OSError:
    _libc = None


def die_with_parent_of(parent_pid: int) -> None:
    """``preexec_fn`` body: ask for SIGKILL when the parent goes, and go now if it already went."""
    if _libc is None or not sys.platform.startswith("linux"):
        return
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died between fork and prctl: nobody would signal us
        os._exit(1)


_WATCHER = r"""
import os, signal, sys, time
fd, grace = int(sys.argv[1]), float(sys.argv[2])
signal.signal(signal.SIGINT, signal.SIG_IGN)
groups, buffer = set(), b""
while True:
    chunk = os.read(fd, 4096)
    if not chunk:
        break
    buffer += chunk
    *lines, buffer = buffer.split(b"\n")
    for line in lines:
        if line.startswith(b"+"):
            groups.add(int(line[1:]))
        elif line.startswith(b"-"):
            groups.discard(int(line[1:]))
def alive(group):
    try:
        os.killpg(group, 0)
        return True
    except OSError:
        return False
for group in list(groups):
    try:
        os.killpg(group, signal.SIGTERM)
    except OSError:
        groups.discard(group)
end = time.monotonic() + grace
while groups and time.monotonic() < end:
    groups = {g for g in groups if alive(g)}
    time.sleep(0.1)
for group in groups:
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
"""


class Lifeline:
    """The watcher of one supervisor's worker process groups; ``close`` when the supervisor ends normally."""

    def __init__(self, grace: float = 10.0) -> None:
        read_end, self._write_end = os.pipe()
        try:
            self._watcher: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-c", _WATCHER, str(read_end), f"{grace:g}"], pass_fds=(read_end,),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
        except OSError:
            self._watcher = None
        finally:
            os.close(read_end)

    def add(self, group: int) -> None:
        self._send(f"+{group}\n")

    def remove(self, group: int) -> None:
        self._send(f"-{group}\n")

    def _send(self, line: str) -> None:
        with contextlib.suppress(OSError):  # a dead watcher must not stop the supervisor
            os.write(self._write_end, line.encode())

    def close(self) -> None:
        """The supervisor stopped its workers itself: let the watcher go (it kills nothing left registered)."""
        with contextlib.suppress(OSError):
            os.close(self._write_end)
        if self._watcher is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._watcher.wait(timeout=5)
