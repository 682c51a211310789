"""Every key knows its home (issue 12): ``provision app``, ``doctor``, ``grant``, ``worker run`` and
``deploy`` against a sandbox, each test a user's path that failed before the delivery model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orkes_provision.credentials.stores.envfile import parse_env
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials, TaskDef
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision

PROBE = Path(__file__).resolve().parents[2] / "workers" / "env_probe.py"
NO_KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


def admin(sandbox: SandboxProcess) -> OrkesClient:
    return OrkesClient(Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret))


def keys_of(sandbox: SandboxProcess, name: str) -> dict[str, str]:
    with admin(sandbox) as client:
        (app,) = [a for a in client.list_applications() if a.name == name]
        return {k.id: k.status for k in client.list_keys(app.id)}


def env_key(path: Path) -> str:
    return parse_env(path.read_text())["CONDUCTOR_AUTH_KEY"]


def ok(sandbox: SandboxProcess, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    result = provision(list(args), env={**sandbox.admin_env, **env}, cwd=cwd)
    assert result.returncode == 0, output(result)
    return result


@pytest.fixture
def tasks(sandbox: SandboxProcess) -> None:
    with admin(sandbox) as client:
        client.register_task_defs([TaskDef(name="greetings"), TaskDef(name="other-task")])


# ----- 1. an env file holding another application's key -------------------------------------------------

def test_an_env_file_holding_another_applications_key_is_refused_before_any_write(
        sandbox: SandboxProcess, tmp_path: Path, tasks: None) -> None:
    ok(sandbox, tmp_path, "app", "billing", "--worker", "--store", "env-file:billing.env")
    billing_key = env_key(tmp_path / "billing.env")
    mark = sandbox.mark()

    refused = provision(["app", "other", "--worker", "--store", "env-file:./billing.env"], env=sandbox.admin_env,
                        cwd=tmp_path)

    assert refused.returncode == 10, output(refused)
    assert "holds the key of application 'billing'" in refused.stderr
    assert "--force" in refused.stderr
    assert sandbox.write_requests(since=mark) == []
    assert env_key(tmp_path / "billing.env") == billing_key
    assert keys_of(sandbox, "billing") == {billing_key: "ACTIVE"}


def test_force_replaces_the_key_and_retires_the_one_it_displaced(
        sandbox: SandboxProcess, tmp_path: Path, tasks: None) -> None:
    ok(sandbox, tmp_path, "app", "billing", "--worker", "--store", "env-file:billing.env")
    billing_key = env_key(tmp_path / "billing.env")

    forced = ok(sandbox, tmp_path, "app", "other", "--worker", "--store", "env-file:billing.env", "--force")

    assert f"retired key {billing_key} of billing" in forced.stdout
    assert keys_of(sandbox, "billing") == {billing_key: "INACTIVE"}
    assert list(keys_of(sandbox, "other").values()) == ["ACTIVE"]
    assert env_key(tmp_path / "billing.env") in keys_of(sandbox, "other")
    again = ok(sandbox, tmp_path, "app", "other", "--worker", "--store", "env-file:billing.env", "--json")
    assert json.loads(again.stdout)["changed"] is False  # no ping-pong


# ----- 6. the tool remembers where it put a key --------------------------------------------------

def test_worker_run_doctor_and_deploy_find_the_key_where_app_delivered_it(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    assert provision(["init", "--lang", "python", "proj"], cwd=tmp_path).returncode == 0
    project = tmp_path / "proj"
    toml = project / "orkes-provision.toml"
    out = tmp_path / "probe.json"
    toml.write_text(toml.read_text().replace('command = ["python3", "main.py"]',
                                             f"command = {json.dumps([sys.executable, str(PROBE), str(out)])}"))
    ok(sandbox, project, "app", "--worker", "--grant", "greetings", "--register-tasks",
       "--store", "env-file:worker.env")
    key_id = env_key(project / "worker.env")

    doctor = ok(sandbox, project, "doctor")
    assert "All checks passed" in doctor.stdout
    assert f"Key store: env-file:{project}/worker.env (from where this machine delivered its key" in doctor.stderr

    # deploy finds the key in the same store; the sandbox's loopback URL, which no pod could reach,
    # is then refused, and the error names the server read from that key.
    deploy = provision(["deploy", "kubernetes", "greetings", "--image", "img:1", "--render", "k8s"], cwd=project,
                       env=sandbox.admin_env)
    assert deploy.returncode == 2, output(deploy)
    assert f"Key store: env-file:{project}/worker.env (from where this machine delivered its key" in deploy.stderr
    assert f"the pods would reach Conductor at {sandbox.url}, a loopback address" in deploy.stderr

    worker = subprocess.Popen([str(Path(sys.executable).with_name("provision")), "worker", "run", "greetings",
                               "--no-agent"],
                              cwd=project, env={**os.environ, **sandbox.admin_env}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        started = time.monotonic()
        while not out.exists() and worker.poll() is None and time.monotonic() - started < 60:
            time.sleep(0.1)
        assert out.exists(), worker.stderr.read() if worker.poll() is not None else "the worker never started"
        report = json.loads(out.read_text())
        assert report["env"]["CONDUCTOR_AUTH_KEY"] == key_id
    finally:
        Path(f"{out}.release").touch()
        os.killpg(worker.pid, 15)
        worker.communicate(timeout=30)


# ----- 7. hints and aliases ------------------------------------------------------------------------

def test_a_key_stored_under_another_spelling_of_the_server_url_is_reused(
        sandbox: SandboxProcess, tmp_path: Path, tasks: None) -> None:
    ok(sandbox, tmp_path, "app", "aliased", "--worker", "--grant", "greetings", "--store", "env-file:w.env")
    key_id = env_key(tmp_path / "w.env")
    alias = sandbox.url.replace("127.0.0.1", "localhost")
    assert alias != sandbox.url
    mark = sandbox.mark()

    again = ok(sandbox, tmp_path, "app", "aliased", "--worker", "--grant", "greetings", "--store", "env-file:w.env",
               CONDUCTOR_SERVER_URL=alias)

    assert "No changes" in again.stdout
    assert f"its server updated from {sandbox.url}: the same key works here" in again.stdout  # issue 25, item 4
    assert f"CONDUCTOR_SERVER_URL={alias}/api" in (tmp_path / "w.env").read_text() or \
        f"CONDUCTOR_SERVER_URL={alias}" in (tmp_path / "w.env").read_text()
    assert sandbox.write_requests(since=mark) == []
    assert keys_of(sandbox, "aliased") == {key_id: "ACTIVE"}


def test_hints_quote_names_and_carry_the_store(sandbox: SandboxProcess, tmp_path: Path, tasks: None) -> None:
    ok(sandbox, tmp_path, "app", "my app", "--worker", "--grant", "greetings", "--store", "env-file:w w.env")
    key_id = env_key(tmp_path / "w w.env")
    with admin(sandbox) as client:
        app_id = next(a.id for a in client.list_applications() if a.name == "my app")
        client.toggle_key(app_id, key_id)
    doctor = provision(["doctor", "my app", "--store", "env-file:w w.env"], env=sandbox.admin_env, cwd=tmp_path)
    assert doctor.returncode == 11
    assert f"fix: provision keys activate 'my app' {key_id}" in doctor.stdout
    run = provision(["run", "--app", "my app", "--store", "env-file:w w.env", "--", "true"],
                    env=sandbox.admin_env, cwd=tmp_path)
    assert run.returncode == 11
    assert f"hint: fix it (or pass --no-preflight to start the worker anyway): provision keys activate 'my app' " \
           f"{key_id}" in run.stderr


def test_no_keyring_hint_of_login_names_no_store_option(tmp_path: Path) -> None:
    result = provision(["login", "--server", "http://127.0.0.1:9/api", "--key-id", "k", "--no-verify"],
                       env=NO_KEYRING, input="secret\n", cwd=tmp_path)
    assert result.returncode == 10, output(result)
    assert "--store" not in result.stderr
    assert "CONDUCTOR_AUTH_KEY" in result.stderr


# ----- 8. smaller ones -----------------------------------------------------------------------------

def test_dry_run_plans_without_a_keyring(sandbox: SandboxProcess, tmp_path: Path, tasks: None) -> None:
    result = provision(["app", "dry", "--worker", "--grant", "greetings", "--dry-run"],
                       env={**sandbox.admin_env, **NO_KEYRING}, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert "+ create application dry" in result.stdout
    assert "+ create a key for dry into keyring" in result.stdout


def test_doctor_fails_when_it_checked_no_task(sandbox: SandboxProcess, tmp_path: Path) -> None:
    ok(sandbox, tmp_path, "app", "idle", "--worker", "--store", "env-file:w.env")
    doctor = provision(["doctor", "idle", "--store", "env-file:w.env"], env=sandbox.admin_env, cwd=tmp_path)
    assert doctor.returncode == 11, output(doctor)
    assert "All checks passed" not in doctor.stdout
    assert "no task checked" in doctor.stdout


def test_app_without_grant_flags_reports_the_grants_that_exist(sandbox: SandboxProcess, tmp_path: Path,
                                                               tasks: None) -> None:
    ok(sandbox, tmp_path, "app", "granted", "--worker", "--grant", "greetings", "--store", "env-file:w.env")
    again = ok(sandbox, tmp_path, "app", "granted", "--store", "env-file:w.env")
    assert "Grants:      EXECUTE on TASK_DEF greetings" in again.stdout


def test_grant_refuses_a_task_that_does_not_exist(sandbox: SandboxProcess, tmp_path: Path, tasks: None) -> None:
    ok(sandbox, tmp_path, "app", "g", "--worker", "--store", "env-file:w.env")
    mark = sandbox.mark()
    result = provision(["grant", "g", "greetngs"], env=sandbox.admin_env, cwd=tmp_path)
    assert result.returncode == 6, output(result)  # not found, as for app --grant
    assert "task definition not found on the server: greetngs" in result.stderr
    assert sandbox.write_requests(since=mark) == []


def test_app_without_the_worker_role_prints_no_run_step(sandbox: SandboxProcess, tmp_path: Path) -> None:
    result = ok(sandbox, tmp_path, "app", "meta", "--role", "METADATA_API", "--store", "env-file:w.env")
    assert "provision run" not in result.stdout
    assert "Next: to run a worker as meta, give it the WORKER role: provision app meta --worker --store " \
           f"env-file:{tmp_path}/w.env" in result.stdout


def test_keys_list_tells_where_each_key_was_delivered(sandbox: SandboxProcess, tmp_path: Path) -> None:
    ok(sandbox, tmp_path, "app", "listed", "--worker", "--store", "env-file:w.env")
    first = env_key(tmp_path / "w.env")
    ok(sandbox, tmp_path, "keys", "create", "listed", "--store", "env-file:other.env")
    second = env_key(tmp_path / "other.env")
    listing = ok(sandbox, tmp_path, "keys", "list", "listed")
    lines = {line.split()[0]: line for line in listing.stdout.splitlines()}
    assert f"delivered to: env-file:{tmp_path}/w.env (" in lines[first]
    assert f"delivered to: env-file:{tmp_path}/other.env (" in lines[second]
    rows = json.loads(ok(sandbox, tmp_path, "keys", "list", "listed", "--json").stdout)
    assert {r["id"]: [d["store"] for d in r["deliveredTo"]] for r in rows} == {
        first: [f"env-file:{tmp_path}/w.env"], second: [f"env-file:{tmp_path}/other.env"]}
    assert parse_env((tmp_path / "w.env").read_text())["CONDUCTOR_AUTH_SECRET"] not in listing.stdout
