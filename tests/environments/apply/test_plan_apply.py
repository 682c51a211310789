"""``provision plan`` and ``provision apply`` against a fresh sandbox: output, convergence, prune, CLI contract."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from orkes_provision.credentials.stores.envfile import parse_env
from orkes_provision.orkes.models import Tag, Target, TaskDef, app_subject
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision
from tests.environments.apply.helpers import App, admin_client, apps_named, env_text, grants_of, run, run_ok

WORKFLOW = {"name": "greet_flow", "version": 1, "timeoutSeconds": 60,
            "tasks": [{"name": "greetings", "taskReferenceName": "greet", "type": "SIMPLE"}]}


def write_staging(directory: Path, *, timeout: int = 120, worker_roles: list[str] | None = None,
                  extra_tasks: list[str] | None = None, workflow: dict[str, object] | None = None) -> Path:
    (directory / "workflows").mkdir(exist_ok=True)
    (directory / "workflows" / "greet.json").write_text(json.dumps(workflow or WORKFLOW))
    tasks = {"greetings": {"timeoutSeconds": timeout, "responseTimeoutSeconds": 60}}
    tasks.update({t: {} for t in extra_tasks or []})
    apps = [App("greetings-worker", tasks=["greetings", *(extra_tasks or [])], roles=worker_roles or ["WORKER"],
                store="env-file:secrets/greetings.env", workflows=["greet_flow"]),
            App("starter", roles=[])]
    path = directory / "env.toml"
    path.write_text(env_text("staging", apps, tasks=tasks, workflow_files=["workflows/greet.json"]))
    return path


CREATE_PLAN = """\
+ register task definition greetings
+ register workflow definition greet_flow v1
+ create application greetings-worker
+ add role WORKER to greetings-worker
+ create a key for greetings-worker into env file {secrets}/greetings.env (no key stored)
+ grant EXECUTE on TASK_DEF greetings to greetings-worker
+ grant EXECUTE on WORKFLOW_DEF greet_flow to greetings-worker
+ create application starter
Plan: 8 to add, 0 to change, 0 to delete."""


def test_plan_on_an_empty_server_lists_every_creation_in_a_stable_order_and_writes_nothing(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    write_staging(tmp_path)
    mark = sandbox.mark()
    first = run(sandbox, tmp_path, "plan", "-f", "env.toml", "--detailed-exitcode")
    second = run(sandbox, tmp_path, "plan", "-f", "env.toml", "--detailed-exitcode")
    assert first.returncode == 2, output(first)
    assert first.stdout == second.stdout
    assert first.stdout.splitlines()[0] == f"Environment staging on {sandbox.url}"
    assert "\n".join(first.stdout.splitlines()[1:]) == CREATE_PLAN.format(secrets=tmp_path / "secrets")
    as_json = json.loads(run(sandbox, tmp_path, "plan", "-f", "env.toml", "--json").stdout)
    assert [c["action"] for c in as_json["changes"]] == [
        "register_task", "register_workflow", "create_app", "add_role", "create_key", "grant", "grant", "create_app"]
    assert as_json["summary"] == {"create": 8, "change": 0, "delete": 0}
    assert sandbox.write_requests(mark) == []
    assert not (tmp_path / "secrets").exists()


def test_apply_builds_the_environment_and_a_second_apply_makes_zero_writes(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    write_staging(tmp_path)
    applied = run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    assert "Apply complete: 8 done, 0 failed, 0 skipped" in applied.stdout
    key_file = tmp_path / "secrets" / "greetings.env"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    values = parse_env(key_file.read_text())
    assert values["CONDUCTOR_AUTH_SECRET"] not in output(applied)
    with admin_client(sandbox) as client:
        (worker,) = apps_named(client, "greetings-worker")
        assert {(t.key, t.value) for t in worker.tags} == {("managed-by", "orkes-provision"),
                                                         ("environment", "staging")}
        assert client.get_app_user(worker.id).role_names == {"WORKER"}
        assert grants_of(client, worker.id) == {("TASK_DEF", "greetings"): {"EXECUTE"},
                                                ("WORKFLOW_DEF", "greet_flow"): {"EXECUTE"}}
        assert [k.id for k in client.list_keys(worker.id)] == [values["CONDUCTOR_AUTH_KEY"]]
        assert client.exchange_token(values["CONDUCTOR_AUTH_KEY"], SecretStr(values["CONDUCTOR_AUTH_SECRET"]))
        assert client.get_task_def("greetings").timeout_seconds == 120
        assert client.get_workflow_def("greet_flow", 1)["tasks"][0]["taskReferenceName"] == "greet"
        (starter,) = apps_named(client, "starter")
        assert client.get_app_user(starter.id).role_names == set()
    mark = sandbox.mark()
    again = run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    assert "No changes: the server already matches." in again.stdout
    assert sandbox.write_requests(mark) == []
    assert run(sandbox, tmp_path, "plan", "-f", "env.toml", "--detailed-exitcode").returncode == 0
    assert parse_env(key_file.read_text()) == values


def test_plan_after_editing_the_file_shows_changes_and_apply_converges(sandbox: SandboxProcess, tmp_path: Path) -> None:
    write_staging(tmp_path)
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    changed_flow = dict(WORKFLOW, timeoutSeconds=300)
    write_staging(tmp_path, timeout=300, worker_roles=["WORKER", "METADATA_API"], extra_tasks=["farewell"],
                  workflow=changed_flow)
    planned = run(sandbox, tmp_path, "plan", "-f", "env.toml", "--detailed-exitcode")
    assert planned.returncode == 2, output(planned)
    assert planned.stdout.splitlines()[1:] == [
        "+ register task definition farewell",
        "~ update task definition greetings (timeoutSeconds: 120 -> 300)",
        "~ update workflow definition greet_flow v1 (differs in timeoutSeconds)",
        "+ add role METADATA_API to greetings-worker",
        "+ grant EXECUTE on TASK_DEF farewell to greetings-worker",
        "Plan: 3 to add, 2 to change, 0 to delete.",
    ]
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    with admin_client(sandbox) as client:
        assert client.get_task_def("greetings").timeout_seconds == 300
        assert client.get_workflow_def("greet_flow", 1)["timeoutSeconds"] == 300
    mark = sandbox.mark()
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    assert sandbox.write_requests(mark) == []


def test_prune_deletes_only_what_this_environment_owns(sandbox: SandboxProcess, tmp_path: Path) -> None:
    env_file = tmp_path / "env.toml"
    env_file.write_text(env_text("staging", [App("keep", tasks=["t1"]), App("retire")], tasks={"t1": {}}))
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    with admin_client(sandbox) as client:
        bystander = client.create_application("bystander")
        other = client.create_application("other-env-app")
        client.put_application_tags(other.id, [Tag(key="managed-by", value="orkes-provision"),
                                               Tag(key="environment", value="production")])
        (keep,) = apps_named(client, "keep")
        client.grant(app_subject(keep.id), Target(type="TASK_DEF", id="stray"), ["EXECUTE"])
        client.add_role(keep.id, "METADATA_API")
    env_file.write_text(env_text("staging", [App("keep", tasks=["t1"])], tasks={"t1": {}}))
    without = run_ok(sandbox, tmp_path, "plan", "-f", "env.toml")
    assert "No changes" in without.stdout
    pruning = run_ok(sandbox, tmp_path, "plan", "-f", "env.toml", "--prune")
    as_json = json.loads(run_ok(sandbox, tmp_path, "plan", "-f", "env.toml", "--prune", "--json").stdout)
    (retire_id,) = [c["appId"] for c in as_json["changes"] if c["action"] == "delete_app"]
    assert pruning.stdout.splitlines()[1:] == [
        f"- delete application retire ({retire_id})",
        "- remove role METADATA_API from keep",
        "- revoke EXECUTE on TASK_DEF stray from keep",
        "Plan: 0 to add, 0 to change, 3 to delete.",
    ]
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve", "--prune")
    with admin_client(sandbox) as client:
        names = sorted(a.name for a in client.list_applications())
        assert "retire" not in names
        assert {"keep", "bystander", "other-env-app"} <= set(names)
        assert client.get_app_user(keep.id).role_names == {"WORKER"}
        assert grants_of(client, keep.id) == {("TASK_DEF", "t1"): {"EXECUTE"}}
        assert client.get_application(bystander.id).name == "bystander"
    mark = sandbox.mark()
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve", "--prune")
    assert sandbox.write_requests(mark) == []


def test_apply_without_a_terminal_or_auto_approve_is_refused_before_any_request(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    write_staging(tmp_path)
    mark = sandbox.mark()
    refused = run(sandbox, tmp_path, "apply", "-f", "env.toml")
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "error: stdin is not a terminal, so apply cannot ask for confirmation",
        "hint: review the changes with 'provision plan -f FILE', then run apply with --yes (or --auto-approve)"]
    assert sandbox.requests()[mark:] == []


def test_malformed_file_is_one_error_line_and_one_hint_line_with_exit_code_3(tmp_path: Path) -> None:
    (tmp_path / "env.toml").write_text('name = "x"\n[[applications]]\nname = "a"\n[[applications.grants]]\n'
                                       'tasks = ["t"]\naccess = ["EXECUT"]\n')
    for args in (["plan", "-f", "env.toml", "--prune"], ["apply", "-f", "env.toml", "--auto-approve"]):
        result = provision(args, cwd=tmp_path)
        assert result.returncode == 3
        error, hint = result.stderr.splitlines()
        assert error == ("error: env.toml:6: access: 'EXECUT' is not one of "
                         "CREATE, READ, UPDATE, DELETE, EXECUTE; did you mean 'EXECUTE'?")
        assert hint == "hint: replace 'EXECUT' with 'EXECUTE'"
    detailed = provision(["plan", "-f", "env.toml", "--detailed-exitcode"], cwd=tmp_path)
    assert detailed.returncode == 1
    assert "Traceback" not in output(detailed)


def test_schema_command_prints_the_json_schema(tmp_path: Path) -> None:
    printed = provision(["schema"], cwd=tmp_path)
    assert printed.returncode == 0, output(printed)
    schema = json.loads(printed.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == {"name", "server", "tasks", "workflows", "applications", "users", "groups",
                                          "roles"}
    assert schema["additionalProperties"] is False


def test_apply_on_a_terminal_asks_shows_progress_and_a_no_changes_nothing(sandbox: SandboxProcess, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from orkes_provision.cli import cli, common, env_cmd
    from orkes_provision.errors import Cancelled

    write_staging(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(env_cmd, "_stdin_is_tty", lambda: True)
    monkeypatch.setattr(common, "stdin_is_tty", lambda: True)
    monkeypatch.setattr(env_cmd, "_stderr_is_tty", lambda: True)
    mark = sandbox.mark()
    for answer, expected in (("n\n", ""), ("y\n", "Apply complete")):
        result = CliRunner().invoke(cli, ["apply", "-f", "env.toml"], input=answer, env=dict(sandbox.admin_env))
        assert "+ create application greetings-worker" in result.output
        assert "Apply these 8 changes to " in result.output
        assert expected in result.output
        if answer == "n\n":  # cancelled: exit 130 like every other question answered no
            assert isinstance(result.exception, Cancelled) and result.exception.exit_code == 130
            assert sandbox.write_requests(mark) == []
    assert result.exit_code == 0, result.output
    assert "\r[8/8] " in result.output  # the progress line, rewritten in place
    assert len(sandbox.write_requests(mark)) > 0


def test_lowering_only_the_timeout_of_an_existing_task_lowers_its_response_timeout_too(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    with admin_client(sandbox) as client:
        client.register_task_defs([TaskDef(name="slow", timeout_seconds=3600, response_timeout_seconds=600)])
    (tmp_path / "env.toml").write_text(env_text("staging", [], tasks={"slow": {"timeoutSeconds": 100}}))
    planned = run_ok(sandbox, tmp_path, "plan", "-f", "env.toml")
    assert "~ update task definition slow (timeoutSeconds: 3600 -> 100)" in planned.stdout
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    with admin_client(sandbox) as client:
        updated = client.get_task_def("slow")
    assert (updated.timeout_seconds, updated.response_timeout_seconds) == (100, 100)
    mark = sandbox.mark()
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    assert sandbox.write_requests(mark) == []


def test_grant_on_a_task_neither_declared_nor_on_the_server_stops_the_plan(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    (tmp_path / "env.toml").write_text(env_text("staging", [App("w", tasks=["ghost"])]))
    result = run(sandbox, tmp_path, "plan", "-f", "env.toml")
    assert result.returncode == 6  # not found, as the exit-code table says
    line = next(n for n, text in enumerate(env_text("staging", [App("w", tasks=["ghost"])]).splitlines(), 1)
                if "ghost" in text)
    assert result.stderr.splitlines() == [
        f"error: env.toml:{line}: task 'ghost' is neither declared under [[tasks]] nor on the server",
        "hint: declare it under [[tasks]] in env.toml, or register it first"]


def test_two_applications_with_a_declared_name_stop_the_plan_before_any_write(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    with admin_client(sandbox) as client:
        first, second = client.create_application("dup"), client.create_application("dup")
    (tmp_path / "env.toml").write_text(env_text("staging", [App("dup")]))
    mark = sandbox.mark()
    result = run(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    assert result.returncode == 7
    error, hint = result.stderr.splitlines()
    assert error.startswith("error: 2 applications are named 'dup'")
    assert first.id in error
    assert second.id in error
    assert hint == ("hint: application names must be unique for env.toml: delete or rename the extras "
                    "('provision apps delete ID'), then plan again")
    assert sandbox.write_requests(mark) == []
