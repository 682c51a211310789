"""docs/environment.md: every TOML example loads, and the console examples run as printed.

The console blocks (```console) are a walk-through against a server "made by hand"; this test
builds that server in a sandbox through the official SDK (``build_doc_server``, as the doc
describes it), then runs each ``$ `` line of each block with bash, in order, in one directory,
and compares what it printed (stderr, then stdout: the order a terminal shows them) with the
block. Once the walk-through has begun (after the first console block), a TOML block that starts
with ``# FILE`` is written to FILE (so later commands read it), and the one that starts with
export's header must equal what export wrote.
The sandbox's URL reads ``https://staging.example.com/api`` in the doc.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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

from orkes_provision.environments.environment import load_environment
from orkes_provision.environments.export import HEADER
from orkes_provision.sandbox.harness import SandboxProcess
from orkes_provision.toml.read import parse_toml
from orkes_provision.workers.project import load_project
from tests.environments.adopt.test_export import sdk

DOC = Path(__file__).resolve().parents[3] / "docs" / "environment.md"
DOC_SERVER = "https://staging.example.com/api"
_BLOCK = re.compile(r"^```(?P<lang>[a-z]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(lang: str | None = None) -> list[tuple[str, str]]:
    found = [(m["lang"], m["body"]) for m in _BLOCK.finditer(DOC.read_text())]
    return [b for b in found if lang is None or b[0] == lang]


def build_doc_server(sb: SandboxProcess) -> None:
    """The server of the walk-through: what a team made by hand in the Orkes UI."""
    clients = sdk(sb)
    metadata = clients.get_metadata_client()
    metadata.register_task_def(TaskDef(name="greetings", description="Says hello", timeout_seconds=120,
                                       total_timeout_seconds=0, response_timeout_seconds=60, retry_count=2,
                                       retry_delay_seconds=60, owner_email="team-hello@example.com"))
    task = WorkflowTask(name="greetings", task_reference_name="greet", type="SIMPLE",
                        input_parameters={"name": "${workflow.input.name}"})
    metadata.register_workflow_def(WorkflowDef(name="greetings_flow", version=1, tasks=[task], timeout_seconds=60,
                                               owner_email="team-hello@example.com"), overwrite=True)
    auth = clients.get_authorization_client()
    worker = auth.create_application(CreateOrUpdateApplicationRequest("greetings-worker")).id
    auth.add_role_to_application_user(worker, "WORKER")
    auth.grant_permissions(SubjectRef(SubjectType.USER, f"app:{worker}"), TargetRef(TargetType.TASK_DEF, "greetings"),
                           [AccessType.EXECUTE])
    starter = auth.create_application(CreateOrUpdateApplicationRequest("greetings-starter")).id
    auth.grant_permissions(SubjectRef(SubjectType.USER, f"app:{starter}"),
                           TargetRef(TargetType.WORKFLOW_DEF, "greetings_flow"), [AccessType.EXECUTE])
    ops = auth.create_application(CreateOrUpdateApplicationRequest("ops-bot")).id
    auth.add_role_to_application_user(ops, "WORKFLOW_MANAGER")
    auth.upsert_user(UpsertUserRequest(name="Ada Lovelace", roles=["USER"]), "ada@example.com")
    auth.upsert_group(UpsertGroupRequest(description="Greeting engineers", roles=[]), "hello-team")
    auth.add_user_to_group("hello-team", "ada@example.com")
    auth.grant_permissions(SubjectRef(SubjectType.GROUP, "hello-team"),
                           TargetRef(TargetType.WORKFLOW_DEF, "greetings_flow"), [AccessType.READ])


def test_every_toml_example_is_a_valid_environment_or_project_file(tmp_path: Path) -> None:
    examples = blocks("toml")
    assert len(examples) >= 3
    for _, body in examples:
        data = parse_toml(body.encode(), "doc example")
        if "name" not in data:
            (tmp_path / "orkes-provision.toml").write_text(body)
            assert load_project(tmp_path / "orkes-provision.toml") is not None
            continue
        for entry in data.get("workflows", []):  # the files it names, so that loading it reads them
            path = tmp_path / entry["file"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text('{"name": "greetings_flow", "tasks": []}')
        (tmp_path / "env.toml").write_text(body)
        load_environment(tmp_path / "env.toml")


def test_every_new_key_and_command_is_documented() -> None:
    from orkes_provision.environments.environment import ApplicationEntry, Environment, GroupEntry, UserEntry

    text = DOC.read_text()
    for model in (Environment, ApplicationEntry, UserEntry, GroupEntry):
        for name, field in model.model_fields.items():
            key = field.alias or name  # as the file spells it (keyMaxAge)
            assert f"`{key}`" in text, key
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    for command in ("provision export", "provision drift", "provision lint"):
        assert any(f"`{command}" in h for h in headings), command
    for rule in ("admin-role", "worker-without-execute", "wide-grant", "shared-application", "key-without-access"):
        assert f"`{rule}`" in text, rule


def test_the_console_examples_run_as_printed(sandbox: SandboxProcess, tmp_path: Path) -> None:
    build_doc_server(sandbox)
    env = {**os.environ, **sandbox.admin_env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "COLUMNS": "200"}
    ran = 0
    for lang, body in blocks():
        if lang == "toml" and ran:
            first = body.splitlines()[0]
            if body.startswith(HEADER.splitlines()[0]):
                assert (tmp_path / "staging.toml").read_text() == body, "the exported file differs from the doc"
            elif re.fullmatch(r"# [\w./-]+\.toml", first.split("  ")[0].strip()):
                (tmp_path / first[2:].split()[0]).write_text(body)
            continue
        if lang != "console":
            continue
        for command, expected in _commands(body):
            result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                                    timeout=120, check=False)
            shown = (result.stderr + result.stdout).replace(sandbox.url, DOC_SERVER)
            assert shown == expected, f"$ {command}\n--- doc ---\n{expected}--- got ---\n{shown}"
            ran += 1
    assert ran >= 6


def _commands(body: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for line in body.splitlines(keepends=True):
        if line.startswith("$ "):
            out.append((line[2:].strip(), ""))
        else:
            assert out, f"output before any command: {line!r}"
            out[-1] = (out[-1][0], out[-1][1] + line)
    return out


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
