"""Custom roles (``[[roles]]``) in an environment file: planned, applied before the users and groups that
hold them, trimmed only with --prune, checked against the server's permission list before any write."""

from __future__ import annotations

import json
from pathlib import Path

from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output
from tests.environments.apply.helpers import admin_client, run, run_ok
from tests.sandbox_fixtures import SandboxFactory

ADA = "ada@example.com"

ROLES = """\
name = "staging"

[[roles]]
name = "WORKFLOW_OPERATOR"
permissions = ["READ_WORKFLOW_DEF", "EXECUTE_WORKFLOW_DEF"]

[[users]]
id = "ada@example.com"
name = "Ada Lovelace"
roles = ["USER", "WORKFLOW_OPERATOR"]

[[groups]]
id = "operators"
description = "Operators"
roles = ["WORKFLOW_OPERATOR"]
members = ["ada@example.com"]
"""


def test_apply_creates_the_role_before_the_user_and_group_that_hold_it_and_a_second_apply_writes_nothing(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    (tmp_path / "env.toml").write_text(ROLES)
    planned = run_ok(sandbox, tmp_path, "plan", "-f", "env.toml")
    assert planned.stdout.splitlines()[1:] == [
        "+ create role WORKFLOW_OPERATOR (EXECUTE_WORKFLOW_DEF, READ_WORKFLOW_DEF)",
        "+ create user ada@example.com (name 'Ada Lovelace')",
        "+ add role USER to user ada@example.com",
        "+ add role WORKFLOW_OPERATOR to user ada@example.com",
        "+ create group operators",
        "+ add role WORKFLOW_OPERATOR to group operators",
        "+ add member ada@example.com to group operators",
        "Plan: 7 to add, 0 to change, 0 to delete.",
    ]
    as_json = json.loads(run_ok(sandbox, tmp_path, "plan", "-f", "env.toml", "--json").stdout)
    assert as_json["changes"][0] == {
        "action": "create_role", "app": None, "target": "WORKFLOW_OPERATOR", "role": "WORKFLOW_OPERATOR",
        "permissions": ["EXECUTE_WORKFLOW_DEF", "READ_WORKFLOW_DEF"], "classes": []}
    mark = sandbox.mark()
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    writes = [(r["method"], r["path"]) for r in sandbox.write_requests(mark)]
    assert writes.index(("POST", "/api/roles")) < writes.index(("PUT", f"/api/users/{ADA}"))
    assert writes.index(("POST", "/api/roles")) < writes.index(("PUT", "/api/groups/operators"))

    with admin_client(sandbox) as client:
        role = client.get_role("WORKFLOW_OPERATOR")
        assert {"READ_WORKFLOW_DEF", "EXECUTE_WORKFLOW_DEF"} <= role.permission_names
        assert client.get_user(ADA).role_names == {"USER", "WORKFLOW_OPERATOR"}
    again = run(sandbox, tmp_path, "plan", "-f", "env.toml", "--detailed-exitcode")
    assert again.returncode == 0, output(again)
    assert "No changes" in again.stdout  # the permissions Orkes adds to every custom role are no difference
    mark = sandbox.mark()
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    assert sandbox.write_requests(mark) == []


def test_a_permission_changed_by_hand_is_added_back_and_an_extra_one_goes_only_with_prune(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    (tmp_path / "env.toml").write_text(ROLES)
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    with admin_client(sandbox) as client:
        client.update_role("WORKFLOW_OPERATOR", ["READ_WORKFLOW_DEF", "DELETE_WORKFLOW_DEF"])
        client.create_role("MADE_BY_HAND", ["READ_TASK_DEF"])
    planned = run_ok(sandbox, tmp_path, "plan", "-f", "env.toml")
    assert planned.stdout.splitlines()[1:] == ["~ update role WORKFLOW_OPERATOR (add EXECUTE_WORKFLOW_DEF)",
                                               "Plan: 0 to add, 1 to change, 0 to delete."]
    gate = run(sandbox, tmp_path, "plan", "-f", "env.toml", "--prune", "--fail-on", "removes-access")
    assert "~ update role WORKFLOW_OPERATOR (add EXECUTE_WORKFLOW_DEF; remove DELETE_WORKFLOW_DEF)" in gate.stdout
    assert gate.returncode == 2, output(gate)
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve", "--prune")
    with admin_client(sandbox) as client:
        have = client.get_role("WORKFLOW_OPERATOR").permission_names
        assert "EXECUTE_WORKFLOW_DEF" in have and "DELETE_WORKFLOW_DEF" not in have
        # Not declared: nothing marks a role as this environment's, so even --prune leaves it alone.
        assert "MADE_BY_HAND" in {r.name for r in client.list_custom_roles()}
    assert "No changes" in run_ok(sandbox, tmp_path, "plan", "-f", "env.toml", "--prune").stdout


def test_a_permission_the_server_does_not_know_stops_the_plan_with_a_suggestion_before_any_write(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    (tmp_path / "env.toml").write_text(ROLES.replace('"EXECUTE_WORKFLOW_DEF"]', '"EXECUTE_WORKFLOW_DEFS"]'))
    mark = sandbox.mark()
    result = run(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    assert result.returncode == 6, output(result)
    assert result.stderr.splitlines() == [
        "error: env.toml:5: the server has no permission 'EXECUTE_WORKFLOW_DEFS' (role WORKFLOW_OPERATOR); did you "
        "mean 'EXECUTE_WORKFLOW_DEF'?",
        "hint: replace 'EXECUTE_WORKFLOW_DEFS' with 'EXECUTE_WORKFLOW_DEF'"]
    assert sandbox.write_requests(mark) == []


def test_a_role_neither_declared_nor_on_the_server_stops_the_plan_and_one_on_the_server_is_enough(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    text = ROLES.split("[[users]]")[0].replace("WORKFLOW_OPERATOR", "OPERATOR") + \
        '[[users]]\nid = "ada@example.com"\nroles = ["OPERATR"]\n'
    (tmp_path / "env.toml").write_text(text)
    result = run(sandbox, tmp_path, "plan", "-f", "env.toml")
    assert result.returncode == 6, output(result)
    assert result.stderr.splitlines() == [
        "error: env.toml:9: role 'OPERATR' is neither a system role, nor declared under [[roles]], nor a custom "
        "role on the server; did you mean 'OPERATOR'?", "hint: replace 'OPERATR' with 'OPERATOR'"]
    with admin_client(sandbox) as client:
        client.create_role("AUDITOR", ["READ_WORKFLOW_DEF"])
    (tmp_path / "env.toml").write_text('name = "staging"\n[[users]]\nid = "ada@example.com"\nroles = ["AUDITOR"]\n')
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    with admin_client(sandbox) as client:
        assert client.get_user(ADA).role_names == {"AUDITOR"}


def test_export_writes_custom_roles_and_applying_it_to_a_fresh_sandbox_gives_the_same_export(
        sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    first, fresh = sandbox_factory(), sandbox_factory()
    (tmp_path / "env.toml").write_text(ROLES)
    run_ok(first, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    run_ok(first, tmp_path, "export", "--name", "staging", "-o", "exported.toml")
    exported = (tmp_path / "exported.toml").read_text()
    assert '[[roles]]\nname = "WORKFLOW_OPERATOR"\npermissions = ["EXECUTE_WORKFLOW_DEF", "READ_WORKFLOW_DEF"]' \
        in exported  # without the two permissions Orkes adds by itself
    assert 'roles = ["USER", "WORKFLOW_OPERATOR"]' in exported
    drift = run(first, tmp_path, "drift", "-f", "exported.toml")
    assert drift.returncode == 0, output(drift)

    run_ok(fresh, tmp_path, "apply", "-f", "exported.toml", "--auto-approve")
    run_ok(fresh, tmp_path, "export", "--name", "staging", "-o", "again.toml")
    assert (tmp_path / "again.toml").read_text() == exported


def test_drift_names_a_permission_taken_or_added_by_hand_and_a_role_deleted(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    (tmp_path / "env.toml").write_text(ROLES + '\n[[roles]]\nname = "AUDITOR"\npermissions = ["READ_TASK_DEF"]\n')
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    with admin_client(sandbox) as client:
        client.update_role("WORKFLOW_OPERATOR", ["READ_WORKFLOW_DEF", "DELETE_WORKFLOW_DEF"])
        client.delete_role("AUDITOR")
    drift = run(sandbox, tmp_path, "drift", "-f", "env.toml", "--json")
    assert drift.returncode == 2, output(drift)
    found = [(d["kind"], d["subject"], d["detail"]) for d in json.loads(drift.stdout)["differences"]]
    assert found == [
        ("permission_missing", "role WORKFLOW_OPERATOR", "lacks permission EXECUTE_WORKFLOW_DEF"),
        ("permission_extra", "role WORKFLOW_OPERATOR",
         "holds permission DELETE_WORKFLOW_DEF, which the file does not declare"),
        ("custom_role_missing", "role AUDITOR", "not on the server"),
    ]
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve", "--prune")
    assert run(sandbox, tmp_path, "drift", "-f", "env.toml").returncode == 0
