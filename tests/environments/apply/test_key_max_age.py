"""``keyMaxAge`` in an environment file (issue 15, item 1): plan shows the rotation, apply rotates through the
rotation code (stores and deliveries updated, nothing lost), a second apply does nothing; drift reports the key
with the rotate command as its fix; export keeps the key from the file it rewrites.

Keys are made old by the clock given to the library (``now``); the command-line tests use a limit of 1ms,
which any key outlives by the time the command reads it.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orkes_provision.access.keys import key_authenticates
from orkes_provision.credentials.delivery import deliveries
from orkes_provision.credentials.stores import StoredKey
from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.environments.apply import apply_environment, plan_environment
from orkes_provision.environments.drift import drift_environment
from orkes_provision.environments.environment import load_environment
from orkes_provision.errors import ConfigError
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.urls import normalize_server_url
from orkes_provision.rotation.fleet import environment_rotator
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output
from tests.environments.apply.helpers import admin_client, run, run_ok

APP = "aging-worker"
ENV = """\
name = "aging"

[[tasks]]
name = "aging-task"

[[applications]]
name = "{app}"
store = "env-file:worker.env"
keyMaxAge = "{limit}"

[[applications.grants]]
tasks = ["aging-task"]
"""


@pytest.fixture
def client(sandbox: SandboxProcess) -> Iterator[OrkesClient]:
    with admin_client(sandbox) as admin:
        yield admin


def write(directory: Path, limit: str = "90d") -> Path:
    path = directory / "env.toml"
    path.write_text(ENV.format(app=APP, limit=limit))
    return path


def in_store(directory: Path, server: str) -> StoredKey:
    key = EnvFileStore(directory / "worker.env").load(server, APP)
    assert key is not None
    return key


def created(client: OrkesClient, key_id: str) -> datetime:
    app = next(a for a in client.list_applications() if a.name == APP)
    (key,) = [k for k in client.list_keys(app.id) if k.id == key_id]
    assert key.created_at is not None
    return datetime.fromtimestamp(key.created_at / 1000, UTC)


def test_plan_shows_the_rotation_apply_rotates_and_a_second_apply_does_nothing(
        sandbox: SandboxProcess, client: OrkesClient, tmp_path: Path) -> None:
    server = normalize_server_url(sandbox.url, insecure_http=True)
    env = load_environment(write(tmp_path))
    made = plan_environment(client, env, server=server)
    assert apply_environment(client, made, actor=client.key_id).ok
    old = in_store(tmp_path, server)
    later = created(client, old.key_id) + timedelta(days=95)

    planned = plan_environment(client, env, server=server, now=lambda: later)

    assert planned.render().splitlines()[1:] == [
        f"~ rotate key of {APP} (key {old.key_id} is 95 days old, keyMaxAge 90d)",
        "Plan: 0 to add, 1 to change, 0 to delete."]
    assert [c["action"] for c in planned.to_dict()["changes"]] == ["rotate_key"]
    mark = sandbox.mark()
    rotator = environment_rotator(client, server=server, stores=planned.stores, actor=client.key_id,
                                  switch_wait=0, grace=timedelta(0))

    applied = apply_environment(client, planned, actor=client.key_id, rotate=rotator)

    assert applied.ok, applied.render()
    new = in_store(tmp_path, server)
    (outcome,) = applied.applied.outcomes
    assert (outcome.change.kind, outcome.status, outcome.key_id) == ("rotate_key", "done", new.key_id)
    assert new.key_id != old.key_id
    assert key_authenticates(client, new) and not key_authenticates(client, old)
    app_id = next(a.id for a in client.list_applications() if a.name == APP)
    assert {k.id: k.status for k in client.list_keys(app_id)} == {new.key_id: "ACTIVE"}
    assert [d.key_id for d in deliveries(server, APP)] == [new.key_id]  # the record follows the key
    assert f"rotated the key of {APP}: key {new.key_id} replaces {old.key_id}" in applied.render()
    assert any(r["path"].endswith("/accessKeys") and r["method"] == "POST" for r in sandbox.requests()[mark:])

    # The next day (by this clock) the new key is young: nothing to do, and nothing is written.
    again = plan_environment(client, env, server=server, now=lambda: datetime.now(UTC) + timedelta(days=1))
    assert again.empty, again.render()
    mark = sandbox.mark()
    assert apply_environment(client, again, actor=client.key_id, rotate=rotator).applied.outcomes == []
    assert sandbox.write_requests(since=mark) == []


def test_a_young_key_is_kept_and_a_key_about_to_be_made_is_not_rotated(
        sandbox: SandboxProcess, client: OrkesClient, tmp_path: Path) -> None:
    server = normalize_server_url(sandbox.url, insecure_http=True)
    env = load_environment(write(tmp_path))
    first = plan_environment(client, env, server=server, now=lambda: datetime.now(UTC) + timedelta(days=400))
    assert "rotate_key" not in [c.kind for c in first.plan.changes]  # no key yet: one is created, young
    apply_environment(client, first, actor=client.key_id)
    assert plan_environment(client, env, server=server,
                            now=lambda: datetime.now(UTC) + timedelta(days=89)).empty


def test_the_commands_plan_and_apply_the_rotation(sandbox: SandboxProcess, tmp_path: Path) -> None:
    write(tmp_path, limit="1ms")
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--yes")
    server = normalize_server_url(sandbox.url, insecure_http=True)
    old = in_store(tmp_path, server)

    planned = run_ok(sandbox, tmp_path, "plan", "-f", "env.toml")
    assert f"~ rotate key of {APP} (key {old.key_id} is " in planned.stdout
    assert ", keyMaxAge 1ms)" in planned.stdout
    applied = run(sandbox, tmp_path, "apply", "-f", "env.toml", "--yes", "--switch-wait", "0s")

    assert applied.returncode == 0, output(applied)
    new = in_store(tmp_path, server)
    assert f"{APP}: will retire ACTIVE key {old.key_id}, delivered to: env-file:{tmp_path}/worker.env" \
        in applied.stderr
    assert f"rotated the key of {APP}: key {new.key_id} replaces {old.key_id} wherever it was delivered" \
        in applied.stdout
    again = run(sandbox, tmp_path, "apply", "-f", "env.toml", "--yes", "--switch-wait", "0s", "--json")
    assert again.returncode == 0, output(again)
    (outcome,) = json.loads(again.stdout)["outcomes"]
    assert (outcome["action"], outcome["status"], outcome["target"], outcome["keyId"]) == \
        ("rotate_key", "done", new.key_id, in_store(tmp_path, server).key_id)


def test_drift_reports_an_overdue_key_whose_fix_is_the_rotate_command(
        sandbox: SandboxProcess, client: OrkesClient, tmp_path: Path) -> None:
    server = normalize_server_url(sandbox.url, insecure_http=True)
    env = load_environment(write(tmp_path))
    apply_environment(client, plan_environment(client, env, server=server), actor=client.key_id)
    old = in_store(tmp_path, server)
    later = created(client, old.key_id) + timedelta(days=95)

    report = drift_environment(client, env, server=server, now=lambda: later, global_args=["--profile", "x"])

    (difference,) = report.differences
    assert (difference.kind, difference.symbol, difference.subject) == ("key_too_old", "~", f"application {APP}")
    assert difference.detail == f"ACTIVE key {old.key_id} is 95 days old, older than keyMaxAge 90d"
    assert difference.fix == f"provision keys rotate {APP} --profile x"
    assert difference.file_change == "raise keyMaxAge above 95 days"
    assert difference.where.endswith("env.toml:9")  # the keyMaxAge line
    assert drift_environment(client, env, server=server, now=lambda: later - timedelta(days=10)).in_sync


def test_the_drift_command_exits_2_and_its_fix_settles_the_difference(sandbox: SandboxProcess,
                                                                      tmp_path: Path) -> None:
    write(tmp_path, limit="1ms")
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--yes")
    drifted = run(sandbox, tmp_path, "drift", "-f", "env.toml", "--json")
    assert drifted.returncode == 2, output(drifted)
    (difference,) = json.loads(drifted.stdout)["differences"]
    assert difference["kind"] == "key_too_old"
    fix = shlex.split(difference["fix"])
    assert fix[:4] == ["provision", "keys", "rotate", APP]
    rotated = run(sandbox, tmp_path, *fix[1:], "--switch-wait", "0s", "--grace", "0s")
    assert rotated.returncode == 0, output(rotated)
    write(tmp_path, limit="90d")  # with a policy the new key meets, the server matches the file again
    assert run(sandbox, tmp_path, "drift", "-f", "env.toml").returncode == 0


def test_export_over_the_file_keeps_its_key_max_age(sandbox: SandboxProcess, tmp_path: Path) -> None:
    write(tmp_path)
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--yes")
    run_ok(sandbox, tmp_path, "export", "-o", "env.toml", "--application", APP)
    exported = load_environment(tmp_path / "env.toml")
    (entry,) = exported.applications
    assert (entry.store, entry.key_max_age) == ("env-file:worker.env", "90d")
    assert run(sandbox, tmp_path, "plan", "-f", "env.toml", "--detailed-exitcode").returncode == 0


@pytest.mark.parametrize(("value", "message"), [
    ('"0s"', "env.toml:5: keyMaxAge: must be longer than 0s"),
    ('"soon"', "env.toml:5: keyMaxAge: 'soon' is not a duration: write it like 90d, 30d or 12h"),
    ("90", "env.toml:5: keyMaxAge: must be a string (got 90)"),
])
def test_a_bad_key_max_age_is_one_line_naming_its_place(tmp_path: Path, value: str, message: str) -> None:
    (tmp_path / "env.toml").write_text(f'name = "x"\n[[applications]]\nname = "a"\nstore = "keyring"\n'
                                       f"keyMaxAge = {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_environment(tmp_path / "env.toml")
    assert message in caught.value.message


def test_key_max_age_without_a_store_is_refused(tmp_path: Path) -> None:
    (tmp_path / "env.toml").write_text('name = "x"\n[[applications]]\nname = "a"\nkeyMaxAge = "90d"\n')
    with pytest.raises(ConfigError) as caught:
        load_environment(tmp_path / "env.toml")
    assert "env.toml:2: [[applications]]: keyMaxAge needs a store" in caught.value.message
