"""``provision drift``: changes made by hand (through the official SDK) are found, each with a fix that works."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from conductor.client.http.models.create_or_update_application_request import CreateOrUpdateApplicationRequest
from conductor.client.http.models.subject_ref import SubjectRef, SubjectType
from conductor.client.http.models.target_ref import TargetRef, TargetType
from conductor.client.http.models.task_def import TaskDef
from conductor.client.orkes.models.access_type import AccessType

from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output
from tests.environments.adopt.test_export import sdk
from tests.environments.apply.helpers import run, run_ok

WORKFLOW = {"name": "greet_flow", "version": 1, "timeoutSeconds": 60,
            "tasks": [{"name": "greetings", "taskReferenceName": "greet", "type": "SIMPLE"}]}
ENV = """\
name = "staging"

[[tasks]]
name = "greetings"
timeoutSeconds = 120
responseTimeoutSeconds = 60

[[tasks]]
name = "farewell"

[[workflows]]
file = "greet.json"

[[applications]]
name = "greetings-worker"
roles = ["WORKER"]
store = "env-file:worker.env"

[[applications.grants]]
tasks = ["greetings", "farewell"]

[[applications]]
name = "starter"
roles = []
{extra}
[[applications.grants]]
workflows = ["greet_flow"]
access = ["READ", "EXECUTE"]
"""


def write_env(directory: Path, *, extra: str = "") -> None:
    (directory / "greet.json").write_text(json.dumps(WORKFLOW))
    (directory / "env.toml").write_text(ENV.format(extra=extra))


def app_id(sb: SandboxProcess, name: str) -> str:
    (found,) = [a.id for a in sdk(sb).get_authorization_client().list_applications() if a.name == name]
    return str(found)


def drift_json(sb: SandboxProcess, cwd: Path, expected_exit: int) -> list[dict[str, str]]:
    result = run(sb, cwd, "drift", "-f", "env.toml", "--json")
    assert result.returncode == expected_exit, output(result)
    report = json.loads(result.stdout)
    assert report["inSync"] is (expected_exit == 0)
    assert report["count"] == len(report["differences"])
    differences: list[dict[str, str]] = report["differences"]
    return differences


def test_drift_is_clean_after_apply_and_finds_each_change_made_by_hand_with_a_fix_that_settles_it(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    write_env(tmp_path)
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    clean = run(sandbox, tmp_path, "drift", "-f", "env.toml")
    assert clean.returncode == 0, output(clean)
    assert clean.stdout.splitlines()[-1] == "No drift: the server matches env.toml."
    mark = sandbox.mark()
    assert drift_json(sandbox, tmp_path, 0) == []
    assert sandbox.write_requests(mark) == []  # drift only reads

    clients = sdk(sandbox)
    auth, metadata = clients.get_authorization_client(), clients.get_metadata_client()
    worker, starter = app_id(sandbox, "greetings-worker"), app_id(sandbox, "starter")
    user = SubjectRef(SubjectType.USER, f"app:{worker}")
    auth.grant_permissions(user, TargetRef(TargetType.TASK_DEF, "farewell"), [AccessType.DELETE])   # extra access
    auth.grant_permissions(user, TargetRef(TargetType.DOMAIN, "eu-west"), [AccessType.EXECUTE])     # extra target
    auth.add_role_to_application_user(worker, "METADATA_API")                                        # extra role
    auth.remove_permissions(SubjectRef(SubjectType.USER, f"app:{starter}"),
                            TargetRef(TargetType.WORKFLOW_DEF, "greet_flow"), [AccessType.READ])   # removed access
    metadata.update_task_def(TaskDef(name="greetings", timeout_seconds=300, response_timeout_seconds=60,
                                     total_timeout_seconds=0, owner_email="x@example.com"))
    metadata.register_workflow_def(metadata.get_workflow_def("greet_flow", 1), overwrite=True)  # unchanged
    for key in auth.get_access_keys(worker):
        auth.delete_access_key(worker, key.id)

    differences = drift_json(sandbox, tmp_path, 2)
    assert [(d["symbol"], d["kind"], d["subject"], d["detail"]) for d in differences] == [
        ("~", "task_differs", "task definition greetings",
         "timeoutSeconds is 300 on the server, 120 in the file"),
        ("+", "role_extra", "application greetings-worker", "holds role METADATA_API, which the file does not declare"),
        ("+", "grant_extra", "application greetings-worker",
         "holds EXECUTE on DOMAIN eu-west, which the file does not declare"),
        ("+", "grant_extra", "application greetings-worker",
         "holds DELETE on TASK_DEF farewell, which the file does not declare"),
        ("-", "key_missing", "application greetings-worker", "has no ACTIVE key, though the file gives it a store"),
        ("-", "grant_missing", "application starter", "lacks READ on WORKFLOW_DEF greet_flow"),
    ]
    by_kind = {(d["kind"], d["detail"]): d for d in differences}
    assert by_kind[("task_differs", "timeoutSeconds is 300 on the server, 120 in the file")]["where"] == "env.toml:5"
    assert differences[1]["where"] == "env.toml:16"  # the roles line of greetings-worker
    assert differences[3]["where"] == "env.toml:20"  # the grant that names farewell
    assert differences[3]["fix"] == "provision revoke greetings-worker farewell --access DELETE"
    assert differences[3]["fileChange"] == 'add a grant: tasks = ["farewell"], access = ["DELETE"]'
    assert differences[2]["fix"] == "provision revoke greetings-worker --domain eu-west --access EXECUTE"
    assert differences[1]["fix"] == "provision apply -f env.toml --prune"
    text = run(sandbox, tmp_path, "drift", "-f", "env.toml")
    assert text.returncode == 2
    assert "+ application greetings-worker: holds role METADATA_API, which the file does not declare (env.toml:16)" \
        in text.stdout
    assert "    fix the server: provision revoke greetings-worker farewell --access DELETE" in text.stdout
    assert text.stdout.splitlines()[-1] == "6 differences between the server and env.toml."

    for command in dict.fromkeys(d["fix"] for d in differences):  # each printed fix, run as printed
        fixed = run(sandbox, tmp_path, *shlex.split(command)[1:], *(["--auto-approve"] if " apply " in command else []))
        assert fixed.returncode == 0, f"{command}: {output(fixed)}"
    assert drift_json(sandbox, tmp_path, 0) == []


def test_the_file_side_of_each_difference_settles_it_too(sandbox: SandboxProcess, tmp_path: Path) -> None:
    write_env(tmp_path)
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    starter = app_id(sandbox, "starter")
    sdk(sandbox).get_authorization_client().add_role_to_application_user(starter, "WORKER")
    (difference,) = drift_json(sandbox, tmp_path, 2)
    assert difference["fileChange"] == 'add "WORKER" to roles'
    text = (tmp_path / "env.toml").read_text().replace('name = "starter"\nroles = []', 'name = "starter"\n'
                                                       'roles = ["WORKER"]')
    (tmp_path / "env.toml").write_text(text)
    assert drift_json(sandbox, tmp_path, 0) == []


def test_missing_applications_definitions_and_undeclared_owned_applications_are_reported(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    write_env(tmp_path, extra='\n[[applications]]\nname = "retired"\nroles = []\n')
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    write_env(tmp_path)  # "retired" leaves the file but stays on the server, tagged as staging's
    auth = sdk(sandbox).get_authorization_client()
    auth.delete_application(app_id(sandbox, "starter"))
    sdk(sandbox).get_metadata_client().unregister_task_def("farewell")
    auth.create_application(CreateOrUpdateApplicationRequest("someone-elses"))  # untagged: not this file's business

    differences = drift_json(sandbox, tmp_path, 2)
    assert [(d["kind"], d["subject"]) for d in differences] == [
        ("task_missing", "task definition farewell"),
        ("app_missing", "application starter"),
        ("app_undeclared", "application retired"),
    ]
    assert differences[0]["where"] == "env.toml:8"
    assert differences[2]["fix"] == "provision apply -f env.toml --prune   (deletes it)"
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve", "--prune")
    assert drift_json(sandbox, tmp_path, 0) == []


def test_fix_commands_carry_the_profile_the_drift_ran_with(sandbox: SandboxProcess, tmp_path: Path) -> None:
    write_env(tmp_path)
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    auth = sdk(sandbox).get_authorization_client()
    auth.add_role_to_application_user(app_id(sandbox, "starter"), "WORKER")
    env = {"ORKES_PROVISION_SANDBOX_DIR": str(sandbox.data_dir), "CONDUCTOR_AUTH_KEY": "", "CONDUCTOR_AUTH_SECRET": "",
           "CONDUCTOR_SERVER_URL": ""}
    from tests.cli import provision

    result = provision(["drift", "-f", "env.toml", "--profile", "sandbox", "--json"], env=env, cwd=tmp_path)
    assert result.returncode == 2, output(result)
    (difference,) = json.loads(result.stdout)["differences"]
    assert difference["fix"] == "provision apply -f env.toml --prune --profile sandbox"


@pytest.mark.parametrize(("args", "message"), [
    (["-f", "missing.toml"], "error: missing.toml: no such environment file"),
    (["-f", "env.toml", "--parallelism", "0"], "invalid value for '--parallelism'"),
    (["--no-such-flag"], "no such option"),
])
def test_drift_errors_exit_1_never_2(sandbox: SandboxProcess, tmp_path: Path, args: list[str], message: str) -> None:
    write_env(tmp_path)
    result = run(sandbox, tmp_path, "drift", *args)
    assert result.returncode == 1, output(result)
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_drift_against_an_unreachable_server_exits_1_with_one_error_line(tmp_path: Path) -> None:
    from tests.cli import provision

    write_env(tmp_path)
    result = provision(["drift", "-f", "env.toml", "--json"], cwd=tmp_path, env={
        "CONDUCTOR_SERVER_URL": "http://127.0.0.1:9/api", "CONDUCTOR_AUTH_KEY": "k", "CONDUCTOR_AUTH_SECRET": "s"})
    assert result.returncode == 1, output(result)
    error = json.loads(result.stdout)  # under --json the error is the outcome, on stdout
    assert error["error"] == "unavailable"
    assert error["exitCode"] == 1


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
roles = ["USER"]

[[groups]]
id = "payments-team"
description = "Payments engineers"
roles = ["WORKER"]
members = ["ada@example.com"]

[[groups.grants]]
tasks = ["charge"]
"""


