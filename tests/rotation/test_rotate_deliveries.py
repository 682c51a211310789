"""Rotation and where keys were delivered (issue 12, items 3 and 4): no key is retired unless every
place it went got its successor or the user said so, and a resumed rotation finds the new key in
any store of the rotation."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from orkes_provision.credentials.stores import CredentialStore, StoredKey
from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.rotation.record import load_progress
from orkes_provision.rotation.rotate import rotate_key
from orkes_provision.sandbox.harness import SandboxProcess
from tests.rotation.helpers import WorkerApp, authenticates, cli_env, json_out, key_statuses, provision

ROTATE = ["keys", "rotate", "--grace", "0s", "--switch-wait", "0"]


class Killed(BaseException):
    """Stands for SIGKILL inside the library: nothing after it runs, no handler catches it."""


class DiesAfterWriting(EnvFileStore):
    """Writes the key, then the process "dies" before the rotation can record the write."""

    def save(self, key: StoredKey) -> None:
        super().save(key)
        raise Killed


@pytest.fixture
def env(shared_sandbox: SandboxProcess, state_dir: Path, tmp_path: Path) -> dict[str, str]:
    return cli_env(shared_sandbox.admin_env, state_dir, tmp_path / "home")


def test_a_store_written_but_not_recorded_is_found_by_the_rerun_not_deleted(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp], tmp_path: Path) -> None:
    path = tmp_path / "w.env"
    app = worker_app([EnvFileStore(path)])
    dying: Callable[[str], CredentialStore] = lambda spec: DiesAfterWriting(path)  # noqa: E731
    with pytest.raises(Killed):
        rotate_key(admin, server=server, app=app.name, grace=timedelta(0), switch_wait=0, opener=dying)
    progress = load_progress(server, app.name)
    assert progress is not None and progress.step == "created" and progress.stores_done == []
    in_store = EnvFileStore(path).load(server, app.name)
    assert in_store is not None and in_store.key_id == progress.new_key_id  # a worker may already run on it

    report = rotate_key(admin, server=server, app=app.name, grace=timedelta(0), switch_wait=0)

    assert report.new_key_id == progress.new_key_id  # the key the store held was kept, not deleted
    assert key_statuses(admin, app.id) == {progress.new_key_id: "ACTIVE"}
    assert authenticates(admin, in_store)


def test_rotation_lists_each_key_it_retires_and_where_it_went_before_changing_anything(
        admin: OrkesClient, worker_app: Callable[..., WorkerApp], tmp_path: Path, env: dict[str, str]) -> None:
    app = worker_app([EnvFileStore(tmp_path / "w.env")])

    result = provision([*ROTATE, app.name], env)

    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    listed = next(i for i, line in enumerate(lines) if line.startswith(f"will retire ACTIVE key {app.key.key_id}"))
    assert f"delivered to: env-file:{tmp_path}/w.env (" in lines[listed]
    assert listed < next(i for i, line in enumerate(lines) if line.startswith("created key"))


def test_a_key_delivered_as_json_is_not_retired_unless_told(
        admin: OrkesClient, worker_app: Callable[..., WorkerApp], tmp_path: Path, env: dict[str, str]) -> None:
    app = worker_app([EnvFileStore(tmp_path / "w.env")])
    printed = provision(["keys", "create", app.name, "--store", "json"], env)
    assert printed.returncode == 0, printed.stderr
    piped = json.loads(printed.stdout)["keyId"]
    before = key_statuses(admin, app.id)

    refused = provision([*ROTATE, app.name], env)

    assert refused.returncode == 7, refused.stderr
    assert piped in refused.stderr and "json" in refused.stderr
    assert f"provision keys rotate {app.name} --retire-undelivered" in refused.stderr
    assert key_statuses(admin, app.id) == before  # nothing changed

    told = provision([*ROTATE, app.name, "--retire-undelivered", "--json"], env)

    assert told.returncode == 0, told.stderr
    report = json_out(told)
    assert sorted(report["deactivated"]) == sorted([app.key.key_id, piped])
    assert {r["keyId"]: r["deliveredTo"] for r in report["retiring"]}[piped] == ["json"]


def test_a_key_made_elsewhere_is_not_retired_unless_told(
        admin: OrkesClient, worker_app: Callable[..., WorkerApp], tmp_path: Path, env: dict[str, str]) -> None:
    app = worker_app([EnvFileStore(tmp_path / "w.env")])
    elsewhere = admin.create_key(app.id).id  # another machine, or the Orkes UI

    refused = provision([*ROTATE, app.name], env)

    assert refused.returncode == 7, refused.stderr
    assert f"{elsewhere} (delivered nowhere this machine knows of" in refused.stderr
    assert key_statuses(admin, app.id)[elsewhere] == "ACTIVE"


def test_rotate_into_json_keeps_stdout_for_the_json_alone(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp], tmp_path: Path,
        env: dict[str, str]) -> None:
    app = worker_app([EnvFileStore(tmp_path / "w.env")])

    result = provision([*ROTATE, app.name, "--store", f"env-file:{tmp_path}/w.env", "--store", "json"], env)

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # one JSON document, nothing else: '| jq' works
    assert set(document) == {"server", "app", "keyId", "secret"}
    assert document["keyId"] == EnvFileStore(tmp_path / "w.env").load(server, app.name).key_id  # type: ignore[union-attr]
    assert "Rotated the key" in result.stderr
