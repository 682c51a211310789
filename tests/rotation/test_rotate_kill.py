"""Kill tests: a rotation SIGKILLed at any step boundary is finished by the next run.

The kill comes from the test hook ``ORKES_PROVISION_TEST_STOP_AFTER=<point>``: the process sends
itself SIGKILL right after that step's progress is on disk, or (``store-write``) right after the
first store was written and before that was recorded; and once from the test during the switch
wait. After one rerun: exactly one key, ACTIVE, in every store it was delivered to, accepted by the
server; no key created beyond the one needed; nothing secret on disk outside the stores. Each
point is a cell of the kill table printed at the end of the run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.rotation.record import KILL_POINTS, STEPS, STOP_AFTER_VARIABLE, load_progress
from orkes_provision.sandbox.harness import SandboxProcess
from tests import kill_cells
from tests.cli import start
from tests.rotation.helpers import PROVISION, REPO, WorkerApp, authenticates, cli_env, json_out, key_statuses, provision

ROTATE = ["keys", "rotate", "--grace", "0s", "--switch-wait", "0", "--json"]


@pytest.fixture
def env(shared_sandbox: SandboxProcess, state_dir: Path, tmp_path: Path) -> dict[str, str]:
    return cli_env(shared_sandbox.admin_env, state_dir, tmp_path / "home")


def created_keys(state_dir: Path, app: str) -> list[str]:
    """Key ids the audit log says were created for ``app`` (the first delivery included)."""
    lines = [json.loads(line) for line in (state_dir / "audit.log").read_text().splitlines()]
    return [e["keyId"] for e in lines if e.get("app") == app and e["action"] == "create_key" and e["result"] == "ok"]


def assert_converged(admin: OrkesClient, server: str, app: WorkerApp, stores: list[EnvFileStore]) -> str:
    """One ACTIVE key and no other, in every store, accepted by the server; returns its id."""
    statuses = key_statuses(admin, app.id)
    assert list(statuses.values()) == ["ACTIVE"], statuses
    (key_id,) = statuses
    for store in stores:
        stored = store.load(server, app.name)
        assert stored is not None
        assert stored.key_id == key_id
        assert authenticates(admin, stored)
    return key_id


def assert_no_secret_outside_stores(state_dir: Path, *secrets: str) -> None:
    for path in state_dir.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert not [s for s in secrets if s in text], f"a secret is in {path}"


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_rotation_killed_at_each_step_boundary_converges_on_rerun(
        point: str, admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp], tmp_path: Path,
        env: dict[str, str], state_dir: Path) -> None:
    cell = kill_cells.record("provision keys rotate (2 env files)", point)
    stores = [EnvFileStore(tmp_path / "a.env"), EnvFileStore(tmp_path / "b.env")]
    app = worker_app(stores)

    stopped = provision([*ROTATE, app.name], {**env, STOP_AFTER_VARIABLE: point})

    assert stopped.returncode == -signal.SIGKILL, stopped.stderr
    progress = load_progress(server, app.name)
    assert progress is not None
    step = "created" if point == "store-write" else point
    assert progress.step == step
    if point == "store":
        assert len(progress.stores_done) == 1  # stopped between the two stores
    if point == "store-write":
        # The first store holds the new key, and nothing says so: the rerun must find it there.
        assert progress.stores_done == []
        held = [s.load(server, app.name).key_id for s in stores]  # type: ignore[union-attr]
        assert sorted(held) == sorted([progress.new_key_id, app.key.key_id])
    if step == "creating":
        # As if the create request reached the server and the process died before recording
        # the answer: a key exists whose secret nobody has.
        admin.create_key(app.id)
    secrets = [app.key.secret.get_secret_value()] + [
        s.load(server, app.name).secret.get_secret_value() for s in stores]  # type: ignore[union-attr]
    assert_no_secret_outside_stores(state_dir, *secrets)

    rerun = provision([*ROTATE, app.name], env)

    cell.rerun = f"exit {rerun.returncode}"
    assert rerun.returncode == 0, rerun.stderr
    report = json_out(rerun)
    assert (report["result"], report["resumedFrom"]) == ("resumed", step)
    statuses = key_statuses(admin, app.id)
    cell.active_keys = str(list(statuses.values()).count("ACTIVE"))
    final = assert_converged(admin, server, app, stores)
    cell.stores, cell.authenticates = "a.env, b.env", "yes"
    assert report["newKeyId"] == final
    assert final != app.key.key_id
    created = created_keys(state_dir, app.name)
    if point == "store-write" or STEPS.index(step) >= STEPS.index("store"):
        # The secret was already in a store: the rerun finished with that key, creating none.
        assert created == [app.key.key_id, progress.new_key_id]
        assert final == progress.new_key_id
    elif step == "created":
        # The secret died with the process: that key was deleted and exactly one more made.
        assert created == [app.key.key_id, progress.new_key_id, final]
    else:
        assert created == [app.key.key_id, final]
    assert load_progress(server, app.name) is None
    assert_no_secret_outside_stores(state_dir, *secrets)
    cell.outcome = "ok"


def test_a_rotation_killed_by_sigkill_during_the_switch_wait_converges_on_rerun(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp], tmp_path: Path,
        env: dict[str, str], state_dir: Path) -> None:
    stores = [EnvFileStore(tmp_path / "w.env")]
    app = worker_app(stores)
    proc = start([PROVISION, "keys", "rotate", app.name, "--grace", "0s", "--switch-wait", "60"],
                 env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stderr is not None
        for _ in range(200):  # bounded: the progress lines come within seconds
            line = proc.stderr.readline().decode()
            if line.startswith("waiting ") or not line:
                break
        assert line.startswith("waiting "), "the rotation never reached the switch wait"
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    progress = load_progress(server, app.name)
    assert progress is not None
    assert progress.step == "verified"
    assert key_statuses(admin, app.id)[app.key.key_id] == "ACTIVE"  # killed before the old key was touched

    rerun = provision([*ROTATE, app.name], env)

    assert rerun.returncode == 0, rerun.stderr
    final = assert_converged(admin, server, app, stores)
    assert final == progress.new_key_id
    assert json_out(rerun)["deleted"] == [app.key.key_id]
