"""A server that caps keys per application (the sandbox: 5, the stricter choice where Orkes says
nothing) refuses the rotation's new key: one line says how to make room, and the rerun finishes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.sandbox.harness import SandboxProcess
from tests.rotation.helpers import WorkerApp, cli_env, json_out, key_statuses, provision


@pytest.fixture
def env(shared_sandbox: SandboxProcess, state_dir: Path, tmp_path: Path) -> dict[str, str]:
    return cli_env(shared_sandbox.admin_env, state_dir, tmp_path / "home")


def test_a_refused_key_during_rotation_says_how_to_make_room_and_the_rerun_finishes(
        admin: OrkesClient, worker_app: Callable[..., WorkerApp], tmp_path: Path, env: dict[str, str]) -> None:
    app = worker_app([EnvFileStore(tmp_path / "w.env")])
    spare = []
    for _ in range(4):  # the cap is 5: the worker's key and four INACTIVE ones left by earlier rotations
        created = admin.create_key(app.id)
        admin.toggle_key(app.id, created.id)
        spare.append(created.id)

    refused = provision(["keys", "rotate", app.name, "--switch-wait", "0"], env)

    assert refused.returncode == 7, refused.stderr
    error, hint = refused.stderr.strip().splitlines()[-2:]
    assert error.startswith(f"error: the server refused a new key for {app.name}: it holds 5 key(s), 4 INACTIVE")
    assert hint == (f"hint: make room with 'provision keys delete {app.name} {spare[0]}' ('provision keys list "
                    f"{app.name}' shows the INACTIVE ones), then rerun")
    assert key_statuses(admin, app.id)[app.key.key_id] == "ACTIVE"  # nothing changed

    deleted = provision(["keys", "delete", app.name, spare[0], "--yes"], env)
    assert deleted.returncode == 0, deleted.stderr
    rerun = provision(["keys", "rotate", app.name, "--switch-wait", "0", "--json"], env)

    assert rerun.returncode == 0, rerun.stderr
    report = json_out(rerun)
    assert report["result"] == "resumed"  # the refused run's record, picked up where it stopped
    statuses = key_statuses(admin, app.id)
    assert (statuses[report["newKeyId"]], statuses[app.key.key_id]) == ("ACTIVE", "INACTIVE")
