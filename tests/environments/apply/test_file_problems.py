"""Every problem of an environment file at once, each at its line (issue 25, item 5).

Walked as a user would, with the real CLI: ``plan -f FILE``, ``apply`` and ``lint`` list every problem
as ``FILE:LINE: what is wrong`` with its hint, sorted by line, then one summary line. A value that
differs only in case (``metadata_api``), a task name close to one declared in the file or registered
on the server (``shipp`` -> ``ship``) and a group member close to a declared user get "did you mean";
``"30"`` where a number belongs is a problem, never converted. Each hint is then carried out as
printed (the edit it names, at the line it names) and the command run again does what the file meant.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from orkes_provision.orkes.models import TaskDef, app_subject
from orkes_provision.sandbox.harness import SandboxProcess
from orkes_provision.toml.read import parse_toml, schema_problems
from orkes_provision.toml.write import FileLines
from tests.cli import output, provision
from tests.conventions import jsondoc
from tests.environments.apply.helpers import admin_client, apps_named, run
from tests.sandbox_fixtures import one_sandbox

SCHEMA_PROBLEMS = """\
name = "walk"

[[tasks]]
name = "ship"
timeoutSeconds = "30"

[[applications]]
name = "shipper"
roles = ["metadata_api", "WORKER"]
store = "env-file:secrets/shipper.env"
owned = "true"

[[applications.grants]]
tasks = ["ship"]
access = ["execute"]
"""

TASK_TYPOS = """\
name = "walk-tasks"

[[tasks]]
name = "ship"

[[applications]]
name = "packer"
store = "env-file:secrets/packer.env"

[[applications.grants]]
tasks = [
  "shipp",
  "Pack",
]

[[users]]
id = "ada@example.com"

[[groups]]
id = "packers"
members = ["ada@exmaple.com"]
"""

_PROBLEM = re.compile(r"^(?P<file>[^:\s]+):(?P<line>\d+): (?P<message>.+)$")
_REPLACE = re.compile(r"^replace '(?P<old>[^']+)' with '(?P<new>[^']+)'")
_UNQUOTE = re.compile(r"^remove the quotes: (?P<assignment>\w+ = \S+)$")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    yield from one_sandbox(tmp_path_factory.mktemp("file-problems-sandbox"))


def listed(stderr: str) -> list[tuple[str, int, str, str]]:
    """The problems printed before the error line: (file, line, message, hint)."""
    lines = stderr.splitlines()
    found = []
    for index, text in enumerate(lines):
        match = _PROBLEM.match(text)
        if match:
            hint = lines[index + 1]
            assert hint.startswith("    hint: "), stderr
            found.append((match["file"], int(match["line"]), match["message"], hint.removeprefix("    hint: ")))
    return found


def carry_out(path: Path, line: int, hint: str) -> None:
    """Do what ``hint`` says at ``line`` of ``path``, as a person reading it would."""
    lines = path.read_text().splitlines(keepends=True)
    text = lines[line - 1]
    if (replace := _REPLACE.match(hint)) is not None:
        assert replace["old"] in text, f"line {line} does not hold {replace['old']!r}: {text!r}"
        lines[line - 1] = text.replace(f'"{replace["old"]}"', f'"{replace["new"]}"', 1)
    elif (unquote := _UNQUOTE.match(hint)) is not None:
        assert text.split("=")[0].strip() == unquote["assignment"].split(" = ")[0], (line, text, hint)
        lines[line - 1] = unquote["assignment"] + "\n"
    else:
        raise AssertionError(f"not a hint one can carry out: {hint}")
    path.write_text("".join(lines))


def fix_and_apply(sandbox: SandboxProcess, cwd: Path, problems: list[tuple[str, int, str, str]],
                  app_name: str) -> set[str]:
    """Carry out each problem's hint, apply the file; the tasks ``app_name`` then may EXECUTE."""
    for file, line, _, hint in problems:
        carry_out(cwd / file, line, hint)
    fixed = run(sandbox, cwd, "apply", "-f", "env.toml", "--auto-approve")
    assert fixed.returncode == 0, output(fixed)
    with admin_client(sandbox) as client:
        (app,) = apps_named(client, app_name)
        granted = client.get_user_permissions(app_subject(app.id).id)
    return {g.target.id for g in granted if g.target.type == "TASK_DEF" and "EXECUTE" in g.access}


