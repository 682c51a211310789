"""``provision explain`` and ``provision doctor`` decide access as the server does: for each way an
application can hold EXECUTE (its own grant, a group's grant, a group's role, a tag, a grant to a role,
a domain, being the creator), what ``explain --json`` says is held is what the server then lets the
application's own key do, and what it says is missing is what the server refuses."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orkes_provision.errors import PermissionDenied
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials, Subject, Target, TaskDef, app_subject, group_subject
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision
from tests.sandbox_fixtures import one_sandbox


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    yield from one_sandbox(tmp_path_factory.mktemp("explain"))


@pytest.fixture(scope="module")
def admin(server: SandboxProcess) -> Iterator[OrkesClient]:
    with OrkesClient(Credentials(server=server.url, key_id=server.admin_key_id, secret=server.admin_secret)) as client:
        yield client


@dataclass
class Case:
    admin: OrkesClient
    app_id: str
    name: str  # of the application, the task or workflow, and the group
    group: str

    def join_group(self, roles: list[str] | None = None) -> None:
        self.admin.upsert_group(self.group, "explain test", roles or [])
        self.admin.add_users_to_group(self.group, [f"app:{self.app_id}"])


# kind, how it is held (the "how" explain reports, None: missing), and the set-up that makes it so.
Setup = Callable[[Case], None]
CASES: dict[str, tuple[str, str | None, Setup]] = {
    "own grant": ("task", "direct", lambda c: c.admin.grant(app_subject(c.app_id), Target(type="TASK_DEF", id=c.name),
                                                          ["EXECUTE"])),
    "group grant": ("task", "group", lambda c: (c.join_group(), c.admin.grant(
        group_subject(c.group), Target(type="TASK_DEF", id=c.name), ["EXECUTE"]))[-1]),
    "group role": ("task", "role", lambda c: c.join_group(["UNRESTRICTED_WORKER"])),
    "tag grant": ("task", "tag", lambda c: c.admin.grant(app_subject(c.app_id), Target(type="TAG", id="team:explain"),
                                                       ["EXECUTE"])),
    "tag grant of a group": ("task", "tag", lambda c: (c.join_group(), c.admin.grant(
        group_subject(c.group), Target(type="TAG", id="team:explain"), ["EXECUTE"]))[-1]),
    "grant to a role": ("task", "role-grant", lambda c: c.admin.grant(
        Subject(type="ROLE", id="WORKER"), Target(type="TASK_DEF", id=c.name), ["EXECUTE"])),
    "READ only": ("task", None, lambda c: c.admin.grant(app_subject(c.app_id), Target(type="TASK_DEF", id=c.name),
                                                        ["READ"])),
    "nothing": ("task", None, lambda c: None),
    "workflow: group grant": ("workflow", "group", lambda c: (c.join_group(), c.admin.grant(
        group_subject(c.group), Target(type="WORKFLOW_DEF", id=c.name), ["EXECUTE"]))[-1]),
    "workflow: group role": ("workflow", "role", lambda c: c.join_group(["WORKFLOW_MANAGER"])),
    "workflow: tag grant": ("workflow", "tag", lambda c: c.admin.grant(
        app_subject(c.app_id), Target(type="TAG", id="team:explain"), ["EXECUTE"])),
    "workflow: nothing": ("workflow", None, lambda c: None),
}


def make_case(admin: OrkesClient, kind: str) -> tuple[Case, OrkesClient]:
    """A fresh application (with WORKER for a task), a tagged definition of its own name, and its key's client."""
    name = f"explain-{uuid.uuid4().hex[:8]}"
    app = admin.create_application(name)
    if kind == "task":
        tags = [{"key": "team", "value": "explain"}]
        admin.register_task_defs([TaskDef.model_validate({"name": name, "tags": tags})])
        admin.add_role(app.id, "WORKER")
    else:
        admin.register_task_defs([TaskDef(name=f"{name}-task")])
        admin.register_workflow_def({"name": name, "version": 1, "ownerEmail": "ops@example.com", "timeoutSeconds": 60,
                                     "tags": [{"key": "team", "value": "explain"}],
                                     "tasks": [{"name": f"{name}-task", "taskReferenceName": "t", "type": "SIMPLE"}]})
    key = admin.create_key(app.id)
    return Case(admin, app.id, name, f"{name}-group"), OrkesClient(Credentials(server=admin.server, key_id=key.id,
                                                                               secret=key.secret))


