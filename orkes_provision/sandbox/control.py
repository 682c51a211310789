"""One sandbox per data dir: the lock that says so, and starting, finding and stopping it from outside.

A server holds ``DATA_DIR/sandbox.lock`` (an exclusive ``flock``) for as long as it runs, from
before it binds its port or touches ``admin.env``. A second server on the same data dir is refused
(``LockHeld``, exit 12) without changing anything: it would otherwise rewrite ``admin.env`` with its
own port, and when it stopped leave ``--profile sandbox`` pointing at a server that is gone while
the first one still ran. The kernel drops the lock when the process ends, however it ends, so a
killed sandbox never leaves a stale lock. Whether a data dir is in use is therefore "is its lock
held", and ``server.json`` (written by the holder once it answers) says where and under which pid.

``start_detached`` runs ``python -m orkes_provision.sandbox`` in its own session (stdout and stderr
to ``DATA_DIR/server.log``) and returns once it answers ``/health``; ``sandbox_status`` and
``stop_sandbox`` find it through the lock and ``server.json``. Nothing here needs the sandbox extra.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from orkes_provision import errors
from orkes_provision.errors import LockHeld, ProvisionError, ServerUnavailable
from orkes_provision.progress import waiting
from orkes_provision.sandbox.config import ADMIN_ENV, LOCK_FILE, SERVER_INFO, SERVER_LOG, SandboxConfig

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0  # SIGTERM, then SIGKILL: a clean stop takes at most ~2 s (in-flight requests)
_POLL = 0.05


@dataclass(frozen=True)
class SandboxStatus:
    """What is known of the sandbox on one data dir."""

    data_dir: Path
    running: bool
    pid: int | None = None
    url: str | None = None
    root_url: str | None = None
    healthy: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"dataDir": str(self.data_dir), "running": self.running, "healthy": self.healthy, "pid": self.pid,
                "url": self.url, "adminEnv": str(self.data_dir / ADMIN_ENV), "log": str(self.data_dir / SERVER_LOG)}


@contextlib.contextmanager
def hold_data_dir(data_dir: Path) -> Iterator[None]:
    """Hold ``data_dir`` for one server's life; ``LockHeld`` at once when another server holds it."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise in_use(data_dir) from None
    try:
        # server.json of an earlier server that was killed: stale now, and its pid may be reused.
        with contextlib.suppress(FileNotFoundError):
            (data_dir / SERVER_INFO).unlink()
        yield
    finally:
        os.close(fd)


def in_use(data_dir: Path) -> LockHeld:
    info = read_server_info(data_dir)
    where = f" (pid {info['pid']}, {info['url']})" if info else ""
    return LockHeld(f"another sandbox{where} is running on the data dir {data_dir}",
                    f"stop it first ('provision sandbox stop --data-dir {data_dir}'), or give this one another "
                    "--data-dir")