def test_plan_apply_and_lint_list_every_schema_problem_at_its_line_and_each_hint_fixes_it(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    (tmp_path / "env.toml").write_text(SCHEMA_PROBLEMS)
    mark = sandbox.mark()

    planned = run(sandbox, tmp_path, "plan", "-f", "env.toml")

    assert planned.returncode == 3, output(planned)  # a bad environment file, as the exit-code table says
    problems = listed(planned.stderr)
    assert [(line, message) for _, line, message, _ in problems] == [
        (5, "timeoutSeconds: must be a whole number (got '30', a string)"),
        (9, "roles: 'metadata_api' is not one of ADMIN, USER, USER_READ_ONLY, WORKER, UNRESTRICTED_WORKER, "
            "METADATA_API, METADATA_MANAGER, WORKFLOW_MANAGER, APPLICATION_MANAGER, APPLICATION_CREATOR, "
            "PROMPT_MANAGER; did you mean 'METADATA_API'?"),
        (11, "owned: must be true or false (got 'true', a string)"),
        (15, "access: 'execute' is not one of CREATE, READ, UPDATE, DELETE, EXECUTE; did you mean 'EXECUTE'?"),
    ]
    assert {file for file, *_ in problems} == {"env.toml"}
    assert [hint for *_, hint in problems] == [
        "remove the quotes: timeoutSeconds = 30",
        "replace 'metadata_api' with 'METADATA_API' (values are case-sensitive)",
        "remove the quotes: owned = true",
        "replace 'execute' with 'EXECUTE' (values are case-sensitive)",
    ]
    assert planned.stderr.splitlines()[-2:] == [
        "error: env.toml: 4 problems",
        "hint: fix each at its line, then run the command again; docs/environment.md documents every key "
        "('provision schema' prints the JSON Schema)"]

    applied = run(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    assert applied.returncode == 3, output(applied)
    assert listed(applied.stderr) == problems
    assert sandbox.write_requests(mark) == []

    linted = run(sandbox, tmp_path, "lint", "-f", "env.toml")
    assert linted.returncode == 1, output(linted)  # lint: 2 means findings, any error is 1
    assert listed(linted.stderr) == problems

    machine = run(sandbox, tmp_path, "plan", "-f", "env.toml", "--json")
    document = json.loads(machine.stdout)
    assert jsondoc.check("Errors", document) is None, document  # the shape docs/json.md shows
    assert (document["error"], document["exitCode"], document["message"]) == ("config", 3, "env.toml: 4 problems")
    assert [(p["file"], p["line"], p["path"], p["hint"]) for p in document["problems"]] == [
        ("env.toml", 5, "tasks[0].timeoutSeconds", problems[0][3]),
        ("env.toml", 9, "applications[0].roles[0]", problems[1][3]),
        ("env.toml", 11, "applications[0].owned", problems[2][3]),
        ("env.toml", 15, "applications[0].grants[0].access[0]", problems[3][3]),
    ]

    executes = fix_and_apply(sandbox, tmp_path, problems, "shipper")

    assert executes == {"ship"}
    with admin_client(sandbox) as client:
        (app,) = apps_named(client, "shipper")
        assert {r.name for r in client.get_app_user(app.id).roles} == {"METADATA_API", "WORKER"}
        assert client.get_task_def("ship").timeout_seconds == 30


def test_task_names_and_members_neither_declared_nor_on_the_server_are_listed_with_the_name_meant(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    with admin_client(sandbox) as client:
        client.register_task_defs([TaskDef(name="pack")])
    (tmp_path / "env.toml").write_text(TASK_TYPOS)
    mark = sandbox.mark()

    planned = run(sandbox, tmp_path, "plan", "-f", "env.toml")

    assert planned.returncode == 6, output(planned)  # a missing task definition is "not found" everywhere
    problems = listed(planned.stderr)
    assert [(line, message, hint) for _, line, message, hint in problems] == [
        (12, "task 'shipp' is neither declared under [[tasks]] nor on the server; did you mean 'ship'?",
         "replace 'shipp' with 'ship'"),
        (13, "task 'Pack' is neither declared under [[tasks]] nor on the server; did you mean 'pack'?",
         "replace 'Pack' with 'pack'"),
        (21, "member 'ada@exmaple.com' is neither declared under [[users]] nor a user on the server; did you "
             "mean 'ada@example.com'?", "replace 'ada@exmaple.com' with 'ada@example.com'"),
    ]
    assert planned.stderr.splitlines()[-2:] == ["error: env.toml: 3 problems",
                                                "hint: fix each at its line, then run the command again"]
    assert run(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve").returncode == 6
    assert sandbox.write_requests(mark) == []

    executes = fix_and_apply(sandbox, tmp_path, problems, "packer")

    assert executes == {"ship", "pack"}
    with admin_client(sandbox) as client:
        assert not {"shipp", "Pack"} & {t.name for t in client.list_task_defs()}
        assert [g.id for g in client.get_user("ada@example.com").groups] == ["packers"]


def test_lint_lists_the_problems_of_every_file_it_is_given_at_once(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(SCHEMA_PROBLEMS)
    (tmp_path / "b.toml").write_text('name = "b"\n[[applications]]\nname = "x"\nroles = ["WORKR"]\n')

    linted = provision(["lint", "-f", "a.toml", "b.toml"], cwd=tmp_path)

    assert linted.returncode == 1, output(linted)
    assert [(file, line) for file, line, *_ in listed(linted.stderr)] == [
        ("a.toml", 5), ("a.toml", 9), ("a.toml", 11), ("a.toml", 15), ("b.toml", 4)]
    assert listed(linted.stderr)[-1][2:] == (
        "roles: 'WORKR' is not one of ADMIN, USER, USER_READ_ONLY, WORKER, UNRESTRICTED_WORKER, METADATA_API, "
        "METADATA_MANAGER, WORKFLOW_MANAGER, APPLICATION_MANAGER, APPLICATION_CREATOR, PROMPT_MANAGER; did you "
        "mean 'WORKER'?", "replace 'WORKR' with 'WORKER'")
    assert linted.stderr.splitlines()[-2] == "error: a.toml, b.toml: 5 problems"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["ALPHA", "BETA"]
    count: int


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sections: list[_Section]


def test_a_new_section_gets_lines_and_did_you_mean_from_the_model_alone() -> None:
    text = '[[sections]]\nkind = "ALPHA"\ncount = 1\n\n[[sections]]\nkind = "beta"\ncount = "2"\ncolour = 1\n'
    with pytest.raises(ValidationError) as caught:
        _File.model_validate(parse_toml(text.encode(), "new.toml"), strict=True)

    problems = schema_problems("new.toml", FileLines(text), caught.value, _File, "see the docs")

    assert sorted((p.line, p.message, p.hint) for p in problems) == [
        (6, "kind: 'beta' is not one of ALPHA, BETA; did you mean 'BETA'?",
         "replace 'beta' with 'BETA' (values are case-sensitive)"),
        (7, "count: must be a whole number (got '2', a string)", "remove the quotes: count = 2"),
        (8, "colour: unknown key (allowed: kind, count)", "remove the key; see the docs"),
    ]