def server_allows(own: OrkesClient, kind: str, name: str) -> bool:
    try:
        if kind == "task":
            own.poll_tasks(name, "explain-test")
        else:
            own.start_workflow(name, {})
    except PermissionDenied:
        return False
    return True


@pytest.mark.parametrize("case", list(CASES))
def test_what_explain_says_is_held_is_what_the_server_allows(server: SandboxProcess, admin: OrkesClient,
                                                             tmp_path: Path, case: str) -> None:
    kind, how, setup = CASES[case]
    made, own = make_case(admin, kind)
    setup(made)

    result = provision(["explain", made.name, f"--{kind}", made.name, "--json"], env=server.admin_env, cwd=tmp_path)

    report = json.loads(result.stdout)
    (holding,) = report["access"]
    with own:
        allowed = server_allows(own, kind, made.name)
    assert holding["held"] is allowed is (how is not None), output(result)
    assert result.returncode == (0 if allowed else 11)
    if how is not None:
        assert how in [way["how"] for way in holding["via"]]
    else:
        fix = next(f["fix"] for f in report["findings"] if not f["ok"])
        assert fix == f"provision grant {made.name} " + (made.name if kind == "task" else f"--workflow {made.name}")


def test_doctor_counts_an_execute_inherited_through_a_group(server: SandboxProcess, admin: OrkesClient,
                                                            tmp_path: Path) -> None:
    made, own = make_case(admin, "task")
    own.close()
    store = f"env-file:{tmp_path}/w.env"
    assert provision(["app", made.name, "--worker", "--store", store], env=server.admin_env,
                     cwd=tmp_path).returncode == 0
    made.join_group()
    admin.grant(group_subject(made.group), Target(type="TASK_DEF", id=made.name), ["EXECUTE"])

    result = provision(["doctor", made.name, "--task", made.name, "--store", store], env=server.admin_env, cwd=tmp_path)

    assert result.returncode == 0, output(result)
    assert f"ok  execute: EXECUTE on task {made.name} through group {made.group}" in result.stdout


def test_a_domain_grant_counts_only_for_the_domain_named(server: SandboxProcess, admin: OrkesClient,
                                                         tmp_path: Path) -> None:
    made, own = make_case(admin, "task")
    own.close()
    admin.grant(app_subject(made.app_id), Target(type="DOMAIN", id="staging"), ["EXECUTE"])

    without = provision(["explain", made.name, "--task", made.name], env=server.admin_env, cwd=tmp_path)
    within = provision(["explain", made.name, "--task", made.name, "--domain", "staging"], env=server.admin_env,
                       cwd=tmp_path)

    assert without.returncode == 11
    assert f"lacks EXECUTE on task {made.name} (held only when polled in domain staging)" in without.stdout
    assert within.returncode == 0, output(within)
    assert "through domain staging (polls in that domain only)" in within.stdout


def test_doctor_with_only_workflows_checks_a_starter_without_asking_for_the_worker_role(
        server: SandboxProcess, admin: OrkesClient, tmp_path: Path) -> None:
    made, own = make_case(admin, "workflow")
    own.close()
    store = f"env-file:{tmp_path}/s.env"
    assert provision(["app", made.name, "--workflow", made.name, "--store", store], env=server.admin_env,
                     cwd=tmp_path).returncode == 0

    result = provision(["doctor", made.name, "--workflow", made.name, "--store", store], env=server.admin_env,
                       cwd=tmp_path)

    assert result.returncode == 0, output(result)
    assert "WORKER" not in result.stdout
    assert f"EXECUTE on workflow {made.name} through a grant to the application" in result.stdout
    assert "this key can start these workflows" in result.stdout


def test_explain_names_a_mistyped_workflow(server: SandboxProcess, admin: OrkesClient, tmp_path: Path) -> None:
    made, own = make_case(admin, "workflow")
    own.close()

    result = provision(["explain", made.name, "--workflow", made.name[:-1]], env=server.admin_env, cwd=tmp_path)

    assert result.returncode == 11
    assert f"workflow definition missing: {made.name[:-1]} (did you mean {made.name}?)" in result.stdout


def test_a_403_the_tool_meets_names_the_missing_grant(admin: OrkesClient) -> None:
    made, own = make_case(admin, "workflow")

    with own, pytest.raises(PermissionDenied) as refused:
        own.start_workflow(made.name, {})

    assert refused.value.hint == (f"the key's application lacks EXECUTE on workflow {made.name}: 'provision grant APP "
                                  f"--workflow {made.name}' grants it, 'provision explain APP' shows how it holds its "
                                  "access")
