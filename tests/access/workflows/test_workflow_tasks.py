"""Grants derived from workflows: ``grant --workflow-tasks W``, ``workflowTasks`` in an environment file,
and lint's ``execute-unused`` / ``workflow-unexecutable``. Through the CLI against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orkes_provision.access.state import find_application, read_app_state
from orkes_provision.orkes.models import TaskDef
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision
from tests.environments.apply.helpers import admin_client


def simple(name: str, ref: str | None = None) -> dict[str, Any]:
    return {"name": name, "taskReferenceName": ref or f"{name}_ref", "type": "SIMPLE"}


def main_flow(prefix: str) -> dict[str, Any]:
    """Every nesting Conductor has, with one worker task at each level."""
    p = prefix
    return {"name": f"{p}_main", "version": 1, "tasks": [
        {"name": f"{p}_a", "taskReferenceName": "a"},  # no type: SIMPLE
        {"name": "fork", "taskReferenceName": "fork", "type": "FORK_JOIN", "forkTasks": [
            [simple(f"{p}_b")],
            [{"name": "sw", "taskReferenceName": "sw", "type": "SWITCH", "evaluatorType": "value-param",
              "expression": "x", "decisionCases": {"x": [simple(f"{p}_c")]}, "defaultCase": [simple(f"{p}_d")]}]]},
        {"name": "join", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["b_ref", "sw"]},
        {"name": "loop", "taskReferenceName": "loop", "type": "DO_WHILE", "loopCondition": "false",
         "loopOver": [{"name": "sub", "taskReferenceName": "sub", "type": "SUB_WORKFLOW",
                       "subWorkflowParam": {"name": f"{p}_sub", "version": 1}}]},
        {"name": "dec", "taskReferenceName": "dec", "type": "DECISION", "caseValueParam": "y",
         "decisionCases": {"y": [simple(f"{p}_f")]}},
        {"name": "inline_sub", "taskReferenceName": "inline_sub", "type": "SUB_WORKFLOW",
         "subWorkflowParam": {"name": f"{p}_inline", "workflowDefinition": {
             "name": f"{p}_inline", "tasks": [simple(f"{p}_g")]}}},
        {"name": "dyn", "taskReferenceName": "dyn", "type": "DYNAMIC", "dynamicTaskNameParam": "t"},
        {"name": "dynfork", "taskReferenceName": "dynfork", "type": "FORK_JOIN_DYNAMIC"},
        {"name": "call", "taskReferenceName": "call", "type": "HTTP", "inputParameters": {}},
    ]}


def sub_flow(prefix: str) -> dict[str, Any]:
    # Calls the main flow back: a cycle the walk must not follow for ever.
    return {"name": f"{prefix}_sub", "version": 1, "tasks": [
        simple(f"{prefix}_e"),
        {"name": "back", "taskReferenceName": "back", "type": "SUB_WORKFLOW",
         "subWorkflowParam": {"name": f"{prefix}_main"}}]}


def expected(prefix: str) -> list[str]:
    return sorted(f"{prefix}_{t}" for t in "abcdefg")


def register(sandbox: SandboxProcess, prefix: str) -> None:
    client = admin_client(sandbox)
    client.register_task_defs([TaskDef(name=n) for n in [*expected(prefix), f"{prefix}_unused"]])
    client.register_workflow_def(sub_flow(prefix))
    client.register_workflow_def(main_flow(prefix))


def executes(sandbox: SandboxProcess, app: str) -> list[str]:
    client = admin_client(sandbox)
    grants = read_app_state(client, find_application(client, app)).grants
    return sorted(ident for (kind, ident), access in grants.items() if kind == "TASK_DEF" and "EXECUTE" in access)


def test_grant_workflow_tasks_reaches_every_nested_worker_task(sandbox: SandboxProcess, tmp_path: Path) -> None:
    register(sandbox, "wt")
    made = provision(["app", "wt-worker", "--role", "WORKER", "--store", f"env-file:{tmp_path / 'w.env'}"],
                     env=sandbox.admin_env, cwd=tmp_path)
    assert made.returncode == 0, output(made)
    result = provision(["grant", "wt-worker", "--workflow-tasks", "wt_main", "--json"], env=sandbox.admin_env,
                       cwd=tmp_path)
    assert result.returncode == 0, output(result)
    doc = json.loads(result.stdout)
    assert sorted(row["id"] for row in doc["changed"]) == expected("wt")
    assert {row["type"] for row in doc["changed"]} == {"TASK_DEF"}
    (walked,) = doc["workflowTasks"]
    assert walked["cycles"] == ["wt_main -> wt_sub -> wt_main"]
    assert [note.split(":")[1].strip() for note in walked["dynamic"]] == \
        ["dyn (DYNAMIC)", "dynfork (FORK_JOIN_DYNAMIC)"]
    assert executes(sandbox, "wt-worker") == expected("wt")
    again = provision(["grant", "wt-worker", "--workflow-tasks", "wt_main"], env=sandbox.admin_env, cwd=tmp_path)
    assert again.returncode == 0, output(again)
    assert "No changes" in again.stdout
    assert "uses worker tasks wt_a, wt_b" in again.stderr and "(through wt_inline, wt_main, wt_sub)" in again.stderr
    assert "note: wt_main: dyn (DYNAMIC)" in again.stderr


def test_a_missing_workflow_grants_nothing(sandbox: SandboxProcess, tmp_path: Path) -> None:
    made = provision(["app", "wt-none", "--role", "WORKER"], env=sandbox.admin_env, cwd=tmp_path)
    assert made.returncode == 0, output(made)
    mark = sandbox.mark()
    result = provision(["grant", "wt-none", "--workflow-tasks", "no_such_flow"], env=sandbox.admin_env, cwd=tmp_path)
    assert result.returncode == 6
    assert "workflow definition 'no_such_flow' not found on the server; nothing was granted" in result.stderr
    assert sandbox.write_requests(since=mark) == []


def test_environment_workflow_tasks_grant_the_same(sandbox: SandboxProcess, tmp_path: Path) -> None:
    register(sandbox, "ev")
    (tmp_path / "env.toml").write_text(
        'name = "wtenv"\n\n[[applications]]\nname = "ev-worker"\nroles = ["WORKER"]\nworkflowTasks = ["ev_main"]\n')
    plan = provision(["plan", "-f", "env.toml"], env=sandbox.admin_env, cwd=tmp_path)
    assert plan.returncode == 0, output(plan)
    assert "ev_g" in plan.stdout
    applied = provision(["apply", "-f", "env.toml", "--auto-approve"], env=sandbox.admin_env, cwd=tmp_path)
    assert applied.returncode == 0, output(applied)
    assert executes(sandbox, "ev-worker") == expected("ev")
    drift = provision(["drift", "-f", "env.toml"], env=sandbox.admin_env, cwd=tmp_path)
    assert drift.returncode == 0, output(drift)


def test_environment_workflow_tasks_name_a_workflow_found_nowhere(sandbox: SandboxProcess, tmp_path: Path) -> None:
    (tmp_path / "env.toml").write_text(
        'name = "wtenv"\n\n[[applications]]\nname = "nx-worker"\nworkflowTasks = ["nx_flow"]\n')
    plan = provision(["plan", "-f", "env.toml"], env=sandbox.admin_env, cwd=tmp_path)
    assert plan.returncode == 3
    assert "env.toml:5: workflowTasks: workflow 'nx_flow' is not in [[workflows]] or on the server" in plan.stderr


LINTED = """\
name = "lintwf"

