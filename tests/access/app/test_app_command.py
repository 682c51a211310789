"""``provision app`` against a fresh sandbox: the end state, idempotency, the keyring store."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from orkes_provision.credentials.stores.envfile import parse_env
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials, TaskDef
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision


def read_env_file(path: Path) -> dict[str, str]:
    return parse_env(path.read_text())


def admin_client(sandbox: SandboxProcess) -> OrkesClient:
    return OrkesClient(Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret))


def env_of(sandbox: SandboxProcess) -> dict[str, str]:
    return dict(sandbox.admin_env)


CARD = ["app", "greetings-worker", "--worker", "--grant", "greetings", "--register-tasks"]


def test_app_creates_exactly_the_worker_setup_and_a_0600_env_file(sandbox: SandboxProcess, tmp_path: Path) -> None:
    result = provision([*CARD, "--store", "env-file:./w.env"], env=env_of(sandbox), cwd=tmp_path)
    assert result.returncode == 0, output(result)
    env_file = tmp_path / "w.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = read_env_file(env_file)
    with admin_client(sandbox) as client:
        apps = [a for a in client.list_applications() if a.name == "greetings-worker"]
        assert len(apps) == 1
        app_id = apps[0].id
        assert client.get_app_user(app_id).role_names == {"WORKER"}
        keys = client.list_keys(app_id)
        assert [(k.id, k.status) for k in keys] == [(values["CONDUCTOR_AUTH_KEY"], "ACTIVE")]
        granted = {(g.target.type, g.target.id): set(g.access) for g in client.get_user_permissions(f"app:{app_id}")}
        assert "EXECUTE" in granted[("TASK_DEF", "greetings")]
        assert client.exchange_token(values["CONDUCTOR_AUTH_KEY"], SecretStr(values["CONDUCTOR_AUTH_SECRET"]))
    assert values["CONDUCTOR_SERVER_URL"] == sandbox.url
    assert values["CONDUCTOR_AUTH_SECRET"] not in output(result)
    assert "provision run --app greetings-worker" in result.stdout


def test_second_run_makes_zero_writes_and_says_nothing_changed(sandbox: SandboxProcess, tmp_path: Path) -> None:
    first = provision([*CARD, "--store", "env-file:./w.env"], env=env_of(sandbox), cwd=tmp_path)
    assert first.returncode == 0, output(first)
    before = (tmp_path / "w.env").read_text()
    mark = sandbox.mark()
    second = provision([*CARD, "--store", "env-file:./w.env", "--json"], env=env_of(sandbox), cwd=tmp_path)
    assert second.returncode == 0, output(second)
    assert sandbox.write_requests(since=mark) == []
    report = json.loads(second.stdout)
    assert report["changed"] is False
    assert report["changes"] == []
    assert (tmp_path / "w.env").read_text() == before
    human = provision([*CARD, "--store", "env-file:./w.env"], env=env_of(sandbox), cwd=tmp_path)
    assert "No changes" in human.stdout


def test_dry_run_lists_the_changes_and_writes_nothing(sandbox: SandboxProcess, tmp_path: Path) -> None:
    with admin_client(sandbox) as client:
        client.register_task_defs([TaskDef(name="greetings")])
    mark = sandbox.mark()
    result = provision(["app", "--worker", "--grant", "greetings", "--store", "env-file:./w.env", "--dry-run"],
                       env=env_of(sandbox), cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert sandbox.write_requests(since=mark) == []
    assert not (tmp_path / "w.env").exists()
    for line in ("+ create application greetings-worker", "+ add role WORKER to greetings-worker",
                 "+ grant EXECUTE on TASK_DEF greetings to greetings-worker"):
        assert line in result.stdout


def test_missing_task_stops_before_any_write_and_names_the_fix(sandbox: SandboxProcess, tmp_path: Path) -> None:
    mark = sandbox.mark()
    result = provision(["app", "--worker", "--grant", "nope", "--store", "env-file:./w.env"],
                       env=env_of(sandbox), cwd=tmp_path)
    assert result.returncode == 6  # not found, as the exit-code table says
    assert "task definition not found on the server: nope" in result.stderr
    assert "--register-tasks" in result.stderr
    assert sandbox.write_requests(since=mark) == []


def test_duplicate_names_stop_and_app_id_picks_one(sandbox: SandboxProcess, tmp_path: Path) -> None:
    with admin_client(sandbox) as client:
        first = client.create_application("dup")
        client.create_application("dup")
        client.register_task_defs([TaskDef(name="greetings")])
    mark = sandbox.mark()
    refused = provision(["app", "dup", "--worker", "--store", "env-file:./w.env"], env=env_of(sandbox), cwd=tmp_path)
    assert refused.returncode == 7
    assert first.id in refused.stderr and "--app-id" in refused.stderr
    assert sandbox.write_requests(since=mark) == []
    picked = provision(["app", "dup", "--worker", "--app-id", first.id, "--store", "env-file:./w.env"],
                       env=env_of(sandbox), cwd=tmp_path)
    assert picked.returncode == 0, output(picked)
    with admin_client(sandbox) as client:
        assert client.get_app_user(first.id).role_names == {"WORKER"}


def test_new_key_replaces_the_stored_key_and_says_how_to_retire_the_old(sandbox: SandboxProcess,
                                                                       tmp_path: Path) -> None:
    assert provision([*CARD, "--store", "env-file:./w.env"], env=env_of(sandbox), cwd=tmp_path).returncode == 0
    old = read_env_file(tmp_path / "w.env")["CONDUCTOR_AUTH_KEY"]
    again = provision([*CARD, "--store", "env-file:./w.env", "--new-key"], env=env_of(sandbox), cwd=tmp_path)
    assert again.returncode == 0, output(again)
    new = read_env_file(tmp_path / "w.env")["CONDUCTOR_AUTH_KEY"]
    assert new != old
    assert f"provision keys deactivate greetings-worker {old} --yes" in again.stdout
    assert old in again.stdout


@pytest.mark.secret_service
def test_card_command_stores_the_key_in_the_real_keyring(sandbox: SandboxProcess, tmp_path: Path) -> None:
    import keyring

    with admin_client(sandbox) as client:
        client.register_task_defs([TaskDef(name="greetings")])
    result = provision(["app", "--worker", "--grant", "greetings"], env=env_of(sandbox), cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert "greetings-worker" in result.stderr  # the chosen name is printed
    stored = keyring.get_password(f"orkes-provision:{sandbox.url}", "greetings-worker")
    assert stored is not None
    entry = json.loads(stored)
    with admin_client(sandbox) as client:
        app = next(a for a in client.list_applications() if a.name == "greetings-worker")
        assert [k.id for k in client.list_keys(app.id)] == [entry["keyId"]]
        assert client.exchange_token(entry["keyId"], SecretStr(entry["secret"]))
    assert entry["secret"] not in output(result)
    again = provision(["app", "--worker", "--grant", "greetings"], env=env_of(sandbox), cwd=tmp_path)
    assert again.returncode == 0 and "No changes" in again.stdout


def test_env_file_write_leaves_no_temporary_file_behind(sandbox: SandboxProcess, tmp_path: Path) -> None:
    result = provision([*CARD, "--store", "env-file:./w.env"], env=env_of(sandbox), cwd=tmp_path)
    assert result.returncode == 0, output(result)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "w.env"]
    assert leftovers == []


def test_apps_delete_refuses_the_application_of_its_own_key_and_the_sandbox_keeps_working(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    mark = sandbox.mark()
    result = provision(["apps", "delete", "sandbox-admin", "--yes"], env=env_of(sandbox), cwd=tmp_path)
    assert result.returncode == 7, output(result)
    error, hint = result.stderr.splitlines()
    assert error.startswith("error: refusing to delete application sandbox-admin (")
    assert error.endswith(f"): the key this command uses ({sandbox.admin_key_id}) belongs to it")
    assert hint == ("hint: deleting it would revoke that key at once and lock this profile out; "
                    "do it with another ADMIN application's key, or add --allow-self-lockout if this is meant")
    assert sandbox.write_requests(mark) == []
    as_json = provision(["apps", "delete", "sandbox-admin", "--yes", "--json"], env=env_of(sandbox), cwd=tmp_path)
    assert json.loads(as_json.stdout)["exitCode"] == 7
    with admin_client(sandbox) as client:
        assert any(a.name == "sandbox-admin" for a in client.list_applications())
