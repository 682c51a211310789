"""Rotation with a real ``provision run --supervise`` in front of a stand-in worker (a shell command).

The stand-in keeps running, or, for the failure case, refuses any key but the first one, as a
worker whose new configuration is broken would. The supervisor runs in its own process group,
killed at the end of each test.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.rotation.record import load_progress
from orkes_provision.sandbox.harness import SandboxProcess
from orkes_provision.workers.status import supervised_workers
from tests.cli import process_group
from tests.rotation.helpers import PROVISION, REPO, WorkerApp, cli_env, json_out, key_statuses, provision

pytestmark = pytest.mark.slow

# Runs while its key is the first one; with any other key it exits 3 at once.
PICKY_WORKER = 'if [ "$CONDUCTOR_AUTH_KEY" = "$FIRST_KEY" ] || [ -z "$FIRST_KEY" ]; then exec sleep 120; fi; exit 3'


@pytest.fixture
def env(shared_sandbox: SandboxProcess, state_dir: Path, tmp_path: Path) -> dict[str, str]:
    return cli_env(shared_sandbox.admin_env, state_dir, tmp_path / "home")


@contextlib.contextmanager
def supervised(app: WorkerApp, store: EnvFileStore, env: dict[str, str], log: Path,
               first_key: str = "") -> Iterator[subprocess.Popen[bytes]]:
    # --no-agent: these are about the supervisor restarting its worker with the new key.
    cmd = [PROVISION, "run", "--no-agent", "--app", app.name, "--store", store.spec, "--no-preflight", "--supervise",
           "--", "sh", "-c", PICKY_WORKER]
    with process_group(cmd, env={**env, "FIRST_KEY": first_key}, cwd=REPO, log=log, append=False,
                       stop_timeout=15) as proc:
        yield proc


def wait_for_supervisor(server: str, app: WorkerApp, key_id: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if any(key_id in s.keys_in_use for s in supervised_workers(server, app.name)):
            return
        time.sleep(0.1)
    raise AssertionError("the supervisor never published its worker")


def test_rotation_waits_for_the_supervised_worker_to_switch_then_retires_the_old_key(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp], tmp_path: Path,
        env: dict[str, str]) -> None:
    store = EnvFileStore(tmp_path / "worker.env")
    app = worker_app([store])
    with supervised(app, store, env, tmp_path / "supervisor.log"):
        wait_for_supervisor(server, app, app.key.key_id)

        result = provision(["keys", "rotate", app.name, "--grace", "0s", "--switch-wait", "8", "--json"], env)

        assert result.returncode == 0, result.stderr
        new_id = json_out(result)["newKeyId"]
        assert [s.keys_in_use for s in supervised_workers(server, app.name)] == [{new_id}]
    assert key_statuses(admin, app.id) == {new_id: "ACTIVE"}
    assert "starting new worker before stopping old" in (tmp_path / "supervisor.log").read_text()


def test_a_supervised_worker_that_cannot_switch_keeps_the_old_key_active(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp], tmp_path: Path,
        env: dict[str, str]) -> None:
    store = EnvFileStore(tmp_path / "worker.env")
    app = worker_app([store])
    with supervised(app, store, env, tmp_path / "supervisor.log", first_key=app.key.key_id) as proc:
        wait_for_supervisor(server, app, app.key.key_id)

        refused = provision(["keys", "rotate", app.name, "--grace", "0s", "--switch-wait", "5"], env)

        assert refused.returncode == 11, refused.stderr
        assert f"still runs the old key {app.key.key_id}" in refused.stderr
        assert key_statuses(admin, app.id)[app.key.key_id] == "ACTIVE"
        assert proc.poll() is None  # the old worker kept running
        assert load_progress(server, app.name).step == "verified"  # type: ignore[union-attr]
    # The broken supervisor is gone (stopped above): the rerun finishes the rotation.
    rerun = provision(["keys", "rotate", app.name, "--grace", "0s", "--switch-wait", "0", "--json"], env)
    assert rerun.returncode == 0, rerun.stderr
    assert key_statuses(admin, app.id) == {json_out(rerun)["newKeyId"]: "ACTIVE"}


def test_the_switch_wait_ends_once_the_supervised_worker_runs_the_new_key_with_a_countdown_on_stderr(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp], tmp_path: Path,
        env: dict[str, str]) -> None:
    store = EnvFileStore(tmp_path / "worker.env")
    app = worker_app([store])
    with supervised(app, store, env, tmp_path / "supervisor.log"):
        wait_for_supervisor(server, app, app.key.key_id)

        result = provision(["keys", "rotate", app.name, "--grace", "0s", "--switch-wait", "60", "--json"], env)

        assert result.returncode == 0, result.stderr
        report = json_out(result)
        print(f"switch wait ended after {report['switchWaitedSeconds']}s of 60s")
        # The supervisor re-reads its store every 2 s and lets the new worker settle 2 s: about 4-5 s.
        assert report["switchWaitedSeconds"] < 12
        assert [s.keys_in_use for s in supervised_workers(server, app.name)] == [{report["newKeyId"]}]
    assert key_statuses(admin, app.id) == {report["newKeyId"]: "ACTIVE"}
    countdown = [line for line in result.stderr.splitlines() if "s left)" in line]
    assert countdown[0] == (f"waiting for the supervised workers of {app.name} to switch to key "
                            f"{report['newKeyId']}: 0 of 1 switched (60s left)")