[[workflows]]
file = "main.json"

[[workflows]]
file = "orphan.json"

[[applications]]
name = "lw-worker"
roles = ["WORKER"]

[[applications.grants]]
tasks = ["lw_a", "lw_b", "lw_c", "lw_d", "lw_e", "lw_f", "lw_g", "lw_stale"]
"""


def test_lint_reports_unused_execute_and_unexecutable_workflows(tmp_path: Path) -> None:
    (tmp_path / "main.json").write_text(json.dumps(main_flow("lw") | {"tasks": main_flow("lw")["tasks"][:-3]}))
    (tmp_path / "sub.json").write_text(json.dumps(sub_flow("lw")))
    (tmp_path / "orphan.json").write_text(json.dumps({"name": "lw_orphan", "tasks": [simple("lw_nobody")]}))
    (tmp_path / "env.toml").write_text(LINTED.replace('file = "orphan.json"\n',
                                                      'file = "orphan.json"\n\n[[workflows]]\nfile = "sub.json"\n'))
    result = provision(["lint", "-f", "env.toml", "--json"], cwd=tmp_path)
    assert result.returncode == 2, output(result)
    found = [(f["rule"], f["line"], f["message"]) for f in json.loads(result.stdout)["findings"]]
    assert ("workflow-unexecutable", 7,
            "workflow lw_orphan uses worker task lw_nobody, which no application of this file may execute: "
            "its workers would get 403") in found
    assert [(rule, line) for rule, line, message in found if rule == "execute-unused"] == [("execute-unused", 17)]
    assert "EXECUTE on lw_stale, which no workflow of this file uses" in next(
        m for r, _, m in found if r == "execute-unused")


def test_lint_is_quiet_when_workflow_tasks_cover_the_workflow(tmp_path: Path) -> None:
    (tmp_path / "orphan.json").write_text(json.dumps({"name": "lw_orphan", "tasks": [simple("lw_nobody")]}))
    (tmp_path / "env.toml").write_text('name = "lintwf"\n\n[[workflows]]\nfile = "orphan.json"\n\n'
                                       '[[applications]]\nname = "lw-worker"\nworkflowTasks = ["lw_orphan"]\n')
    result = provision(["lint", "-f", "env.toml"], cwd=tmp_path)
    assert result.returncode == 0, output(result)
