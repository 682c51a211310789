"""``provision export`` against sandboxes set up by hand through the official conductor-python SDK.

The round trip of the issue: a server built with the SDK's clients (applications, roles, grants on
tasks, workflows, tags and domains, task and workflow definitions, users, groups with members and
grants) is exported; planning the export finds nothing to do; applying it to a fresh sandbox and
exporting that gives the same files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conductor.client.http.models.create_or_update_application_request import CreateOrUpdateApplicationRequest
from conductor.client.http.models.subject_ref import SubjectRef, SubjectType
from conductor.client.http.models.target_ref import TargetRef, TargetType
from conductor.client.http.models.task_def import TaskDef
from conductor.client.http.models.upsert_group_request import UpsertGroupRequest
from conductor.client.http.models.upsert_user_request import UpsertUserRequest
from conductor.client.http.models.workflow_def import WorkflowDef
from conductor.client.http.models.workflow_task import WorkflowTask
from conductor.client.orkes.models.access_type import AccessType
from conductor.client.orkes.models.metadata_tag import MetadataTag
from conductor.client.orkes_clients import OrkesClients

from orkes_provision.environments.environment import load_environment
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output
from tests.environments.apply.helpers import run, run_ok
from tests.sandbox.conformance.sdk_support import sdk_clients
from tests.sandbox_fixtures import SandboxFactory


def sdk(sb: SandboxProcess) -> OrkesClients:
    return sdk_clients(sb.url, sb.admin_key_id, sb.admin_secret.get_secret_value())


def _user(app_id: str) -> SubjectRef:
    return SubjectRef(SubjectType.USER, f"app:{app_id}")


def build_by_hand(sb: SandboxProcess) -> dict[str, str]:
    """What a team clicks together in the UI, done through the SDK. Returns application ids by name."""
    clients = sdk(sb)
    metadata = clients.get_metadata_client()
    for name, timeout in (("greetings", 120), ("farewell", 600), ("billing_charge", 300)):
        metadata.register_task_def(TaskDef(name=name, description=f"{name} task", timeout_seconds=timeout,
                                           total_timeout_seconds=0, response_timeout_seconds=60, retry_count=1,
                                           retry_delay_seconds=5, owner_email="team@example.com"))
    for version, tasks in ((1, ["greetings"]), (2, ["greetings", "farewell"])):
        steps = [WorkflowTask(name=t, task_reference_name=f"{t}_ref", type="SIMPLE",
                              input_parameters={"who": "${workflow.input.who}"}) for t in tasks]
        metadata.register_workflow_def(WorkflowDef(name="greet_flow", version=version, tasks=steps,
                                                   timeout_seconds=300, owner_email="team@example.com",
                                                   output_parameters={"said": "${greetings_ref.output.result}"}),
                                       overwrite=True)
    auth = clients.get_authorization_client()
    ids: dict[str, str] = {}
    for name in ("greetings-worker", "greetings-starter", "billing-worker"):
        ids[name] = auth.create_application(CreateOrUpdateApplicationRequest(name)).id
    auth.add_role_to_application_user(ids["greetings-worker"], "WORKER")
    auth.add_role_to_application_user(ids["billing-worker"], "WORKER")
    auth.add_role_to_application_user(ids["billing-worker"], "METADATA_API")
    auth.set_application_tags([MetadataTag("team", "billing")], ids["billing-worker"])
    grants = [
        ("greetings-worker", TargetType.TASK_DEF, "greetings", [AccessType.EXECUTE]),
        ("greetings-worker", TargetType.TASK_DEF, "farewell", [AccessType.EXECUTE]),
        ("greetings-worker", TargetType.TAG, "team:hello", [AccessType.EXECUTE, AccessType.READ]),
        ("greetings-worker", TargetType.DOMAIN, "eu-west", [AccessType.EXECUTE]),
        ("greetings-starter", TargetType.WORKFLOW_DEF, "greet_flow", [AccessType.EXECUTE, AccessType.READ]),
        ("billing-worker", TargetType.TASK_DEF, "billing_charge", [AccessType.EXECUTE, AccessType.UPDATE]),
    ]
    for app, target_type, target_id, access in grants:
        auth.grant_permissions(_user(ids[app]), TargetRef(target_type, target_id), access)
    auth.create_access_key(ids["greetings-worker"])  # a key exists: export must neither read nor write it
    auth.upsert_user(UpsertUserRequest(name="Ada Lovelace", roles=["USER"]), "ada@example.com")
    auth.upsert_user(UpsertUserRequest(name="Bob", roles=["WORKFLOW_MANAGER"]), "bob@example.com")
    auth.upsert_user(UpsertUserRequest(name="Grace Hopper", roles=["METADATA_MANAGER", "WORKER"]), "grace@example.com")
    auth.upsert_group(UpsertGroupRequest(description="Payments engineers", roles=["USER"]), "payments-team")
    auth.upsert_group(UpsertGroupRequest(description="", roles=[]), "auditors")
    auth.add_users_to_group("payments-team", ["ada@example.com", "grace@example.com"])
    payments = SubjectRef(SubjectType.GROUP, "payments-team")
    auth.grant_permissions(payments, TargetRef(TargetType.TASK_DEF, "billing_charge"), [AccessType.EXECUTE])
    auth.grant_permissions(payments, TargetRef(TargetType.WORKFLOW_DEF, "greet_flow"),
                           [AccessType.READ, AccessType.EXECUTE])
    auth.grant_permissions(payments, TargetRef(TargetType.TAG, "team:billing"), [AccessType.READ])
    return ids


def server_view(sb: SandboxProcess) -> dict[str, Any]:
    """The applications, their roles and grants, and the definitions, as the SDK reads them."""
    clients = sdk(sb)
    auth, metadata = clients.get_authorization_client(), clients.get_metadata_client()
    apps: dict[str, Any] = {}
    for app in auth.list_applications():
        if app.name == "sandbox-admin":
            continue
        roles = sorted(r.name for r in auth.get_user(f"app:{app.id}").roles)
        granted = sorted((g.target.type, g.target.id, tuple(sorted(g.access)))
                         for g in auth.get_granted_permissions_for_user(f"app:{app.id}"))
        apps[app.name] = {"roles": roles, "grants": granted}
    tasks = {t.name: (t.timeout_seconds, t.response_timeout_seconds, t.retry_count, t.owner_email)
             for t in metadata.get_all_task_defs()}
    flow = metadata.get_workflow_def("greet_flow", 2)
    users = {u.id: (u.name, sorted(r.name for r in u.roles), sorted(g.id for g in u.groups))
             for u in auth.list_users()}
    groups = {g.id: (g.description, sorted(r.name for r in g.roles),
                     sorted(u.id for u in auth.get_users_in_group(g.id)),
                     sorted((p.target.type, p.target.id, tuple(sorted(p.access)))
                            for p in auth.get_granted_permissions_for_group(g.id)))
              for g in auth.list_groups()}
    return {"apps": apps, "tasks": tasks, "users": users, "groups": groups,
            "greet_flow": [(t.name, t.task_reference_name) for t in flow.tasks]}


def files_under(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): p.read_text() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_export_of_a_hand_made_server_plans_clean_and_round_trips_through_a_fresh_sandbox(
        sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    first = sandbox_factory()
    build_by_hand(first)
    mark = first.mark()
    exported = run_ok(first, tmp_path, "export", "-o", "one/env.toml", "--name", "staging")
    assert "3 applications, 3 users, 2 groups." in exported.stdout, output(exported)
    # Keys are never read: no request touched an application's access keys.
    assert not [r for r in first.requests()[mark:] if "accessKeys" in r["path"]]
    assert first.write_requests(mark) == []

    env = load_environment(tmp_path / "one" / "env.toml")
    apps = {a.name: a for a in env.applications}
    assert sorted(apps) == ["billing-worker", "greetings-starter", "greetings-worker"]  # not sandbox-admin
    assert all(a.owned is False and a.store is None for a in apps.values())  # made by hand: not this env's
    assert apps["billing-worker"].roles == ["WORKER", "METADATA_API"]
    assert apps["greetings-starter"].roles == []
    worker_grants = {(tuple(g.access), tuple(g.targets())) for g in apps["greetings-worker"].grants}
    assert worker_grants == {(("EXECUTE",), (("TASK_DEF", "farewell"), ("TASK_DEF", "greetings"),
                                             ("DOMAIN", "eu-west"))),
                             (("READ", "EXECUTE"), (("TAG", "team:hello"),))}
    assert [t.name for t in env.tasks] == ["billing_charge", "farewell", "greetings"]
    assert env.task_entries()["greetings"].timeout_seconds == 120
    assert [(d["name"], d["version"]) for d in env.workflow_defs] == [("greet_flow", 2)]  # the latest version
    assert not {"createTime", "updateTime", "createdBy", "updatedBy", "ownerApp"} & set(env.workflow_defs[0])
    assert [(u.id, u.name, u.roles) for u in env.users] == [
        ("ada@example.com", "Ada Lovelace", ["USER"]), ("bob@example.com", "Bob", ["WORKFLOW_MANAGER"]),
        ("grace@example.com", "Grace Hopper", ["WORKER", "METADATA_MANAGER"])]
    groups = {g.id: g for g in env.groups}
    assert (groups["auditors"].description, groups["auditors"].members, groups["auditors"].grants) == (None, [], [])
    payments = groups["payments-team"]
    assert (payments.description, payments.roles, payments.members) == (
        "Payments engineers", ["USER"], ["ada@example.com", "grace@example.com"])
    assert [(tuple(g.access), tuple(g.targets())) for g in payments.grants] == [
        (("EXECUTE",), (("TASK_DEF", "billing_charge"),)), (("READ",), (("TAG", "team:billing"),)),
        (("READ", "EXECUTE"), (("WORKFLOW_DEF", "greet_flow"),))]

    planned = run(first, tmp_path, "plan", "-f", "one/env.toml", "--detailed-exitcode")
    assert planned.returncode == 0, output(planned)
    assert "No changes" in planned.stdout

    second = sandbox_factory()
    applied = run_ok(second, tmp_path, "apply", "-f", "one/env.toml", "--auto-approve")
    assert "Apply complete" in applied.stdout
    assert server_view(second) == server_view(first)
    run_ok(second, tmp_path, "export", "-o", "two/env.toml", "--name", "staging")
    assert files_under(tmp_path / "two") == files_under(tmp_path / "one")
    assert run(second, tmp_path, "drift", "-f", "two/env.toml").returncode == 0


def test_applications_this_environment_owns_are_exported_without_owned_false(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    (tmp_path / "env.toml").write_text('name = "staging"\n\n[[tasks]]\nname = "greetings"\n\n'
                                       '[[applications]]\nname = "greetings-worker"\n\n'
                                       '[[applications.grants]]\ntasks = ["greetings"]\n')
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    sdk(sandbox).get_authorization_client().create_application(CreateOrUpdateApplicationRequest("by-hand"))

    run_ok(sandbox, tmp_path, "export", "-o", "out/env.toml")  # the name comes from the ownership tags
    env = load_environment(tmp_path / "out" / "env.toml")
    assert env.name == "staging"
    assert {a.name: a.owned for a in env.applications} == {"greetings-worker": True, "by-hand": False}
    assert run(sandbox, tmp_path, "plan", "-f", "out/env.toml", "--detailed-exitcode").returncode == 0
    assert run(sandbox, tmp_path, "plan", "-f", "out/env.toml", "--prune", "--detailed-exitcode").returncode == 0

    run_ok(sandbox, tmp_path, "export", "-o", "other/env.toml", "--name", "other")
    other = load_environment(tmp_path / "other" / "env.toml")
    assert {a.name: a.owned for a in other.applications} == {"greetings-worker": False, "by-hand": False}
    assert run(sandbox, tmp_path, "plan", "-f", "other/env.toml", "--detailed-exitcode").returncode == 0


def test_application_and_tag_filters_export_only_those_applications_and_the_definitions_they_use(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    build_by_hand(sandbox)
    run_ok(sandbox, tmp_path, "export", "--application", "billing-worker", "-o", "by-name/env.toml", "--name", "b")
    run_ok(sandbox, tmp_path, "export", "--tag", "team:billing", "-o", "by-tag/env.toml", "--name", "b")
    assert files_under(tmp_path / "by-name") == files_under(tmp_path / "by-tag")
    env = load_environment(tmp_path / "by-name" / "env.toml")
    assert [a.name for a in env.applications] == ["billing-worker"]
    assert [t.name for t in env.tasks] == ["billing_charge"]
    assert env.workflows == []

    run_ok(sandbox, tmp_path, "export", "--application", "greetings-starter", "-o", "starter/env.toml")
    starter = load_environment(tmp_path / "starter" / "env.toml")
    # The workflow its grant names comes along, and so do the tasks that workflow runs.
    assert [d["name"] for d in starter.workflow_defs] == ["greet_flow"]
    assert [t.name for t in starter.tasks] == ["farewell", "greetings"]
    assert run(sandbox, tmp_path, "plan", "-f", "starter/env.toml", "--detailed-exitcode").returncode == 0

    missing = run(sandbox, tmp_path, "export", "--application", "nope")
    assert missing.returncode == 6, output(missing)
    assert missing.stderr.startswith("error: no application is named 'nope'")
    bad_tag = run(sandbox, tmp_path, "export", "--tag", "no-colon")
    assert bad_tag.returncode == 2, output(bad_tag)
    assert "key:value" in bad_tag.stderr
    bad_name = run(sandbox, tmp_path, "export", "--name", "no spaces")
    assert bad_name.returncode == 2 and "not a valid environment name" in bad_name.stderr


def test_what_the_file_cannot_hold_is_skipped_with_a_warning_never_silently(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    ids = build_by_hand(sandbox)
    auth = sdk(sandbox).get_authorization_client()
    auth.grant_permissions(_user(ids["greetings-worker"]), TargetRef(TargetType.SECRET_NAME, "db-password"),
                           [AccessType.READ])
    auth.create_application(CreateOrUpdateApplicationRequest("twin"))
    auth.create_application(CreateOrUpdateApplicationRequest("twin"))
    auth.add_user_to_group("payments-team", f"app:{ids['billing-worker']}")  # an application as a member

    result = run_ok(sandbox, tmp_path, "export", "-o", "env.toml", "--name", "staging")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3, result.stderr
    assert "skipped application twin: 2 applications have this name" in warnings[0]
    assert "skipped grant READ on SECRET_NAME db-password to application greetings-worker" in warnings[1]
    assert warnings[2] == (f"warning: skipped member app:{ids['billing-worker']} of group payments-team: an "
                           "application's user: the file declares only people as members")
    assert "3 skipped" in result.stdout
    as_json = json.loads(run_ok(sandbox, tmp_path, "export", "-o", "env.toml", "--json", "--name", "staging").stdout)
    assert [s["what"] for s in as_json["skipped"]] == [
        "application twin", "grant READ on SECRET_NAME db-password to application greetings-worker",
        f"member app:{ids['billing-worker']} of group payments-team"]
    assert as_json["counts"] == {"tasks": 3, "workflows": 1, "applications": 3, "roles": 0, "users": 3, "groups": 2}
    assert as_json["workflowFiles"] == ["workflows/greet_flow.json"]
    # The skipped grant is not lost from view: drift reports it as held on the server only.
    drift = run(sandbox, tmp_path, "drift", "-f", "env.toml", "--json")
    assert drift.returncode == 2, output(drift)
    assert [(d["kind"], d["detail"]) for d in json.loads(drift.stdout)["differences"]] == [
        ("grant_extra", "holds READ on SECRET_NAME db-password, which the file does not declare"),
        ("member_extra", f"has member app:{ids['billing-worker']}, whom the file does not declare")]


def test_without_output_file_the_environment_goes_to_stdout_and_workflows_to_the_current_directory(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    build_by_hand(sandbox)
    run_ok(sandbox, tmp_path, "export", "-o", "saved/env.toml", "--name", "staging")
    (tmp_path / "piped").mkdir()
    piped = run_ok(sandbox, tmp_path / "piped", "export", "--name", "staging")
    assert piped.stdout == (tmp_path / "saved" / "env.toml").read_text()
    assert "wrote workflows/greet_flow.json" in piped.stderr.replace(str(tmp_path / "piped") + "/", "")
    assert (tmp_path / "piped" / "workflows" / "greet_flow.json").read_text() == \
        (tmp_path / "saved" / "workflows" / "greet_flow.json").read_text()
    as_json = json.loads(run_ok(sandbox, tmp_path / "piped", "export", "--json", "--name", "staging").stdout)
    assert as_json["content"] == piped.stdout


@pytest.mark.parametrize("args", [["-o", "."], ["--parallelism", "0"]])
def test_export_usage_errors_are_one_line_and_exit_2(sandbox: SandboxProcess, tmp_path: Path,
                                                     args: list[str]) -> None:
    result = run(sandbox, tmp_path, "export", *args)
    assert result.returncode == 2, output(result)
    assert "Traceback" not in result.stderr


def test_exporting_over_a_file_keeps_its_name_and_its_applications_stores(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    build_by_hand(sandbox)
    run_ok(sandbox, tmp_path, "export", "-o", "env.toml", "--name", "staging")
    text = (tmp_path / "env.toml").read_text()
    (tmp_path / "env.toml").write_text(text.replace('name = "billing-worker"\n',
                                                    'name = "billing-worker"\nstore = "env-file:secrets/b.env"\n'))
    run_ok(sandbox, tmp_path, "export", "-o", "env.toml")  # no --name: the file's
    env = load_environment(tmp_path / "env.toml")
    assert env.name == "staging"
    assert {a.name: a.store for a in env.applications} == {
        "billing-worker": "env-file:secrets/b.env", "greetings-starter": None, "greetings-worker": None}
    (tmp_path / "env.toml").write_text("not = [toml")
    replaced = run_ok(sandbox, tmp_path, "export", "-o", "env.toml", "--name", "staging")
    assert "warning: env.toml: line 1, column 8: TOML syntax" in replaced.stderr
    assert "it is replaced, and nothing in it is kept" in replaced.stderr
    assert load_environment(tmp_path / "env.toml").name == "staging"


def test_names_the_file_would_strip_are_skipped_not_changed(sandbox: SandboxProcess, tmp_path: Path) -> None:
    clients = sdk(sandbox)
    auth = clients.get_authorization_client()
    spaced = auth.create_application(CreateOrUpdateApplicationRequest(" spaced ")).id
    plain = auth.create_application(CreateOrUpdateApplicationRequest("plain")).id
    auth.grant_permissions(_user(plain), TargetRef(TargetType.TAG, "team : blue"), [AccessType.READ])
    auth.grant_permissions(_user(plain), TargetRef(TargetType.DOMAIN, " eu "), [AccessType.EXECUTE])
    result = run_ok(sandbox, tmp_path, "export", "-o", "env.toml", "--name", "staging")
    skipped = sorted(line for line in result.stderr.splitlines() if line.startswith("warning: skipped"))
    assert len(skipped) == 3, result.stderr
    assert skipped[0].startswith("warning: skipped application ' spaced ': its name ' spaced ' has white space")
    assert [a.name for a in load_environment(tmp_path / "env.toml").applications] == ["plain"]
    assert spaced
    assert run(sandbox, tmp_path, "plan", "-f", "env.toml", "--detailed-exitcode").returncode == 0
