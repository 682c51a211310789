"""``provision doctor`` names each missing piece; every bad input gets a one-line error, a hint
and its exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from orkes_provision.credentials.stores.envfile import parse_env
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials, Target, app_subject
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision

CARD = ["app", "greetings-worker", "--worker", "--grant", "greetings", "--register-tasks",
        "--store", "env-file:./w.env"]
DOCTOR = ["doctor", "greetings-worker", "--task", "greetings", "--store", "env-file:./w.env"]


@pytest.fixture
def provisioned(sandbox: SandboxProcess, tmp_path: Path) -> tuple[OrkesClient, str, str]:
    result = provision(CARD, env=sandbox.admin_env, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    client = OrkesClient(Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret))
    app_id = next(a.id for a in client.list_applications() if a.name == "greetings-worker")
    key_id = parse_env((tmp_path / "w.env").read_text())["CONDUCTOR_AUTH_KEY"]
    return client, app_id, key_id


def doctor(sandbox: SandboxProcess, cwd: Path) -> tuple[int, str]:
    result = provision(DOCTOR, env=sandbox.admin_env, cwd=cwd)
    return result.returncode, output(result)


def test_doctor_passes_on_a_provisioned_worker(sandbox: SandboxProcess, tmp_path: Path,
                                               provisioned: tuple[OrkesClient, str, str]) -> None:
    code, text = doctor(sandbox, tmp_path)
    assert code == 0, text
    assert "All checks passed" in text


def test_doctor_names_a_removed_worker_role(sandbox: SandboxProcess, tmp_path: Path,
                                            provisioned: tuple[OrkesClient, str, str]) -> None:
    client, app_id, _ = provisioned
    client.remove_role(app_id, "WORKER")
    code, text = doctor(sandbox, tmp_path)
    assert code == 11
    assert "lacks the WORKER role" in text
    assert "fix: provision app greetings-worker --worker" in text


def test_doctor_names_a_revoked_grant(sandbox: SandboxProcess, tmp_path: Path,
                                      provisioned: tuple[OrkesClient, str, str]) -> None:
    client, app_id, _ = provisioned
    client.revoke(app_subject(app_id), Target(type="TASK_DEF", id="greetings"), ["EXECUTE"])
    code, text = doctor(sandbox, tmp_path)
    assert code == 11
    assert "lacks EXECUTE on task greetings" in text
    assert "fix: provision grant greetings-worker greetings" in text


def test_doctor_names_a_deactivated_key(sandbox: SandboxProcess, tmp_path: Path,
                                        provisioned: tuple[OrkesClient, str, str]) -> None:
    client, app_id, key_id = provisioned
    client.toggle_key(app_id, key_id)
    code, text = doctor(sandbox, tmp_path)
    assert code == 11
    assert f"key {key_id} is INACTIVE" in text
    assert f"fix: provision keys activate greetings-worker {key_id}" in text


def test_doctor_names_a_missing_task_definition(sandbox: SandboxProcess, tmp_path: Path,
                                                provisioned: tuple[OrkesClient, str, str]) -> None:
    client, _, _ = provisioned
    client.delete_task_def("greetings")
    code, text = doctor(sandbox, tmp_path)
    assert code == 11
    assert "task definition missing: greetings" in text
    assert "--register-tasks" in text


def assert_one_line_error(result_text: str, message: str, hint: str) -> None:
    lines = [line for line in result_text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    hints = [line for line in lines if line.startswith("hint: ")]
    assert len(errors) == 1 and message in errors[0], result_text
    assert len(hints) == 1 and hint in hints[0], result_text
    assert "Traceback" not in result_text


def test_rejected_provisioning_key(sandbox: SandboxProcess, tmp_path: Path) -> None:
    env = dict(sandbox.admin_env, CONDUCTOR_AUTH_SECRET="not-the-secret")
    result = provision(CARD, env=env, cwd=tmp_path)
    assert result.returncode == 4
    assert_one_line_error(result.stderr, f"rejected key {sandbox.admin_key_id}", "key id and secret")
    assert "not-the-secret" not in output(result)


def test_key_without_the_needed_role_is_told_which_role(sandbox: SandboxProcess, tmp_path: Path) -> None:
    client = OrkesClient(Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret))
    limited = client.create_application("limited")
    key = client.create_key(limited.id)
    env = {"CONDUCTOR_SERVER_URL": sandbox.url, "CONDUCTOR_AUTH_KEY": key.id,
           "CONDUCTOR_AUTH_SECRET": key.secret.get_secret_value()}
    result = provision(["app", "other", "--role", "METADATA_API", "--store", "env-file:./w.env"], env=env,
                       cwd=tmp_path)
    assert result.returncode == 5, output(result)
    assert_one_line_error(result.stderr, "permission", "needs the ADMIN role")


def test_unreachable_server(tmp_path: Path) -> None:
    env = {"CONDUCTOR_SERVER_URL": "http://127.0.0.1:9/api", "CONDUCTOR_AUTH_KEY": "k", "CONDUCTOR_AUTH_SECRET": "s"}
    result = provision(CARD, env=env, cwd=tmp_path)
    assert result.returncode == 8
    assert_one_line_error(result.stderr, "127.0.0.1:9", "server")


@pytest.mark.parametrize(("server", "message", "hint"), [
    ("not a url", "not a server URL", "https://"),
    ("ftp://orkes.example.com", "not a server URL", "https://"),
    ("http://orkes.example.com/api", "plain http", "--insecure-http"),
])
def test_bad_server_urls_are_refused_before_any_request(tmp_path: Path, server: str, message: str,
                                                        hint: str) -> None:
    env = {"CONDUCTOR_AUTH_KEY": "k", "CONDUCTOR_AUTH_SECRET": "s"}
    result = provision(["--server", server, *CARD], env=env, cwd=tmp_path)
    assert result.returncode == 2, output(result)
    assert_one_line_error(result.stderr, message, hint)


def test_unwritable_env_file_path_fails_before_any_write(sandbox: SandboxProcess, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    mark = sandbox.mark()
    result = provision([*CARD[:-2], "--store", "env-file:./a-file/w.env"], env=sandbox.admin_env, cwd=tmp_path)
    assert result.returncode == 10, output(result)
    assert_one_line_error(result.stderr, "a-file/w.env", "")
    assert sandbox.write_requests(since=mark) == []


def test_unknown_role(sandbox: SandboxProcess, tmp_path: Path) -> None:
    result = provision(["app", "w", "--role", "WROKER", "--store", "env-file:./w.env"], env=sandbox.admin_env,
                       cwd=tmp_path)
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "unknown role WROKER", "--help")


def test_empty_task_name(sandbox: SandboxProcess, tmp_path: Path) -> None:
    result = provision(["app", "w", "--worker", "--grant", "", "--store", "env-file:./w.env"], env=sandbox.admin_env,
                       cwd=tmp_path)
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "task name", "--grant greetings")


def test_no_credentials_at_all(tmp_path: Path) -> None:
    result = provision(CARD, cwd=tmp_path)
    assert result.returncode == 3
    assert_one_line_error(result.stderr, "", "CONDUCTOR_")
