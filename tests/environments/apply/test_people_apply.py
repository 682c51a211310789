"""Users and groups in an environment file, applied to a sandbox and read back through the official SDK."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conductor.client.http.models.create_or_update_application_request import (
    CreateOrUpdateApplicationRequest,
)
from conductor.client.http.models.subject_ref import SubjectRef, SubjectType
from conductor.client.http.models.target_ref import TargetRef, TargetType
from conductor.client.http.models.upsert_group_request import UpsertGroupRequest
from conductor.client.http.models.upsert_user_request import UpsertUserRequest
from conductor.client.http.rest import AuthorizationException
from conductor.client.orkes.models.access_type import AccessType
from conductor.client.orkes.orkes_authorization_client import OrkesAuthorizationClient

from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output
from tests.environments.apply.helpers import run, run_ok
from tests.sandbox.conformance.sdk_support import sdk_clients

ADA, BOB = "ada@example.com", "bob@example.com"

PEOPLE = """\
name = "staging"

[[tasks]]
name = "charge"

[[users]]
id = "ada@example.com"
name = "Ada Lovelace"
roles = ["USER"]

[[users]]
id = "bob@example.com"
name = "Bob"

[[groups]]
id = "payments-team"
description = "Payments engineers"
roles = ["WORKER"]
members = ["ada@example.com", "bob@example.com"]

[[groups.grants]]
tasks = ["charge"]

