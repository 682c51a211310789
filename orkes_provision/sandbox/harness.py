"""Run a sandbox server as a subprocess: for tests, ``make demo`` and benchmarks.

    with SandboxProcess(latency_ms=50) as sb:
        client = httpx.Client(base_url=sb.url)          # sb.url ends with /api
        ... sb.admin_key_id, sb.admin_secret (SecretStr), sb.admin_env ...
        sb.add_fault("POST", r"^/api/applications$", status=503)
        assert sb.write_requests(since=mark) == []

The server runs as ``python -m orkes_provision.sandbox`` in its own process group, on a free port
(``--port 0``) and a given or temporary data dir; its output goes to ``DATA_DIR/server.log``.
The harness talks to it directly, never through a proxy from the environment (it is loopback).
``stop()`` sends SIGTERM to the group and SIGKILL if it lingers. ``restart()`` keeps the data dir
and the port. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import httpx
from pydantic import SecretStr

from orkes_provision.errors import ServerUnavailable
from orkes_provision.sandbox.config import ADMIN_ENV, REQUESTS_LOG, SERVER_INFO, SERVER_LOG


class ServerProcess(Protocol):
    """What the harness uses of the server's process: ``subprocess.Popen`` has it."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


class SandboxProcess:
    def __init__(self, data_dir: Path | str | None = None, *, latency_ms: int = 0, token_ttl: int | None = None,
                 max_keys: int | None = None, worker_search: bool = False,
                 host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 20.0,
                 env: dict[str, str] | None = None) -> None:
        self._owns_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="orkes-sandbox-"))
        self.latency_ms = latency_ms
        self.token_ttl = token_ttl
        self.max_keys = max_keys
        self.worker_search = worker_search
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.startup_seconds: float | None = None
        self._env = env
        self._proc: ServerProcess | None = None
        self._token: str | None = None
        self.root_url = ""
        self.url = ""

    # life cycle ---------------------------------------------------------------------------

    def start(self) -> SandboxProcess:
        if self._proc is not None and self._proc.poll() is None:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        info_path = self.data_dir / SERVER_INFO
        with contextlib.suppress(FileNotFoundError):
            info_path.unlink()
        cmd = [sys.executable, "-m", "orkes_provision.sandbox", "--host", self.host, "--port", str(self.port),
               "--data-dir", str(self.data_dir), "--latency-ms", str(self.latency_ms)]
        if self.token_ttl is not None:
            cmd += ["--token-ttl", str(self.token_ttl)]
        if self.max_keys is not None:
            cmd += ["--max-keys", str(self.max_keys)]
        if self.worker_search:
            cmd.append("--allow-worker-search")
        env = dict(os.environ if self._env is None else self._env)
        log_fd = os.open(self.data_dir / SERVER_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        started = time.monotonic()
        try:
            self._proc = self._spawn(cmd, env, log_fd)
        finally:
            os.close(log_fd)
        try:
            self._wait_ready(info_path, started)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _spawn(self, cmd: list[str], env: dict[str, str], log_fd: int) -> ServerProcess:
        """Start the server in its own session, output to ``log_fd`` (the test suite starts it otherwise)."""
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)

    def _wait_ready(self, info_path: Path, started: float) -> None:
        assert self._proc is not None
        deadline = started + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServerUnavailable(f"the sandbox exited with code {self._proc.returncode} while starting",
                                        hint=f"see {self.data_dir / SERVER_LOG}: {self._log_tail()}")
            info = _read_json(info_path)
            if isinstance(info, dict) and info.get("pid") == self._proc.pid:
                self.port = int(info["port"])
                self.root_url, self.url = str(info["rootUrl"]), str(info["url"])
                try:
                    if httpx.get(self.root_url + "/health", timeout=2.0, trust_env=False).status_code == 200:
                        self._token = None
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.02)
        raise ServerUnavailable(f"the sandbox did not become healthy within {self.startup_timeout:.0f}s",
                                hint=f"see {self.data_dir / SERVER_LOG}")

    def _log_tail(self) -> str:
        try:
            return (self.data_dir / SERVER_LOG).read_text(errors="replace")[-2000:].strip()
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        self._token = None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
        # Anything the server left in its group goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=10)
        self._proc = None
        self._token = None

    def restart(self) -> SandboxProcess:
        """Stop and start again on the same data dir and port."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop, and remove the data dir if this harness made it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # credentials ---------------------------------------------------------------------------

    @property
    def admin_env(self) -> dict[str, str]:
        """The variables of ``admin.env`` (CONDUCTOR_SERVER_URL, CONDUCTOR_AUTH_KEY, CONDUCTOR_AUTH_SECRET)."""
        out: dict[str, str] = {}
        for line in (self.data_dir / ADMIN_ENV).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                out[key.strip()] = value.strip()
        return out

    @property
    def admin_env_path(self) -> Path:
        return self.data_dir / ADMIN_ENV

    @property
    def admin_key_id(self) -> str:
        return self.admin_env["CONDUCTOR_AUTH_KEY"]

    @property
    def admin_secret(self) -> SecretStr:
        return SecretStr(self.admin_env["CONDUCTOR_AUTH_SECRET"])

    def token(self, key_id: str | None = None, secret: SecretStr | None = None) -> SecretStr:
        """A JWT for the given key, or for the admin key."""
        response = httpx.post(self.url + "/token", timeout=10.0, trust_env=False, json={
            "keyId": key_id or self.admin_key_id,
            "keySecret": (secret or self.admin_secret).get_secret_value()})
        response.raise_for_status()
        return SecretStr(str(response.json()["token"]))

    def admin_request(self, method: str, path: str, json_body: Any = None, timeout: float = 10.0) -> httpx.Response:
        """A request as the admin application; ``path`` is relative to ``/api`` (e.g. ``/applications``)."""
        for _ in range(2):
            if self._token is None:
                self._token = self.token().get_secret_value()
            response = httpx.request(method, self.url + path, json=json_body, timeout=timeout, trust_env=False,
                                     headers={"X-Authorization": self._token})
            if response.status_code != 401:
                return response
            self._token = None
        return response

    # fault plan ----------------------------------------------------------------------------

    def add_fault(self, method: str = "*", path: str = ".*", *, count: int = 1, action: str = "status",
                  status: int = 503, retry_after: int = 1, hang_seconds: float = 30) -> dict[str, Any]:
        """Make the next ``count`` requests matching ``method`` and the ``path`` regex fail (see ``faults``)."""
        response = self.admin_request("POST", "/sandbox/faults", {
            "method": method, "path": path, "count": count, "action": action, "status": status,
            "retryAfter": retry_after, "hangSeconds": hang_seconds})
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def faults(self) -> list[dict[str, Any]]:
        response = self.admin_request("GET", "/sandbox/faults")
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def clear_faults(self) -> None:
        self.admin_request("DELETE", "/sandbox/faults").raise_for_status()

    # requests.log --------------------------------------------------------------------------

    def requests(self) -> list[dict[str, Any]]:
        """Every line of ``requests.log``, parsed, oldest first."""
        try:
            text = (self.data_dir / REQUESTS_LOG).read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def mark(self) -> int:
        """A position in ``requests.log`` to pass as ``since``."""
        return len(self.requests())

    def write_requests(self, since: int | None = None) -> list[dict[str, Any]]:
        """Requests that could change state, after the ``since`` mark.

        Everything except GET/HEAD, token exchanges (``POST /api/token``), the sandbox's own
        ``/api/sandbox/...`` endpoints and requests the fault plan answered without running them, so
        "no writes" checks are not fooled by harness traffic.
        """
        lines = self.requests()[since or 0:]
        # A request the fault plan answered or hung never reached a handler, so it changed nothing;
        # a hung one is logged when it is finally dropped, possibly long after the test that made it.
        return [r for r in lines if r.get("method") not in ("GET", "HEAD")
                and r.get("path") != "/api/token" and not str(r.get("path", "")).startswith("/api/sandbox/")
                and r.get("fault") not in ("status", "timeout")]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
