"""Rotation notices a local process still on the old key, such as a worker whose supervisor was
SIGKILLed, and keeps the old key (exit 11) instead of cutting it off (issue 20)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.sandbox.client import SandboxClient
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import stop_group
from tests.rotation.helpers import WorkerApp, cli_env, key_statuses, provision


def test_a_process_holding_the_old_key_stops_the_rotation_with_exit_11_and_the_old_key_active(
        shared_sandbox: SandboxProcess, admin: SandboxClient, worker_app: Callable[..., WorkerApp], tmp_path: Path,
        state_dir: Path) -> None:
    app = worker_app([EnvFileStore(tmp_path / "w.env")])
    env = cli_env(shared_sandbox.admin_env, state_dir, tmp_path / "home")
    # An orphaned worker: started with the key in its environment, its supervisor long gone.
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True,
                              env={"CONDUCTOR_AUTH_KEY": app.key.key_id, "PATH": "/usr/bin:/bin"})
    try:
        refused = provision(["keys", "rotate", app.name, "--grace", "0s", "--switch-wait", "0"], env)
        assert refused.returncode == 11, refused.stderr
        assert f"process {orphan.pid}" in refused.stderr and app.key.key_id in refused.stderr, refused.stderr
        assert f"kill {orphan.pid}" in refused.stderr
        assert key_statuses(admin, app.id)[app.key.key_id] == "ACTIVE"
    finally:
        stop_group(orphan)
    finished = provision(["keys", "rotate", app.name, "--grace", "0s", "--switch-wait", "0"], env)
    assert finished.returncode == 0, finished.stderr
    assert app.key.key_id not in key_statuses(admin, app.id) or \
        key_statuses(admin, app.id)[app.key.key_id] == "INACTIVE"