[[groups.grants]]
workflows = ["payments_flow"]
access = ["READ", "EXECUTE"]
"""


def _sdk(sandbox: SandboxProcess) -> OrkesAuthorizationClient:
    clients = sdk_clients(sandbox.url, sandbox.admin_key_id, sandbox.admin_secret.get_secret_value())
    return clients.get_authorization_client()


def _grants(auth: OrkesAuthorizationClient, group_id: str) -> dict[tuple[str, str], set[str]]:
    return {(g.target.type, g.target.id): set(g.access) for g in auth.get_granted_permissions_for_group(group_id)}


def test_apply_creates_users_groups_members_and_group_grants_that_the_sdk_reads_back(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    (tmp_path / "env.toml").write_text(PEOPLE)
    planned = run_ok(sandbox, tmp_path, "plan", "-f", "env.toml")
    assert planned.stdout.splitlines()[1:] == [
        "+ register task definition charge",
        "+ create user ada@example.com (name 'Ada Lovelace')",
        "+ add role USER to user ada@example.com",
        "+ create user bob@example.com (name 'Bob')",
        "+ create group payments-team",
        "+ add role WORKER to group payments-team",
        "+ add member ada@example.com to group payments-team",
        "+ add member bob@example.com to group payments-team",
        "+ grant EXECUTE on TASK_DEF charge to group payments-team",
        "+ grant EXECUTE+READ on WORKFLOW_DEF payments_flow to group payments-team",
        "Plan: 10 to add, 0 to change, 0 to delete.",
    ]
    mark = sandbox.mark()
    applied = json.loads(run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve", "--json").stdout)
    assert applied["ok"] and applied["done"] == 10
    # Each user and the group: one upsert; the two members: one request.
    writes = [(r["method"], r["path"]) for r in sandbox.write_requests(mark)]
    assert sorted(writes) == sorted([
        ("POST", "/api/metadata/taskdefs"), ("PUT", f"/api/users/{ADA}"), ("PUT", f"/api/users/{BOB}"),
        ("PUT", "/api/groups/payments-team"), ("POST", "/api/groups/payments-team/users"),
        ("POST", "/api/auth/authorization"), ("POST", "/api/auth/authorization")])

    auth = _sdk(sandbox)
    ada = auth.get_user(ADA)
    assert (ada.name, [r.name for r in ada.roles], [g.id for g in ada.groups]) == \
        ("Ada Lovelace", ["USER"], ["payments-team"])
    group = auth.get_group("payments-team")
    assert (group.description, [r.name for r in group.roles]) == ("Payments engineers", ["WORKER"])
    assert sorted(u.id for u in auth.get_users_in_group("payments-team")) == [ADA, BOB]
    assert _grants(auth, "payments-team") == {("TASK_DEF", "charge"): {"EXECUTE"},
                                              ("WORKFLOW_DEF", "payments_flow"): {"READ", "EXECUTE"}}
    # Ada holds no grant of her own; the server answers that she may execute charge through her group.
    assert auth.get_granted_permissions_for_user(ADA) == []
    assert auth.check_permissions(ADA, "TASK_DEF", "charge")["EXECUTE"] is True
    assert auth.check_permissions(ADA, "TASK_DEF", "refund")["EXECUTE"] is False

    again = run_ok(sandbox, tmp_path, "plan", "-f", "env.toml", "--detailed-exitcode")
    assert "No changes" in again.stdout
    mark = sandbox.mark()
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    assert sandbox.write_requests(mark) == []


def test_a_worker_in_the_group_polls_what_the_group_grant_allows(sandbox: SandboxProcess, tmp_path: Path) -> None:
    (tmp_path / "env.toml").write_text(PEOPLE)
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    clients = sdk_clients(sandbox.url, sandbox.admin_key_id, sandbox.admin_secret.get_secret_value())
    auth = clients.get_authorization_client()
    app = auth.create_application(CreateOrUpdateApplicationRequest("payments-worker"))  # no role, no grant
    key = auth.create_access_key(app.id)
    worker = sdk_clients(sandbox.url, key.id, key.secret).get_task_client()
    poll = "/api/tasks/poll/batch/charge"

    with pytest.raises(AuthorizationException) as denied:
        worker.batch_poll_tasks("charge", worker_id="w", count=1, timeout_in_millisecond=1)
    assert denied.value.status == 403
    auth.add_user_to_group("payments-team", f"app:{app.id}")  # WORKER and EXECUTE on charge come with the group
    assert worker.batch_poll_tasks("charge", worker_id="w", count=1, timeout_in_millisecond=1) == []
    assert [r["status"] for r in sandbox.requests() if r["path"] == poll] == [403, 200]


def test_prune_trims_declared_users_and_groups_and_never_touches_undeclared_ones(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    (tmp_path / "env.toml").write_text(PEOPLE)
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    auth = _sdk(sandbox)
    # Changes made by hand, in the UI: an extra role, member, grant; a user and a group of their own.
    auth.upsert_user(UpsertUserRequest(name="Ada Lovelace", roles=["USER", "ADMIN"], groups=["payments-team"]), ADA)
    auth.upsert_user(UpsertUserRequest(name="Eve", roles=["ADMIN"]), "eve@example.com")
    auth.add_user_to_group("payments-team", "eve@example.com")
    auth.upsert_group(UpsertGroupRequest(description="made by hand", roles=["ADMIN"]), "ops")
    auth.grant_permissions(SubjectRef(SubjectType.GROUP, "payments-team"), TargetRef(TargetType.TASK_DEF, "refund"),
                           [AccessType.EXECUTE])

    assert "No changes" in run_ok(sandbox, tmp_path, "plan", "-f", "env.toml").stdout
    pruning = run_ok(sandbox, tmp_path, "plan", "-f", "env.toml", "--prune")
    assert pruning.stdout.splitlines()[1:] == [
        "- remove role ADMIN from user ada@example.com",
        "- remove member eve@example.com from group payments-team",
        "- revoke EXECUTE on TASK_DEF refund from group payments-team",
        "Plan: 0 to add, 0 to change, 3 to delete.",
    ]
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve", "--prune")
    ada = auth.get_user(ADA)
    assert ([r.name for r in ada.roles], [g.id for g in ada.groups]) == (["USER"], ["payments-team"])
    assert sorted(u.id for u in auth.get_users_in_group("payments-team")) == [ADA, BOB]
    assert ("TASK_DEF", "refund") not in _grants(auth, "payments-team")
    # Not declared: no tag can mark them as this environment's, so even --prune leaves them alone.
    assert [r.name for r in auth.get_user("eve@example.com").roles] == ["ADMIN"]
    assert auth.get_group("ops").description == "made by hand"

    # Removing a member from the file removes it from the group only with --prune; the user stays.
    (tmp_path / "env.toml").write_text(PEOPLE.replace('members = ["ada@example.com", "bob@example.com"]',
                                                      'members = ["ada@example.com"]'))
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    assert sorted(u.id for u in auth.get_users_in_group("payments-team")) == [ADA, BOB]
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve", "--prune")
    assert [u.id for u in auth.get_users_in_group("payments-team")] == [ADA]
    assert auth.get_user(BOB).name == "Bob"


def test_a_member_neither_declared_nor_on_the_server_stops_the_plan_with_exit_6(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    (tmp_path / "env.toml").write_text(PEOPLE.replace('"bob@example.com"]', '"bob@example.com", "cy@example.com"]'))
    mark = sandbox.mark()
    result = run(sandbox, tmp_path, "plan", "-f", "env.toml")
    assert result.returncode == 6, output(result)
    line = next(n for n, text in enumerate((tmp_path / "env.toml").read_text().splitlines(), 1) if "cy@" in text)
    assert result.stderr.splitlines() == [
        f"error: env.toml:{line}: member 'cy@example.com' is neither declared under [[users]] nor a user on the "
        "server", "hint: declare it under [[users]] in env.toml, or fix the id"]  # bob@example.com: no typo away
    assert sandbox.write_requests(mark) == []


def test_a_user_changed_in_the_ui_is_renamed_back_and_keeps_its_groups(sandbox: SandboxProcess,
                                                                       tmp_path: Path) -> None:
    (tmp_path / "env.toml").write_text(PEOPLE)
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    auth = _sdk(sandbox)
    auth.upsert_user(UpsertUserRequest(name="A. King", roles=["USER"], groups=["payments-team"]), ADA)
    planned = run_ok(sandbox, tmp_path, "plan", "-f", "env.toml")
    assert planned.stdout.splitlines()[1:] == ["~ update user ada@example.com (name: 'A. King' -> 'Ada Lovelace')",
                                               "Plan: 0 to add, 1 to change, 0 to delete."]
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    ada = auth.get_user(ADA)
    assert (ada.name, [g.id for g in ada.groups]) == ("Ada Lovelace", ["payments-team"])