def is_running(data_dir: Path) -> bool:
    """Whether a server holds ``data_dir`` (its lock file is locked)."""
    try:
        fd = os.open(data_dir / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the shared lock, if this took it
    return False


def read_server_info(data_dir: Path) -> dict[str, Any] | None:
    """``server.json`` (pid, port, url, rootUrl) of the server on ``data_dir``, when it wrote one."""
    try:
        data = json.loads((data_dir / SERVER_INFO).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("pid"), int) or not isinstance(data.get("url"), str):
        return None
    return data


def _healthy(root_url: str) -> bool:
    try:
        return httpx.get(root_url + "/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def sandbox_status(data_dir: Path) -> SandboxStatus:
    if not is_running(data_dir):
        return SandboxStatus(data_dir=data_dir, running=False)
    info = read_server_info(data_dir)
    if info is None:  # starting: the lock is taken, server.json not written yet
        return SandboxStatus(data_dir=data_dir, running=True)
    root_url = str(info.get("rootUrl") or str(info["url"]).removesuffix("/api"))
    return SandboxStatus(data_dir=data_dir, running=True, pid=int(info["pid"]), url=str(info["url"]),
                         root_url=root_url, healthy=_healthy(root_url))


def start_detached(config: SandboxConfig, *, timeout: float = START_TIMEOUT) -> SandboxStatus:
    """Start a sandbox in the background; return once it answers ``/health``.

    Refused (``LockHeld``) when a sandbox already runs on the data dir. A server that exits while
    starting (port in use, say) raises the error it reported, with its exit code.
    """
    data_dir = config.data_dir
    if is_running(data_dir):
        raise in_use(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = data_dir / SERVER_LOG
    cmd = [sys.executable, "-m", "orkes_provision.sandbox", "--host", config.host, "--port", str(config.port),
           "--data-dir", str(data_dir), "--latency-ms", str(config.latency_ms),
           "--token-ttl", str(config.token_ttl_seconds), "--max-keys", str(config.max_keys)]
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    offset = os.fstat(log_fd).st_size
    try:
        # Its own session: no terminal, and Ctrl-C in this shell does not reach it.
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=subprocess.STDOUT,
                                cwd="/", start_new_session=True)
    finally:
        os.close(log_fd)
    waiting(f"starting the sandbox in the background on data dir {data_dir}", topic="sandbox-start")
    try:
        return _wait_healthy(proc, data_dir, log_path, offset, timeout)
    except BaseException:
        # Not healthy in time, or Ctrl-C while waiting: leave nothing running behind the error.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        raise


def _wait_healthy(proc: subprocess.Popen[bytes], data_dir: Path, log_path: Path, offset: int,
                  timeout: float) -> SandboxStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise _startup_failure(code, log_path, offset)
        info = read_server_info(data_dir)
        if info is not None and info["pid"] == proc.pid:
            status = sandbox_status(data_dir)
            if status.healthy:
                return status
        time.sleep(_POLL)
    raise ServerUnavailable(f"the sandbox did not answer /health within {timeout:g}s; it was stopped",
                            f"see {log_path}")


def _startup_failure(code: int, log_path: Path, offset: int) -> ProvisionError:
    """The error the server printed (``error:``/``hint:`` lines in its log), as the same kind of error."""
    try:
        with log_path.open("rb") as handle:
            handle.seek(offset)
            lines = handle.read().decode(errors="replace").splitlines()
    except OSError:
        lines = []
    message = next((line[len("error: "):] for line in reversed(lines) if line.startswith("error: ")), None)
    hint = next((line[len("hint: "):] for line in reversed(lines) if line.startswith("hint: ")), None)
    if message is None:
        return ServerUnavailable(f"the sandbox exited with code {code} while starting", f"see {log_path}")
    kinds = [k for k in vars(errors).values()
             if isinstance(k, type) and issubclass(k, ProvisionError) and k.exit_code == code]
    return (kinds[0] if kinds else ProvisionError)(message, hint)


def stop_sandbox(data_dir: Path, *, timeout: float = STOP_TIMEOUT) -> SandboxStatus:
    """Stop the sandbox on ``data_dir`` (SIGTERM, then SIGKILL after ``timeout``); returns what ran.

    A data dir with no sandbox is not an error: the answer says ``running: false``.
    """
    status = sandbox_status(data_dir)
    deadline = time.monotonic() + timeout
    while status.running and status.pid is None and time.monotonic() < deadline:
        time.sleep(_POLL)  # starting: it writes its pid once it answers
        status = sandbox_status(data_dir)
    if not status.running:
        return status
    if status.pid is None:
        raise ServerUnavailable(f"the sandbox on {data_dir} holds its data dir but never said its pid",
                                f"see {data_dir / SERVER_LOG}")
    with contextlib.suppress(ProcessLookupError):
        os.kill(status.pid, signal.SIGTERM)
    if not _wait_stopped(data_dir, status.pid, deadline):
        with contextlib.suppress(ProcessLookupError):
            os.kill(status.pid, signal.SIGKILL)
        if not _wait_stopped(data_dir, status.pid, time.monotonic() + 5.0):
            raise ServerUnavailable(f"the sandbox (pid {status.pid}) did not stop, even after SIGKILL",
                                    f"look at process {status.pid}")
        with contextlib.suppress(FileNotFoundError):
            (data_dir / SERVER_INFO).unlink()  # a killed server cannot remove its own
    return status


def _wait_stopped(data_dir: Path, pid: int, deadline: float) -> bool:
    """Until the lock is free and the process gone (it frees the lock a moment before it exits)."""
    started, told = time.monotonic(), False
    while time.monotonic() < deadline:
        if not is_running(data_dir) and not _alive(pid):
            return True
        if not told and time.monotonic() - started >= 1.0:
            waiting(f"waiting for the sandbox (pid {pid}) to stop", topic="sandbox-stop",
                    remaining=deadline - time.monotonic())
            told = True
        time.sleep(_POLL)
    return not is_running(data_dir) and not _alive(pid)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (exited, its parent gone or not yet reaping) does not."""
    if Path("/proc/self/stat").exists():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]
    try:  # no /proc (macOS): a zombie counts as running here, until its parent reaps it
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
