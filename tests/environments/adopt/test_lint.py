"""``provision lint``: each least-privilege rule, where it points, what it proposes; exit codes; plan warnings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orkes_provision.environments.environment import load_environment
from orkes_provision.environments.lint import RULES, Finding, lint
from orkes_provision.orkes.models import TaskDef
from orkes_provision.sandbox.harness import SandboxProcess
from orkes_provision.workers.project import load_project, project_decl
from tests.cli import output, provision
from tests.environments.apply.helpers import admin_client, run

CLEAN = """\
name = "staging"

[[applications]]
name = "greetings-worker"
roles = ["WORKER"]
store = "keyring"

[[applications.grants]]
tasks = ["greetings"]

[[applications]]
name = "starter"
roles = []

[[applications.grants]]
workflows = ["greet_flow"]
"""


def findings_of(tmp_path: Path, text: str, *projects: str) -> list[Finding]:
    (tmp_path / "env.toml").write_text(text)
    decls = []
    for i, project_text in enumerate(projects):
        directory = tmp_path / f"p{i}"
        directory.mkdir(exist_ok=True)
        (directory / "orkes-provision.toml").write_text(project_text)
        loaded = load_project(directory / "orkes-provision.toml")
        assert loaded is not None
        decls.append(project_decl(loaded))
    return lint([load_environment(tmp_path / "env.toml")], decls)


def test_a_least_privilege_file_has_no_findings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert findings_of(tmp_path, CLEAN) == []


@pytest.mark.parametrize("role", ["ADMIN", "UNRESTRICTED_WORKER", "METADATA_MANAGER", "WORKFLOW_MANAGER",
                                  "APPLICATION_MANAGER", "PROMPT_MANAGER"])
def test_an_admin_level_role_is_found_on_its_line_with_a_narrower_role(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, role: str) -> None:
    monkeypatch.chdir(tmp_path)
    text = CLEAN.replace('roles = ["WORKER"]', f'roles = ["WORKER", "{role}"]')
    (finding,) = findings_of(tmp_path, text)
    assert (finding.rule, finding.file, finding.line, finding.path) == ("admin-role", "env.toml", 5,
                                                                        "applications[0].roles")
    assert finding.message == f"application greetings-worker holds the admin-level role {role}"
    assert finding.alternative
    assert role not in finding.alternative.split(":")[0] or role == "UNRESTRICTED_WORKER"


def test_unrestricted_worker_alternative_names_the_tasks_its_workers_poll(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = CLEAN.replace('roles = ["WORKER"]', 'roles = ["UNRESTRICTED_WORKER"]')
    (finding,) = findings_of(tmp_path, text)
    assert finding.alternative == "WORKER plus EXECUTE on the tasks its workers poll (greetings)"


def test_a_worker_without_any_execute_grant_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = CLEAN.replace('tasks = ["greetings"]', 'tasks = ["greetings"]\naccess = ["READ"]')
    (finding,) = findings_of(tmp_path, text)
    assert (finding.rule, finding.line) == ("worker-without-execute", 5)
    assert "has the WORKER role but no EXECUTE grant" in finding.message
    assert finding.alternative.endswith("or drop WORKER if it runs no worker")


def test_tag_and_domain_grants_reach_more_than_the_declared_tasks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = CLEAN.replace('tasks = ["greetings"]\n',
                         'tasks = ["greetings"]\n\n[[applications.grants]]\ntags = ["team:hello"]\n'
                         'domains = ["eu-west"]\n')
    tag, domain = findings_of(tmp_path, text)
    assert (tag.rule, tag.line, tag.path) == ("wide-grant", 12, "applications[0].grants[1].tags")
    assert (domain.rule, domain.line, domain.path) == ("wide-grant", 13, "applications[0].grants[1].domains")
    assert "EXECUTE on DOMAIN eu-west: every task polled in that domain" in domain.message
    assert "every task definition tagged team:hello, today or later" in tag.message
    assert tag.alternative == 'grant EXECUTE on the tasks its workers poll (tasks = ["greetings"])'
    env = load_environment(tmp_path / "env.toml")
    # When the server says which tasks carry the tag, one that reaches only declared tasks is fine...
    assert [f.path for f in lint([env], tagged_tasks={"team:hello": {"greetings"}})] == [domain.path]
    # ...and one that reaches more names them.
    (wider, _) = lint([env], tagged_tasks={"team:hello": {"greetings", "billing_charge"}})
    assert "on the server it reaches billing_charge beyond the tasks its workers declare (greetings)" in wider.message
    # A READ-only tag grant executes nothing: not this rule's business.
    assert findings_of(tmp_path, text.replace('domains = ["eu-west"]\n', 'access = ["READ"]\n')) == []


def test_a_key_for_an_application_with_no_role_and_no_grant_is_found(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = CLEAN + '\n[[applications]]\nname = "idle"\nroles = []\nstore = "env-file:idle.env"\n'
    (finding,) = findings_of(tmp_path, text)
    assert (finding.rule, finding.line, finding.path) == ("key-without-access", 21, "applications[2].store")
    assert finding.message == "application idle gets a key (env-file:idle.env) but has neither a role nor a grant"


PROJECT = """\
[application]
name = "greetings-worker"
grants = ["greetings", "farewell"]

