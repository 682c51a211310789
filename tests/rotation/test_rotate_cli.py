"""``provision keys rotate`` and ``keys prune`` as cron and CI run them: a subprocess, no TTY, JSON out."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.locks import app_lock_name, file_lock
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.sandbox.harness import SandboxProcess
from tests.rotation.helpers import WorkerApp, authenticates, cli_env, json_out, key_statuses, provision


@pytest.fixture
def env(shared_sandbox: SandboxProcess, state_dir: Path, tmp_path: Path) -> dict[str, str]:
    return cli_env(shared_sandbox.admin_env, state_dir, tmp_path / "home")


def secrets_in(text: str, *values: str) -> list[str]:
    return [v[:4] + "..." for v in values if v in text]


def test_rotate_json_report_names_the_keys_the_stores_and_what_was_retired(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp], tmp_path: Path,
        env: dict[str, str], state_dir: Path) -> None:
    stores = [EnvFileStore(tmp_path / "a.env"), EnvFileStore(tmp_path / "b.env")]
    app = worker_app(stores)
    old = app.key

    result = provision(["keys", "rotate", app.name, "--grace", "0s", "--switch-wait", "0", "--json"], env)

    assert result.returncode == 0, result.stderr
    report = json_out(result)
    new_id = report["newKeyId"]
    assert report["result"] == "rotated"
    assert report["resumedFrom"] is None
    assert (report["app"], report["appId"], report["server"]) == (app.name, app.id, server)
    assert report["oldKeyIds"] == [old.key_id]
    assert sorted(d["store"] for d in report["delivered"]) == sorted(s.spec for s in stores)
    assert report["verified"] is True
    assert (report["deactivated"], report["deleted"], report["pendingDeletion"]) == ([old.key_id], [old.key_id], [])
    assert report["graceSeconds"] == 0
    for store in stores:
        stored = store.load(server, app.name)
        assert stored is not None
        assert stored.key_id == new_id
        assert authenticates(admin, stored)
    assert key_statuses(admin, app.id) == {new_id: "ACTIVE"}
    new_secret = stores[0].load(server, app.name).secret.get_secret_value()  # type: ignore[union-attr]
    everything = result.stdout + result.stderr + "".join(
        p.read_text() for p in state_dir.rglob("*") if p.is_file())
    assert secrets_in(everything, old.secret.get_secret_value(), new_secret) == []


def test_rotate_prints_progress_and_a_summary_for_people(
        worker_app: Callable[..., WorkerApp], tmp_path: Path, env: dict[str, str]) -> None:
    app = worker_app([EnvFileStore(tmp_path / "w.env")])

    result = provision(["keys", "rotate", app.name, "--switch-wait", "0"], env)

    assert result.returncode == 0, result.stderr
    assert f"Rotated the key of {app.name}" in result.stdout
    assert f"Deactivated:  {app.key.key_id}" in result.stdout
    assert f"Kept:         {app.key.key_id} (INACTIVE since" in result.stdout
    assert "created key" in result.stderr
    assert f"deactivated key {app.key.key_id}" in result.stderr


def test_prune_deletes_inactive_keys_after_the_grace_and_exits_zero_either_way(
        admin: OrkesClient, worker_app: Callable[..., WorkerApp], tmp_path: Path, env: dict[str, str]) -> None:
    app = worker_app([EnvFileStore(tmp_path / "w.env")])
    rotated = provision(["keys", "rotate", app.name, "--switch-wait", "0", "--json"], env)
    assert rotated.returncode == 0, rotated.stderr
    assert [p["keyId"] for p in json_out(rotated)["pendingDeletion"]] == [app.key.key_id]

    kept = provision(["keys", "prune", app.name, "--json"], env)
    pruned = provision(["keys", "prune", app.name, "--grace", "0s", "--json"], env)
    again = provision(["keys", "prune", app.name, "--grace", "0s", "--json"], env)

    assert (kept.returncode, pruned.returncode, again.returncode) == (0, 0, 0)
    assert json_out(kept)["deleted"] == []
    assert [p["keyId"] for p in json_out(kept)["pendingDeletion"]] == [app.key.key_id]
    assert json_out(pruned)["deleted"] == [app.key.key_id]
    assert json_out(again)["deleted"] == []
    assert app.key.key_id not in key_statuses(admin, app.id)


def test_a_second_rotation_exits_12_while_another_holds_the_lock(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp], tmp_path: Path,
        env: dict[str, str]) -> None:
    app = worker_app([EnvFileStore(tmp_path / "w.env")])

    with file_lock(app_lock_name(server, app.name)):
        result = provision(["keys", "rotate", app.name, "--switch-wait", "0", "--json"], env)

    assert result.returncode == 12
    assert json.loads(result.stdout)["error"] == "locked"  # --json: the error is the outcome, on stdout
    assert key_statuses(admin, app.id) == {app.key.key_id: "ACTIVE"}


@pytest.mark.parametrize(("args", "message"), [
    (["--grace", "soon"], "is not a duration"),
    (["--store", "json", "--json"], "--store json prints the new secret"),
])
def test_bad_options_exit_2_before_anything_changes(
        admin: OrkesClient, worker_app: Callable[..., WorkerApp], tmp_path: Path, env: dict[str, str],
        args: list[str], message: str) -> None:
    app = worker_app([EnvFileStore(tmp_path / "w.env")])

    result = provision(["keys", "rotate", app.name, "--switch-wait", "0", *args], env)

    assert result.returncode == 2
    assert message in result.stdout + result.stderr  # on stdout under --json
    assert key_statuses(admin, app.id) == {app.key.key_id: "ACTIVE"}


def test_after_provision_app_a_rotation_leaves_a_working_new_key_in_the_env_file_and_one_active_key(
        admin: OrkesClient, server: str, app_name: str, tmp_path: Path, env: dict[str, str]) -> None:
    env_store = EnvFileStore(tmp_path / "worker.env")
    made = provision(["app", app_name, "--worker", "--grant", "greetings", "--register-tasks",
                      "--store", env_store.spec, "--json"], env)
    assert made.returncode == 0, made.stderr
    app_id, old_id = json_out(made)["appId"], json_out(made)["keyId"]

    result = provision(["keys", "rotate", app_name, "--grace", "0s", "--switch-wait", "0", "--json"], env)

    assert result.returncode == 0, result.stderr
    stored = env_store.load(server, app_name)
    assert stored is not None
    assert stored.key_id == json_out(result)["newKeyId"] != old_id
    assert authenticates(admin, stored)
    assert key_statuses(admin, app_id) == {stored.key_id: "ACTIVE"}
    doctor = provision(["doctor", app_name, "--task", "greetings", "--store", env_store.spec, "--json"], env)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert json_out(doctor)["ok"] is True
