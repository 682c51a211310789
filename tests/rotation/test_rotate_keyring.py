"""Rotation into the real Secret Service (run under scripts/with-keyring, as 'make test' and CI do)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.credentials.stores.keyring_store import KeyringStore
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.sandbox.harness import SandboxProcess
from tests.rotation.helpers import WorkerApp, authenticates, cli_env, json_out, key_statuses, provision

pytestmark = pytest.mark.secret_service


@pytest.fixture
def keyring_store(server: str, app_name: str) -> Iterator[KeyringStore]:
    store = KeyringStore()
    yield store
    store.delete(server, app_name)


def test_rotation_updates_the_keyring_and_the_env_file_alike(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp], keyring_store: KeyringStore,
        shared_sandbox: SandboxProcess, state_dir: Path, tmp_path: Path) -> None:
    env_store = EnvFileStore(tmp_path / "worker.env")
    app = worker_app([keyring_store, env_store])
    env = cli_env(shared_sandbox.admin_env, state_dir, tmp_path / "home")

    result = provision(["keys", "rotate", app.name, "--grace", "0s", "--switch-wait", "0", "--json"], env)

    assert result.returncode == 0, result.stderr
    report = json_out(result)
    assert sorted(d["store"] for d in report["delivered"]) == sorted(["keyring", env_store.spec])
    in_keyring = keyring_store.load(server, app.name)
    in_file = env_store.load(server, app.name)
    assert in_keyring is not None
    assert in_file is not None
    assert in_keyring.key_id == in_file.key_id == report["newKeyId"] != app.key.key_id
    assert in_keyring.secret.get_secret_value() == in_file.secret.get_secret_value()
    assert authenticates(admin, in_keyring)
    assert key_statuses(admin, app.id) == {report["newKeyId"]: "ACTIVE"}
