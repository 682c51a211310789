"""Key age (issue 15, item 1): ``keys list`` shows each key's age and where it went; ``doctor`` warns when an
ACTIVE key is older than the policy (``--max-key-age``, or ``keyMaxAge`` in the environment file ``-f``).
The library's checks are driven by a clock; the commands by a limit of 1ms, which any key outlives."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orkes_provision.access.doctor import KeyPolicy, diagnose
from orkes_provision.credentials.delivery import Hints
from orkes_provision.credentials.stores.envfile import EnvFileStore, parse_env
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.orkes.urls import normalize_server_url
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision

APP = "aged-worker"
TASK = "aged-task"


@pytest.fixture
def provisioned(sandbox: SandboxProcess, tmp_path: Path) -> str:
    result = provision(["app", APP, "--worker", "--grant", TASK, "--register-tasks", "--store", "env-file:w.env"],
                       env=sandbox.admin_env, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    return parse_env((tmp_path / "w.env").read_text())["CONDUCTOR_AUTH_KEY"]


def ok(sandbox: SandboxProcess, cwd: Path, *args: str) -> str:
    result = provision(list(args), env=sandbox.admin_env, cwd=cwd)
    assert result.returncode == 0, output(result)
    return result.stdout


def test_keys_list_shows_each_keys_age_and_where_it_went(sandbox: SandboxProcess, tmp_path: Path,
                                                         provisioned: str) -> None:
    (line,) = ok(sandbox, tmp_path, "keys", "list", APP).splitlines()
    assert line.startswith(f"{provisioned}  ACTIVE    ")
    age = line.split("ACTIVE", 1)[1].split("delivered to:")[0].strip()
    assert age.endswith(" old") and age.split()[1] in ("second", "seconds", "minute", "minutes"), line
    assert f"delivered to: env-file:{tmp_path}/w.env (" in line
    (row,) = json.loads(ok(sandbox, tmp_path, "keys", "list", APP, "--json"))
    made = datetime.fromtimestamp(row["createdAt"] / 1000, UTC)
    assert isinstance(row["ageSeconds"], int)
    assert abs(row["ageSeconds"] - (datetime.now(UTC) - made).total_seconds()) < 60
    assert [d["store"] for d in row["deliveredTo"]] == [f"env-file:{tmp_path}/w.env"]


def test_doctor_warns_with_the_rotate_command_when_a_key_outlived_max_key_age(
        sandbox: SandboxProcess, tmp_path: Path, provisioned: str) -> None:
    result = provision(["doctor", APP, "--task", TASK, "--max-key-age", "1ms"], env=sandbox.admin_env, cwd=tmp_path)

    assert result.returncode == 0, output(result)  # a warning, not a failure
    lines = result.stdout.splitlines()
    warn = next(i for i, line in enumerate(lines) if line.startswith("warn key-age: "))
    assert lines[warn].startswith(f"warn key-age: ACTIVE key {provisioned} is ")
    assert lines[warn].endswith(" old, older than 1ms (--max-key-age)")
    assert lines[warn + 1].strip() == f"fix: provision keys rotate {APP}"
    report = json.loads(provision(["doctor", APP, "--task", TASK, "--max-key-age", "1ms", "--json"],
                                  env=sandbox.admin_env, cwd=tmp_path).stdout)
    (finding,) = [f for f in report["findings"] if f["check"] == "key-age"]
    assert (finding["ok"], finding["warning"], finding["fix"]) == (True, True, f"provision keys rotate {APP}")
    assert report["ok"] is True
    within = provision(["doctor", APP, "--task", TASK, "--max-key-age", "90d"], env=sandbox.admin_env, cwd=tmp_path)
    assert within.returncode == 0
    assert f"ok  key-age: the oldest ACTIVE key {provisioned} is " in within.stdout
    assert "within 90d (--max-key-age)" in within.stdout


def test_doctor_takes_the_policy_from_the_environment_files_key_max_age(
        sandbox: SandboxProcess, tmp_path: Path, provisioned: str) -> None:
    (tmp_path / "env.toml").write_text(f'name = "aged"\n[[applications]]\nname = "{APP}"\nstore = "env-file:w.env"\n'
                                       'keyMaxAge = "1ms"\n')
    text = ok(sandbox, tmp_path, "doctor", APP, "--task", TASK, "-f", "env.toml")
    assert f"older than 1ms (keyMaxAge of {APP} in env.toml)" in text
    assert "within 90d (--max-key-age)" in ok(sandbox, tmp_path, "doctor", APP, "--task", TASK, "-f", "env.toml",
                                               "--max-key-age", "90d")
    (tmp_path / "other.toml").write_text('name = "aged"\n[[applications]]\nname = "someone-else"\n')
    other = provision(["doctor", APP, "--task", TASK, "-f", "other.toml"], env=sandbox.admin_env, cwd=tmp_path)
    assert other.returncode == 2
    assert f"error: other.toml declares no application {APP}" in other.stderr


def test_the_doctor_check_compares_the_servers_created_at_with_the_policy(sandbox: SandboxProcess, tmp_path: Path,
                                                                         provisioned: str) -> None:
    server = normalize_server_url(sandbox.url, insecure_http=True)
    key = EnvFileStore(tmp_path / "w.env").load(server, APP)
    assert key is not None
    with OrkesClient(Credentials(server=sandbox.url, key_id=sandbox.admin_key_id,
                                 secret=sandbox.admin_secret)) as client:
        app = next(a for a in client.list_applications() if a.name == APP)
        (listed,) = client.list_keys(app.id)
        assert listed.created_at is not None
        made = datetime.fromtimestamp(listed.created_at / 1000, UTC)

        def check(days: float) -> list[str]:
            policy = KeyPolicy(timedelta(days=90), "keyMaxAge", now=lambda: made + timedelta(days=days))
            report = diagnose(client, app=APP, tasks=[TASK], key=key, server=server, hints=Hints(app=APP),
                              key_policy=policy)
            assert report.ok
            return [f"{'warn' if f.warning else 'ok'} {f.problem}" for f in report.findings if f.check == "key-age"]

        assert check(95) == [f"warn ACTIVE key {key.key_id} is 95 days old, older than 90d (keyMaxAge)"]
        assert check(89) == [f"ok the oldest ACTIVE key {key.key_id} is 89 days old, within 90d (keyMaxAge)"]
