"""The sandbox as a process: start-up, admin.env, signals, latency and the fault plan over TCP."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from orkes_provision.sandbox.harness import SandboxProcess
from tests.sandbox_fixtures import SandboxFactory


def test_healthy_with_admin_env_0600_carrying_the_real_port(sandbox: SandboxProcess) -> None:
    assert sandbox.startup_seconds is not None
    print(f"sandbox healthy after {sandbox.startup_seconds:.2f}s")  # measured by benchmarks, never asserted
    mode = stat.S_IMODE(os.stat(sandbox.admin_env_path).st_mode)
    assert mode == 0o600
    env = sandbox.admin_env
    assert env["CONDUCTOR_SERVER_URL"] == f"http://127.0.0.1:{sandbox.port}/api" == sandbox.url
    assert sandbox.port != 0
    token = sandbox.token()
    me = httpx.get(sandbox.url + "/token/userInfo", headers={"X-Authorization": token.get_secret_value()}).json()
    assert [r["name"] for r in me["roles"]] == ["ADMIN"]


def test_admin_env_key_survives_a_restart_and_keeps_the_port(sandbox: SandboxProcess) -> None:
    before = sandbox.admin_env
    port = sandbox.port
    sandbox.restart()
    assert sandbox.port == port
    assert sandbox.admin_env == before
    assert sandbox.token().get_secret_value()


def test_sigterm_stops_cleanly_and_removes_server_json(tmp_path: Path) -> None:
    process = SandboxProcess(tmp_path / "d").start()
    pid = process.pid
    assert pid is not None
    assert (tmp_path / "d" / "server.json").exists()
    proc = process._proc
    assert proc is not None
    os.kill(pid, signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert not (tmp_path / "d" / "server.json").exists()
    process.stop()


def test_cli_prints_one_ready_line_and_stops_on_sigint(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "from orkes_provision.cli import main; main()", "sandbox",
                             "--port", "0", "--data-dir", str(tmp_path / "cli")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("sandbox ready at http://127.0.0.1:")
        url = line.split()[3]
        assert url.endswith("/api")
        assert httpx.get(url.removesuffix("/api") + "/health", timeout=5).status_code == 200
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=10) == 130  # Ctrl-C: as every command exits when interrupted
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_cli_help_has_an_example() -> None:
    result = subprocess.run([sys.executable, "-c", "from orkes_provision.cli import main; main()", "sandbox",
                             "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "provision sandbox --port 8080 --data-dir" in result.stdout
    assert "--token-ttl" in result.stdout


def test_latency_is_added_without_blocking_other_requests(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(latency_ms=300)
    durations: list[float] = []

    def call() -> None:
        started = time.monotonic()
        assert httpx.get(sb.root_url + "/health", timeout=10).status_code == 200
        durations.append(time.monotonic() - started)

    threads = [threading.Thread(target=call) for _ in range(8)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    total = time.monotonic() - started
    assert len(durations) == 8
    assert min(durations) >= 0.3
    # Serialised would take at least 2.4 s (8 x 0.3 s); overlapping takes about 0.3 s, more on a loaded host.
    assert total < 8 * 0.3


def test_drop_after_commit_commits_then_drops_the_connection(sandbox: SandboxProcess) -> None:
    sandbox.add_fault("POST", r"^/api/applications$", action="drop_after_commit")
    token = sandbox.token().get_secret_value()
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        httpx.post(sandbox.url + "/applications", json={"name": "dropped"}, headers={"X-Authorization": token},
                   timeout=10)
    names = [a["name"] for a in sandbox.admin_request("GET", "/applications").json()]
    assert "dropped" in names
    line = next(r for r in reversed(sandbox.requests()) if r["path"] == "/api/applications" and r["method"] == "POST")
    assert line["status"] is None
    assert line["fault"] == "drop_after_commit"


def test_timeout_fault_hangs_one_request_while_others_are_served(sandbox: SandboxProcess) -> None:
    sandbox.add_fault("GET", r"^/api/applications$", action="timeout", hang_seconds=5)
    token = sandbox.token().get_secret_value()
    outcome: list[BaseException] = []

    def hung() -> None:
        try:
            httpx.get(sandbox.url + "/applications", headers={"X-Authorization": token}, timeout=1.0)
        except httpx.HTTPError as err:
            outcome.append(err)

    thread = threading.Thread(target=hung)
    thread.start()
    time.sleep(0.2)
    assert httpx.get(sandbox.root_url + "/health", timeout=0.9).status_code == 200
    thread.join(timeout=10)
    assert len(outcome) == 1
    assert isinstance(outcome[0], httpx.ReadTimeout)
    # The fault was used up: the next call is answered.
    assert sandbox.admin_request("GET", "/applications").status_code == 200


def test_write_requests_ignores_reads_token_exchanges_and_fault_setup(sandbox: SandboxProcess) -> None:
    mark = sandbox.mark()
    sandbox.admin_request("GET", "/applications")
    sandbox.add_fault("GET", "^/never$")
    sandbox.clear_faults()
    assert sandbox.write_requests(since=mark) == []
    sandbox.admin_request("POST", "/applications", {"name": "w"})
    writes = sandbox.write_requests(since=mark)
    assert [(w["method"], w["path"], w["status"]) for w in writes] == [("POST", "/api/applications", 200)]
