"""Streams and JSON, over every command: a result on stdout and everything else on stderr; with --json
every outcome, the parser's errors included, is one JSON document on stdout, shaped as docs/json.md
says. Runs are those of ``scenarios.PLAN`` (one per command at least) plus a usage error per command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conventions import jsondoc
from tests.conventions.runner import run_cli
from tests.conventions.scenarios import PLAN, Context, Run, Step, execute
from tests.conventions.tree import Node, leaves, walk

LEAVES = leaves()
LEAF_IDS = [n.path for n in LEAVES]
ERROR_KEYS = {"error", "message", "hint", "exitCode"}
# A usage error for each command: an unknown option, except where unknown options are the worker's
# command line ('run python3 main.py --verbose').
BAD_USAGE: dict[str, tuple[list[str], str]] = {"run": (["--replicas", "many"], "'many' is not a valid integer")}


def bad_usage(node: Node) -> tuple[list[str], str]:
    return BAD_USAGE.get(node.path, (["--no-such-option"], "no such option '--no-such-option'"))


def test_every_command_has_a_scenario() -> None:
    planned = {step.command for step in PLAN}
    assert planned == set(LEAF_IDS), "add a run to tests/conventions/scenarios.py PLAN for each new command"


def test_every_run_ended_as_planned(human_runs: tuple[Context, list[Run]],
                                    json_runs: tuple[Context, list[Run]]) -> None:
    for _, runs in (human_runs, json_runs):
        for run in runs:
            assert run.result.crashed is None, str(run.result)
            assert run.result.code == run.step.expect, str(run.result)
            assert "Traceback" not in run.result.err, str(run.result)


def test_a_result_is_on_stdout_and_only_there(human_runs: tuple[Context, list[Run]]) -> None:
    ctx, runs = human_runs
    for run in runs:
        said = ctx.fill(run.step.says)
        if run.step.expect == 0:
            assert said in run.result.out, f"the result belongs on stdout: {run.result}"
            assert said not in run.result.err, f"the result is printed on stderr too: {run.result}"
            assert "error:" not in run.result.err, str(run.result)
        else:
            lines = run.result.err.splitlines()
            assert [line.split(":")[0] for line in lines[-2:]] == ["error", "hint"], str(run.result)
            if said:  # a report before the failure (doctor) is a result
                assert said in run.result.out, str(run.result)
            else:
                assert run.result.out == "", str(run.result)


def test_with_json_every_outcome_is_one_document_on_stdout_shaped_as_documented(
        json_runs: tuple[Context, list[Run]]) -> None:
    _, runs = json_runs
    checked = set()
    for run in runs:
        step, result = run.step, run.result
        if not step.json and step.expect == 0:
            continue
        document = result.json()  # exactly one document: json.loads fails on anything more
        problem = jsondoc.check(step.section, document)
        assert problem is None, f"{problem}\n{result}"
        if step.section == "Errors":
            assert document["exitCode"] == result.code, str(result)
        checked.add(step.command)
    assert checked >= {s.command for s in PLAN if s.json}


def test_a_report_followed_by_a_failure_keeps_stdout_one_document(json_runs: tuple[Context, list[Run]]) -> None:
    _, runs = json_runs
    (doctor,) = [r for r in runs if r.command == "doctor" and r.step.expect == 11]
    assert jsondoc.check("doctor", doctor.result.json()) is None
    assert json.loads(doctor.result.err.strip().splitlines()[-1])["error"] == "verification"


def test_doctors_failure_is_on_stdout_like_every_other_commands_error(json_runs: tuple[Context, list[Run]]) -> None:
    _, runs = json_runs
    (doctor,) = [r for r in runs if r.command == "doctor" and r.step.expect == 11]
    document = doctor.result.json()
    assert (document["ok"], document["error"], document["exitCode"]) == (False, "verification", doctor.result.code)
    assert document["message"].startswith("1 problem(s) found; first: ")
    assert document["hint"] == next(f["fix"] for f in document["findings"] if not f["ok"])


def test_supervised_workers_report_lifecycle_events_as_json_lines_on_stderr(
        json_runs: tuple[Context, list[Run]]) -> None:
    _, runs = json_runs
    (worker,) = [r for r in runs if r.command == "worker run"]
    events = [json.loads(line) for line in worker.result.err.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events if e["event"] != "agent"][:1] == ["started"]
    assert "agent" in [e["event"] for e in events]  # worker run serves its workers through a credential agent
    assert "stopped" in [e["event"] for e in events]
    for event in events:
        assert jsondoc.check("worker run", event) is None, event
    assert "worker up" in worker.result.out


# Commands where 2 means "found something" (as for 'plan --detailed-exitcode'): their usage errors exit 1.
USAGE_EXIT = {"drift": 1, "lint": 1}


@pytest.mark.parametrize("node", LEAVES, ids=LEAF_IDS)
def test_a_usage_error_is_json_on_stdout_under_json_wherever_json_is_given(node: Node, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    bad, message = bad_usage(node)
    for args in ([*node.argv, *bad, "--json"], ["--json", *node.argv, *bad]):
        result = run_cli(args, env=env, cwd=tmp_path)
        expected = USAGE_EXIT.get(node.path, 2)
        assert result.code == expected, result
        assert result.err == "", result
        document = result.json()
        assert set(document) == ERROR_KEYS and document["error"] == "usage", result
        assert document["exitCode"] == expected, result
        assert message in document["message"], result
        assert f"provision {node.path} --help" in document["hint"]


@pytest.mark.parametrize("node", [n for n in LEAVES if any(p.required for p in n.command.params
                                                            if not p.opts[0].startswith("-"))],
                         ids=lambda n: n.path)
def test_a_missing_argument_is_json_on_stdout_under_json(node: Node, tmp_path: Path) -> None:
    result = run_cli(["--json", *node.argv], env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, cwd=tmp_path)
    assert result.code == USAGE_EXIT.get(node.path, 2), result
    document = result.json()
    assert document["error"] == "usage" and document["message"].startswith("missing argument"), result


@pytest.mark.parametrize("node", LEAVES, ids=LEAF_IDS)
def test_a_usage_error_is_one_error_line_and_one_hint_line_on_stderr(node: Node, tmp_path: Path) -> None:
    bad, message = bad_usage(node)
    result = run_cli([*node.argv, *bad], env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, cwd=tmp_path)
    assert result.code == USAGE_EXIT.get(node.path, 2), result
    assert result.out == ""
    error, hint = result.err.splitlines()
    assert error.startswith("error: ") and message in error, result
    assert hint.startswith(f"hint: usage: provision {node.path} ") and hint.endswith(f"'provision {node.path} --help'")


@pytest.mark.parametrize("step", [s for s in PLAN if s.mode == "cli" and s.expect == 0], ids=lambda s: s.command)
def test_a_command_that_shows_server_options_uses_them(step: Step, json_runs: tuple[Context, list[Run]],
                                                      other_server: str) -> None:
    ctx, _ = json_runs
    node = next(n for n in LEAVES if n.path == step.command)
    if "--server" not in node.option_names():
        env = ctx.env(server=False)  # and one that shows none needs none
        # init writes a project, so it writes a new one; the others read what the PLAN's init wrote
        # (no test's order may matter: xdist runs them on any worker).
        args = [ctx.fill(a.replace("{root}/proj", "{root}/proj-offline") if step.command == "init" else a)
                for a in step.args]
        result = run_cli(args, env=env, cwd=ctx.root)
        assert result.code == 0, result
        return
    result = execute(ctx, step, extra=("--server", other_server))
    assert result.code != 0, f"--server changed nothing: {result}"
    document = result.json()
    assert jsondoc.check("Errors", document) is None or jsondoc.check(step.section, document) is None, str(result)


@pytest.mark.parametrize("node", [n for n in walk() if n.is_group and not n.runs_alone],
                         ids=lambda n: n.path or "provision")
def test_a_group_without_a_command_shows_its_help_or_a_json_usage_error(node: Node, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    human = run_cli(node.argv, env=env, cwd=tmp_path)
    assert human.code == 2 and "Commands:" in human.err and human.out == "", human
    machine = run_cli(["--json", *node.argv], env=env, cwd=tmp_path)
    assert machine.code == 2 and machine.err == "", machine
    assert machine.json() == {"error": "usage", "message": "no command given", "exitCode": 2,
                              "hint": f"'{' '.join(['provision', *node.argv])} --help' lists the commands"}