[[workers]]
name = "hello"
runtime = "python"
command = ["python3", "hello.py"]
tasks = ["greetings"]

[[workers]]
name = "bye"
runtime = "python"
command = ["python3", "bye.py"]
tasks = ["farewell"]
"""


def test_one_application_shared_by_workers_that_poll_different_tasks_is_found(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    found = findings_of(tmp_path, CLEAN.replace('tasks = ["greetings"]', 'tasks = ["greetings", "farewell"]'),
                        PROJECT)
    assert [(f.rule, f.file, f.line, f.path) for f in found] == [
        ("shared-application", "p0/orkes-provision.toml", 5, "workers[0]"),
        ("shared-application", "p0/orkes-provision.toml", 11, "workers[1]"),
    ]
    assert found[0].message == ("application greetings-worker is shared by workers hello, bye: worker hello polls "
                                "greetings, but its key also executes farewell")
    assert found[0].alternative.startswith("one application per worker: hello with EXECUTE on greetings only")
    # Workers that poll the same tasks share nothing they do not need.
    same = PROJECT.replace('tasks = ["farewell"]', 'tasks = ["greetings", "farewell"]').replace(
        'tasks = ["greetings"]\n', 'tasks = ["greetings", "farewell"]\n')
    assert findings_of(tmp_path, CLEAN.replace('tasks = ["greetings"]', 'tasks = ["greetings", "farewell"]'),
                       same) == []


def test_two_project_files_naming_one_application_share_its_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    one = PROJECT.split("[[workers]]")[0] + "[[workers]]" + PROJECT.split("[[workers]]")[1]
    two = PROJECT.split("[[workers]]")[0] + "[[workers]]" + PROJECT.split("[[workers]]")[2]
    found = findings_of(tmp_path, CLEAN.replace('tasks = ["greetings"]', 'tasks = ["greetings", "farewell"]'),
                        one, two)
    assert [(f.rule, f.file, f.line) for f in found] == [
        ("shared-application", "p0/orkes-provision.toml", 2), ("shared-application", "p1/orkes-provision.toml", 2)]
    assert "also used by the workers of p0/orkes-provision.toml, p1/orkes-provision.toml" in found[0].message


def test_project_workers_define_what_the_environment_application_needs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    project = PROJECT.split("[[workers]]\nname = \"bye\"")[0]
    text = CLEAN.replace('tasks = ["greetings"]\n', 'domains = ["eu-west"]\n')
    (finding,) = findings_of(tmp_path, text, project)
    assert finding.rule == "wide-grant"
    assert "not only the tasks its workers declare (greetings)" in finding.message


def test_project_file_roles_and_missing_grants_are_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    project = '[application]\nname = "ops"\nroles = ["WORKER", "ADMIN"]\n\n[[workers]]\nname = "w"\n' \
              'runtime = "python"\ncommand = ["python3"]\ntasks = ["greetings"]\n'
    found = findings_of(tmp_path, CLEAN, project)
    assert [(f.rule, f.line) for f in found] == [("admin-role", 3), ("worker-without-execute", 3)]
    assert found[1].alternative == 'grants = ["greetings"]'


def test_lint_command_exit_codes_text_and_json(tmp_path: Path) -> None:
    (tmp_path / "clean.toml").write_text(CLEAN)
    clean = provision(["lint", "-f", "clean.toml"], cwd=tmp_path)
    assert clean.returncode == 0, output(clean)
    assert clean.stdout == "No findings: clean.toml follows least privilege.\n"

    (tmp_path / "wide.toml").write_text(CLEAN.replace('roles = ["WORKER"]', 'roles = ["ADMIN"]'))
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "orkes-provision.toml").write_text(PROJECT)
    found = provision(["lint", "-f", "wide.toml", "-f", "p/orkes-provision.toml"], cwd=tmp_path)
    assert found.returncode == 2, output(found)
    lines = found.stdout.splitlines()
    assert lines[0] == "p/orkes-provision.toml:5: [shared-application] application greetings-worker is shared by " \
                       "workers hello, bye: worker hello polls greetings, but its key also executes farewell"
    assert lines[1].startswith("    narrower: one application per worker")
    assert lines[4] == "wide.toml:5: [admin-role] application greetings-worker holds the admin-level role ADMIN"
    assert lines[-1] == "3 findings."
    as_json = json.loads(provision(["lint", "-f", "wide.toml", "--json"], cwd=tmp_path).stdout)
    assert as_json["count"] == 1
    assert as_json["findings"][0] | {"alternative": ""} == {
        "rule": "admin-role", "file": "wide.toml", "line": 5, "path": "applications[0].roles",
        "message": "application greetings-worker holds the admin-level role ADMIN", "alternative": ""}
    assert as_json["rules"] == RULES

    broken = provision(["lint", "-f", "missing.toml"], cwd=tmp_path)
    assert broken.returncode == 1, output(broken)
    assert broken.stderr == "error: missing.toml: no such file\nhint: check the path given to -f\n"
    (tmp_path / "bad.toml").write_text('name = "x"\n[[applications]]\nname = "a"\nroles = ["KING"]\n')
    invalid = provision(["lint", "-f", "bad.toml", "--json"], cwd=tmp_path)
    assert invalid.returncode == 1
    assert json.loads(invalid.stdout)["message"].startswith("bad.toml:4: roles: 'KING' is not one of ADMIN")
    assert [p["path"] for p in json.loads(invalid.stdout)["problems"]] == ["applications[0].roles[0]"]
    assert json.loads(invalid.stdout)["exitCode"] == 1
    assert provision(["lint"], cwd=tmp_path).returncode == 1  # a usage error is 1: 2 means findings


def test_several_files_after_one_f_are_all_linted_as_the_synopsis_reads(tmp_path: Path) -> None:
    (tmp_path / "wide.toml").write_text(CLEAN.replace('roles = ["WORKER"]', 'roles = ["ADMIN"]'))
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "orkes-provision.toml").write_text(PROJECT)
    separate = provision(["lint", "-f", "wide.toml", "-f", "p/orkes-provision.toml", "--json"], cwd=tmp_path)

    together = provision(["lint", "-f", "wide.toml", "p/orkes-provision.toml", "--json"], cwd=tmp_path)

    assert together.returncode == 2, output(together)
    assert together.stdout == separate.stdout
    assert json.loads(together.stdout)["files"] == ["wide.toml", "p/orkes-provision.toml"]
    none = provision(["lint"], cwd=tmp_path)
    assert none.returncode == 1
    assert none.stderr == "error: no file to lint\nhint: name them: provision lint -f FILE [FILE]...\n"


def test_plan_and_apply_print_findings_as_warnings_on_stderr_with_the_servers_tags(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    text = CLEAN.replace('tasks = ["greetings"]\n', 'tasks = ["greetings"]\n\n[[applications.grants]]\n'
                                                    'tags = ["team:hello"]\n').replace('store = "keyring"\n', '')
    (tmp_path / "env.toml").write_text(text)
    with admin_client(sandbox) as client:
        client.register_task_defs([TaskDef.model_validate({"name": "greetings",
                                                           "tags": [{"key": "team", "value": "hello"}]}),
                                   TaskDef.model_validate({"name": "billing_charge",
                                                           "tags": [{"key": "team", "value": "hello"}]})])
    planned = run(sandbox, tmp_path, "plan", "-f", "env.toml")
    assert planned.returncode == 0, output(planned)
    assert "warning" not in planned.stdout
    assert planned.stderr.splitlines() == [
        "warning: env.toml:11: [wide-grant] application greetings-worker has EXECUTE on TAG team:hello: on the "
        "server it reaches billing_charge beyond the tasks its workers declare (greetings); narrower: grant "
        'EXECUTE on the tasks its workers poll (tasks = ["greetings"])']
    applied = run(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve", "--json")
    assert applied.returncode == 0, output(applied)
    warning = json.loads(applied.stderr.splitlines()[0])
    assert (warning["warning"], warning["rule"], warning["line"]) == ("lint", "wide-grant", 11)
    assert json.loads(applied.stdout)["ok"] is True  # stdout stays the apply report
    with admin_client(sandbox) as client:
        client.update_task_def(TaskDef.model_validate({"name": "billing_charge", "tags": []}))
    assert run(sandbox, tmp_path, "plan", "-f", "env.toml").stderr == ""


def test_a_group_that_gives_every_member_an_admin_level_role_is_found_and_a_user_is_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    people = ('\n[[users]]\nid = "ada@example.com"\nroles = ["ADMIN"]\n\n[[groups]]\nid = "ops"\n'
              'roles = ["USER", "METADATA_MANAGER"]\nmembers = ["ada@example.com"]\n')
    (finding,) = findings_of(tmp_path, CLEAN + people)
    assert (finding.rule, finding.line, finding.path) == ("admin-role", 24, "groups[0].roles")
    assert finding.message == "group ops gives every member (1 declared) the admin-level role METADATA_MANAGER"
    assert finding.alternative.startswith("give METADATA_MANAGER under [[users]] to the people who need it")
