"""What ``provision app`` resolves before any request, in process: name, roles and grants from the
project file, the store, the server check and the next steps printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from orkes_provision.credentials.delivery import Choice
from orkes_provision.errors import ConfigError, StoreError, UsageError
from orkes_provision.workers.app_request import app_request, open_app_store
from orkes_provision.workers.project import Project, load_project

PROJECT = """\
server = "https://orkes.example.com/api"

[application]
name = "billing-worker"
roles = ["WORKER", "METADATA_API"]
grants = ["charge"]
store = "env-file:secrets/billing.env"

[[workers]]
name = "billing"
runtime = "python"
command = ["python3", "main.py"]
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("ORKES_PROVISION_STORE", raising=False)
    (tmp_path / "orkes-provision.toml").write_text(PROJECT)
    loaded = load_project(tmp_path / "orkes-provision.toml")
    assert loaded is not None
    return loaded


def test_in_a_project_the_name_and_what_the_file_declares_come_from_it_and_flags_add_to_them(project: Project) -> None:
    request = app_request(None, project=project, grants=("refund",), roles=("USER",))
    assert (request.spec.name, request.name.source) == ("billing-worker", f"project file {project.defaults().path}")
    assert request.spec.roles == ("WORKER", "METADATA_API", "USER")
    assert request.spec.task_names == ["charge", "refund"]
    assert request.declared


def test_another_application_named_in_a_project_gets_nothing_from_its_file(project: Project) -> None:
    request = app_request("other-app", project=project, worker=True, grants=("ship",))
    assert (request.spec.name, request.name.source) == ("other-app", "argument")
    assert (request.spec.roles, request.spec.task_names) == (("WORKER",), ["ship"])
    assert not request.declared


def test_without_a_project_or_name_the_first_granted_task_names_the_application() -> None:
    request = app_request(None, project=None, worker=True, grants=("greetings", "farewells"))
    assert (request.spec.name, request.name.source) == ("greetings-worker", "first granted task")
    with pytest.raises(UsageError, match="no application name given"):
        app_request(None, project=None)
    with pytest.raises(UsageError, match="--grant is empty"):
        app_request("x", project=None, grants=(" ",))


def test_the_store_comes_from_the_project_file_and_its_server_must_be_the_one_in_use(project: Project) -> None:
    request = app_request(None, project=project)
    store = request.store(None, server=Choice("https://orkes.example.com/api", "the provisioning credentials"))
    assert store.value == f"env-file:{project.defaults().path.parent / 'secrets' / 'billing.env'}"
    assert store.source.startswith("project file ")
    assert request.store("keyring", server=Choice("https://orkes.example.com/api", "x")) == Choice("keyring", "--store")
    with pytest.raises(ConfigError, match=r"orkes\.example\.com"):
        request.store(None, server=Choice("https://elsewhere.example.com/api", "the provisioning credentials"))
    # --server is the user's own choice: the project's server does not stop it.
    request.store(None, server=Choice("https://elsewhere.example.com/api", "--server"))


def test_the_next_step_in_a_project_is_its_first_worker_carrying_a_store_given_on_the_command_line(
        project: Project) -> None:
    request = app_request(None, project=project)
    from_file = request.hints(server="https://orkes.example.com/api", store=Choice("env-file:/x.env", "project file"),
                              options=("--profile", "prod"))
    assert from_file.next_run == "provision --profile prod worker run billing"
    flagged = request.hints(server="https://orkes.example.com/api", store=Choice("keyring", "--store"), options=())
    assert flagged.next_run == "provision worker run billing --store keyring"
    elsewhere = app_request("other-app", project=project).hints(server="s", store=Choice("keyring", "--store"),
                                                                options=())
    assert elsewhere.next_run is None and elsewhere.tasks == ()


def test_a_dry_run_plans_without_a_store_it_cannot_open_and_a_real_run_stops(tmp_path: Path) -> None:
    unusable = Choice(f"env-file:{tmp_path}", "--store")  # a directory is no env file
    with pytest.raises(StoreError):
        open_app_store(unusable, show_secret=False, dry_run=False)
    store, note = open_app_store(unusable, show_secret=False, dry_run=True)
    assert store is None and "planning from the deliveries record" in note
