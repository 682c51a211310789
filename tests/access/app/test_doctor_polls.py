"""``provision doctor --task T`` says whether a worker polls T, which one and when, and changes nothing.

Against a real sandbox: nobody polling, a plain poll that names its worker id, and a real
conductor-python ``TaskHandler`` worker (its worker id is the host name, as the SDK sends it).
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from orkes_provision.access.doctor import diagnose
from orkes_provision.credentials.stores.envfile import parse_env
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision

CARD = ["app", "greetings-worker", "--worker", "--grant", "greetings", "--register-tasks",
        "--store", "env-file:./w.env"]
DOCTOR = ["doctor", "greetings-worker", "--task", "greetings", "--store", "env-file:./w.env"]


@pytest.fixture
def worker_env(sandbox: SandboxProcess, tmp_path: Path) -> dict[str, str]:
    """``provision app`` run for greetings-worker; the worker's CONDUCTOR_* from its env file."""
    result = provision(CARD, env=sandbox.admin_env, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    return parse_env((tmp_path / "w.env").read_text())


def admin_client(sandbox: SandboxProcess) -> OrkesClient:
    return OrkesClient(Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret))


def poll_as(sandbox: SandboxProcess, env: dict[str, str], worker_id: str) -> None:
    """One batch poll as an SDK worker sends it."""
    token = httpx.post(sandbox.url + "/token", json={"keyId": env["CONDUCTOR_AUTH_KEY"],
                                                     "keySecret": env["CONDUCTOR_AUTH_SECRET"]}).json()["token"]
    response = httpx.get(sandbox.url + "/tasks/poll/batch/greetings", headers={"X-Authorization": token},
                         params={"workerid": worker_id, "count": 1, "timeout": 100})
    assert response.status_code == 200


def test_doctor_says_no_worker_polled_the_task_and_still_passes(sandbox: SandboxProcess, tmp_path: Path,
                                                               worker_env: dict[str, str]) -> None:
    mark = sandbox.mark()
    result = provision(DOCTOR, env=sandbox.admin_env, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert ("info poll: no worker has polled task greetings (a workflow waiting on it stays SCHEDULED)"
            in result.stdout)
    assert "hint: start a worker that polls greetings: provision run --app greetings-worker " in result.stdout
    assert " -- <worker command>" in result.stdout
    # Doctor only reads: no write request, no poll, no workflow started.
    assert sandbox.write_requests(since=mark) == []
    assert not [r for r in sandbox.requests()[mark:] if "/tasks/poll" in r["path"] or "/workflow" in r["path"]]


def test_doctor_names_the_worker_that_polled_and_when(sandbox: SandboxProcess, tmp_path: Path,
                                                     worker_env: dict[str, str]) -> None:
    poll_as(sandbox, worker_env, "worker-7")
    result = provision([*DOCTOR, "--json"], env=sandbox.admin_env, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    report = json.loads(result.stdout)
    [poll] = report["polls"]["greetings"]
    assert (poll["workerId"], poll["domain"]) == ("worker-7", None)
    assert 0 <= poll["secondsAgo"] <= 10
    [finding] = [f for f in report["findings"] if f["check"] == "poll"]
    assert finding["ok"] and finding["info"]
    assert finding["message"] == f"worker worker-7 polled task greetings {poll['secondsAgo']}s ago"
    text = provision(DOCTOR, env=sandbox.admin_env, cwd=tmp_path).stdout
    assert "info poll: worker worker-7 polled task greetings " in text


def test_doctor_says_when_the_last_poll_is_too_old_to_mean_a_running_worker(
        sandbox: SandboxProcess, worker_env: dict[str, str]) -> None:
    poll_as(sandbox, worker_env, "worker-7")
    two_minutes_later = int(time.time() * 1000) + 120_000
    with admin_client(sandbox) as client:
        report = diagnose(client, app="greetings-worker", tasks=["greetings"], key=None, server=sandbox.url,
                          polls=True, now_ms=lambda: two_minutes_later)
    [finding] = [f for f in report.findings if f.check == "poll"]
    assert finding.problem == "no worker polled task greetings in the last 60s (last: worker worker-7 2m ago)"
    assert finding.info and finding.ok


def test_doctor_sees_a_real_conductor_python_worker(sandbox: SandboxProcess, tmp_path: Path,
                                                   worker_env: dict[str, str]) -> None:
    pytest.importorskip("conductor.client", reason="conductor-python (dev extra) is not installed")
    from tests.sandbox.conformance.sdk_support import wait_for, worker_process

    with worker_process(tmp_path, worker_env["CONDUCTOR_SERVER_URL"], worker_env["CONDUCTOR_AUTH_KEY"],
                        worker_env["CONDUCTOR_AUTH_SECRET"]), admin_client(sandbox) as client:
        polls = wait_for(lambda: client.get_poll_data("greetings"), timeout=60)
        result = provision(DOCTOR, env=sandbox.admin_env, cwd=tmp_path)
    assert [p.worker_id for p in polls] == [socket.gethostname()]
    assert result.returncode == 0, output(result)
    assert f"info poll: worker {socket.gethostname()} polled task greetings " in result.stdout