def test_changes_to_declared_users_and_groups_made_by_hand_are_found_and_apply_prune_settles_them(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    from conductor.client.http.models.upsert_group_request import UpsertGroupRequest
    from conductor.client.http.models.upsert_user_request import UpsertUserRequest

    (tmp_path / "env.toml").write_text(PEOPLE)
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    assert drift_json(sandbox, tmp_path, 0) == []

    auth = sdk(sandbox).get_authorization_client()
    auth.upsert_user(UpsertUserRequest(name="Ada King", roles=["USER", "ADMIN"]), "ada@example.com")  # renamed, role
    auth.upsert_user(UpsertUserRequest(name="Eve", roles=["USER"]), "eve@example.com")  # undeclared: not reported
    auth.add_user_to_group("payments-team", "bob@example.com")  # a member added by hand
    auth.upsert_group(UpsertGroupRequest(description="Payments", roles=["WORKER", "WORKFLOW_MANAGER"]),
                      "payments-team")
    group = SubjectRef(SubjectType.GROUP, "payments-team")
    auth.grant_permissions(group, TargetRef(TargetType.TASK_DEF, "charge"), [AccessType.DELETE])
    auth.remove_permissions(group, TargetRef(TargetType.TASK_DEF, "charge"), [AccessType.EXECUTE])

    differences = drift_json(sandbox, tmp_path, 2)
    assert [(d["symbol"], d["kind"], d["subject"], d["detail"], d.get("where")) for d in differences] == [
        ("~", "user_differs", "user ada@example.com",
         'name is "Ada King" on the server, "Ada Lovelace" in the file', "env.toml:8"),
        ("+", "role_extra", "user ada@example.com", "holds role ADMIN, which the file does not declare", "env.toml:9"),
        ("~", "group_differs", "group payments-team",
         'description is "Payments" on the server, "Payments engineers" in the file', "env.toml:17"),
        ("+", "role_extra", "group payments-team", "holds role WORKFLOW_MANAGER, which the file does not declare",
         "env.toml:18"),
        ("+", "member_extra", "group payments-team", "has member bob@example.com, whom the file does not declare",
         "env.toml:19"),
        ("-", "grant_missing", "group payments-team", "lacks EXECUTE on TASK_DEF charge", "env.toml:22"),
        ("+", "grant_extra", "group payments-team",
         "holds DELETE on TASK_DEF charge, which the file does not declare", "env.toml:22"),
    ]
    assert differences[4]["fix"] == "provision apply -f env.toml --prune"
    assert differences[4]["fileChange"] == 'add "bob@example.com" to members'
    for command in dict.fromkeys(d["fix"] for d in differences):
        fixed = run(sandbox, tmp_path, *shlex.split(command)[1:], "--auto-approve")
        assert fixed.returncode == 0, f"{command}: {output(fixed)}"
    assert drift_json(sandbox, tmp_path, 0) == []
    assert "eve@example.com" in {u.id for u in auth.list_users()}  # never touched

    auth.delete_group("payments-team")
    auth.delete_user("bob@example.com")
    assert [(d["kind"], d["subject"]) for d in drift_json(sandbox, tmp_path, 2)] == [
        ("user_missing", "user bob@example.com"), ("group_missing", "group payments-team")]
