"""The sandbox as a user meets it: ``--detach``, ``status``, ``stop``, and one sandbox per data dir.

Every test runs the real ``provision`` console script; a sandbox it leaves running is stopped (and,
failing that, killed) when the test ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from orkes_provision.sandbox.control import is_running, read_server_info, stop_sandbox
from tests.cli import PROVISION, output, provision

pytest.importorskip("starlette", reason="the sandbox extra is not installed")


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (the detached server's parent is gone; init reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "sb"
    yield path
    info = read_server_info(path)
    with contextlib.suppress(Exception):
        stop_sandbox(path, timeout=5)
    if info is not None and alive(info["pid"]):
        os.kill(info["pid"], signal.SIGKILL)


def detach(data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return provision(["sandbox", "--detach", "--port", "0", "--data-dir", str(data_dir), *extra])


def test_detach_returns_once_healthy_with_url_and_data_dir_then_status_and_stop_leave_no_process(
        data_dir: Path) -> None:
    started = time.monotonic()
    result = detach(data_dir)
    took = time.monotonic() - started
    assert result.returncode == 0, output(result)
    print(f"sandbox --detach returned after {took:.2f}s")
    info = read_server_info(data_dir)
    assert info is not None
    url, pid = info["url"], info["pid"]
    assert result.stdout.splitlines() == [
        f"sandbox running in the background at {url} (pid {pid})",
        f"data dir: {data_dir} (admin credentials in {data_dir / 'admin.env'}, log in {data_dir / 'server.log'})",
        f"stop it:  provision sandbox stop --data-dir {data_dir}",
    ]
    assert f"starting the sandbox in the background on data dir {data_dir}" in result.stderr
    # Already healthy when the command returned: no waiting needed.
    assert httpx.get(url.removesuffix("/api") + "/health", timeout=5).status_code == 200
    assert alive(pid)

    status = provision(["sandbox", "status", "--data-dir", str(data_dir)])
    assert status.returncode == 0, output(status)
    assert status.stdout.strip() == f"running at {url} (pid {pid}, data dir {data_dir})"
    as_json = json.loads(provision(["sandbox", "status", "--data-dir", str(data_dir), "--json"]).stdout)
    assert as_json == {"dataDir": str(data_dir), "running": True, "healthy": True, "pid": pid, "url": url,
                       "adminEnv": str(data_dir / "admin.env"), "log": str(data_dir / "server.log")}

    stopped = provision(["sandbox", "stop", "--data-dir", str(data_dir), "--json"])
    assert stopped.returncode == 0, output(stopped)
    assert json.loads(stopped.stdout) == {"stopped": True, "pid": pid, "url": url, "dataDir": str(data_dir)}
    assert not alive(pid)
    assert not is_running(data_dir)
    assert not (data_dir / "server.json").exists()
    with pytest.raises(httpx.TransportError):
        httpx.get(url.removesuffix("/api") + "/health", timeout=2)

    after = provision(["sandbox", "status", "--data-dir", str(data_dir)])
    assert after.returncode == 8
    assert after.stdout.strip() == f"not running (data dir {data_dir})"
    again = provision(["sandbox", "stop", "--data-dir", str(data_dir)])
    assert again.returncode == 0
    assert again.stdout.strip() == f"no sandbox is running on the data dir {data_dir}"


def test_the_default_data_dir_comes_from_orkes_provision_sandbox_dir(data_dir: Path) -> None:
    env = {"ORKES_PROVISION_SANDBOX_DIR": str(data_dir)}
    result = provision(["sandbox", "--detach", "--port", "0"], env=env)
    assert result.returncode == 0, output(result)
    assert provision(["sandbox", "status"], env=env).returncode == 0
    apps = provision(["--profile", "sandbox", "apps", "list", "--json"], env=env)
    assert apps.returncode == 0, output(apps)
    assert provision(["sandbox", "stop"], env=env).returncode == 0
    assert not is_running(data_dir)


def test_a_second_sandbox_on_a_data_dir_in_use_is_refused_and_changes_nothing(data_dir: Path) -> None:
    assert detach(data_dir).returncode == 0
    info = read_server_info(data_dir)
    assert info is not None
    admin_env = (data_dir / "admin.env").read_bytes()
    admin_mtime = (data_dir / "admin.env").stat().st_mtime_ns
    expected_error = f"error: another sandbox (pid {info['pid']}, {info['url']}) is running on the data dir {data_dir}"

    foreground = provision(["sandbox", "--port", "0", "--data-dir", str(data_dir)], timeout=30)
    background = detach(data_dir)
    module = subprocess.run([sys.executable, "-m", "orkes_provision.sandbox", "--port", "0", "--data-dir",
                             str(data_dir)], capture_output=True, text=True, timeout=30, check=False)

    for refused in (foreground, background, module):
        assert refused.returncode == 12, output(refused)
        assert refused.stderr.splitlines()[-2:] == [
            expected_error,
            f"hint: stop it first ('provision sandbox stop --data-dir {data_dir}'), or give this one another "
            "--data-dir"]
    assert (data_dir / "admin.env").read_bytes() == admin_env
    assert (data_dir / "admin.env").stat().st_mtime_ns == admin_mtime
    assert read_server_info(data_dir) == info
    # The first one still serves, and --profile sandbox still reaches it.
    apps = provision(["--profile", "sandbox", "apps", "list", "--json"],
                     env={"ORKES_PROVISION_SANDBOX_DIR": str(data_dir)})
    assert apps.returncode == 0, output(apps)


def test_stop_also_stops_a_sandbox_running_in_the_foreground_elsewhere(data_dir: Path) -> None:
    server = subprocess.Popen([PROVISION, "sandbox", "--port", "0", "--data-dir", str(data_dir)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().startswith("sandbox ready at ")
        stopped = provision(["sandbox", "stop", "--data-dir", str(data_dir)])
        assert stopped.returncode == 0, output(stopped)
        assert server.wait(timeout=10) == 0  # SIGTERM: a clean stop
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


def test_a_killed_sandbox_leaves_no_stale_lock(data_dir: Path) -> None:
    assert detach(data_dir).returncode == 0
    info = read_server_info(data_dir)
    assert info is not None
    os.kill(info["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(info["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (data_dir / "server.json").exists()  # it had no chance to remove it
    assert provision(["sandbox", "status", "--data-dir", str(data_dir)]).returncode == 8

    restarted = detach(data_dir)

    assert restarted.returncode == 0, output(restarted)
    assert read_server_info(data_dir)["pid"] != info["pid"]  # type: ignore[index]


def test_detach_on_a_port_in_use_reports_the_servers_own_error_and_leaves_nothing_running(data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = provision(["sandbox", "--detach", "--port", str(port), "--data-dir", str(data_dir)])
    assert result.returncode == 2, output(result)
    assert result.stderr.splitlines()[-2:] == [f"error: port {port} on 127.0.0.1 is already in use",
                                               "hint: pick another with --port, or --port 0 for any free port"]
    assert not is_running(data_dir)


def test_run_options_with_a_subcommand_are_a_usage_error() -> None:
    result = provision(["sandbox", "--port", "9", "stop"])
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == ("error: --port applies to starting a sandbox, "
                                             "not to 'provision sandbox stop'")


def test_server_flag_while_orkes_provision_profile_is_set_names_the_variable(data_dir: Path) -> None:
    assert detach(data_dir).returncode == 0
    env = {"ORKES_PROVISION_SANDBOX_DIR": str(data_dir), "ORKES_PROVISION_PROFILE": "sandbox"}
    result = provision(["--server", "https://prod.example.com", "apps", "list"], env=env)
    assert result.returncode == 3, output(result)
    assert result.stderr.splitlines()[0].startswith("error: ORKES_PROVISION_PROFILE=sandbox selects the local sandbox")
    assert result.stderr.splitlines()[1] == "hint: unset ORKES_PROVISION_PROFILE to use --server, or drop --server"


def test_a_detached_sandbox_that_does_not_answer_in_time_is_not_left_running(data_dir: Path) -> None:
    from orkes_provision.errors import ServerUnavailable
    from orkes_provision.sandbox.config import SandboxConfig
    from orkes_provision.sandbox.control import start_detached

    with pytest.raises(ServerUnavailable, match=r"did not answer /health within 0.01s; it was stopped"):
        start_detached(SandboxConfig(data_dir=data_dir, port=0), timeout=0.01)
    assert not is_running(data_dir)
    assert read_server_info(data_dir) is None
