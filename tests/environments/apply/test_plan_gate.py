"""Plans a CI can gate on: ``plan --json`` carries schemaVersion and each change's classes, and
``plan --fail-on CLASSES`` exits 2 when a planned change is in one of them (1 on any error)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest

from orkes_provision.access import changes
from orkes_provision.access.classify import CLASSES, PLAN_SCHEMA_VERSION, classes_of
from orkes_provision.orkes.models import TaskDef
from orkes_provision.sandbox.harness import SandboxProcess
from tests.environments.apply.helpers import admin_client, run

WITH_GRANT = """name = "gate"

[[applications]]
name = "gate-worker"
roles = ["WORKER"]

[[applications.grants]]
tasks = ["gate-task"]

[[applications]]
name = "gate-extra"
roles = []
"""
WITHOUT = 'name = "gate"\n\n[[applications]]\nname = "gate-worker"\nroles = ["WORKER"]\n'


def test_every_kind_of_change_is_classified() -> None:
    kinds = {cls.kind for cls in vars(changes).values()
             if isinstance(cls, type) and issubclass(cls, changes.Change) and "kind" in vars(cls)}
    assert kinds == set(get_args(changes.ChangeKind))
    delete = changes.DeleteApp(app="a", app_id="1")
    assert classes_of(delete) == ("removes-access", "destructive")
    assert classes_of(changes.CreateKey(app="a", store="keyring")) == ("grants-access", "key")
    assert set(CLASSES) == {"grants-access", "removes-access", "key", "destructive"}


def test_plan_json_has_a_schema_version_and_classes(sandbox: SandboxProcess, tmp_path: Path) -> None:
    admin_client(sandbox).register_task_defs([TaskDef(name="gate-task")])
    (tmp_path / "env.toml").write_text(WITH_GRANT)
    result = run(sandbox, tmp_path, "plan", "-f", "env.toml", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["schemaVersion"] == PLAN_SCHEMA_VERSION == 1
    assert {(c["action"], tuple(c["classes"])) for c in doc["changes"]} == {
        ("create_app", ()), ("add_role", ("grants-access",)), ("grant", ("grants-access",))}


def test_fail_on_exits_2_only_for_the_classes_named(sandbox: SandboxProcess, tmp_path: Path) -> None:
    admin_client(sandbox).register_task_defs([TaskDef(name="gate-task")])
    (tmp_path / "env.toml").write_text(WITH_GRANT)
    gate = ("plan", "-f", "env.toml", "--prune", "--fail-on", "removes-access,destructive")
    assert run(sandbox, tmp_path, *gate).returncode == 0
    granting = run(sandbox, tmp_path, "plan", "-f", "env.toml", "--fail-on", "grants-access")
    assert granting.returncode == 2
    assert "plan: 2 change(s) in --fail-on grants-access, first: + add role WORKER to gate-worker" in granting.stderr
    applied = run(sandbox, tmp_path, "apply", "-f", "env.toml", "--yes")
    assert applied.returncode == 0, applied.stderr
    (tmp_path / "env.toml").write_text(WITHOUT)
    assert run(sandbox, tmp_path, "plan", "-f", "env.toml", "--fail-on", "removes-access").returncode == 0
    removing = run(sandbox, tmp_path, *gate, "--json")
    assert removing.returncode == 2
    classes = {c["action"]: c["classes"] for c in json.loads(removing.stdout)["changes"]}
    assert classes == {"revoke": ["removes-access"], "delete_app": ["removes-access", "destructive"]}
    assert "--fail-on removes-access,destructive" in removing.stderr


@pytest.mark.parametrize("value", ["removes", "", "key,nope"])
def test_an_unknown_class_is_an_error_not_a_gate(sandbox: SandboxProcess, tmp_path: Path, value: str) -> None:
    (tmp_path / "env.toml").write_text(WITHOUT)
    result = run(sandbox, tmp_path, "plan", "-f", "env.toml", "--fail-on", value)
    assert result.returncode == 1
    assert "is not a class of change" in result.stderr or "names no class" in result.stderr
    assert "grants-access, removes-access, key, destructive" in result.stderr
