"""The client against the real sandbox server: the wire contract end to end, faults, and errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from orkes_provision.credentials.settings import resolve_credentials
from orkes_provision.errors import (
    AuthenticationError,
    ConfigError,
    NotFound,
    PermissionDenied,
    ServerUnavailable,
    UsageError,
)
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import MANAGED_TAG, Credentials, Tag, Target, TaskDef, app_subject
from tests.orkes.helpers import Sleeps

pytest.importorskip("starlette", reason="the sandbox extra is not installed")

from orkes_provision.sandbox.client import SandboxClient
from orkes_provision.sandbox.harness import SandboxProcess

ADMIN_PATHS = r"^/api/applications$"


@pytest.fixture
def client(server: SandboxProcess) -> Iterator[SandboxClient]:
    server.clear_faults()
    credentials = Credentials(server=server.url, key_id=server.admin_key_id, secret=server.admin_secret)
    with SandboxClient(credentials, sleep=Sleeps()) as made:
        yield made


def _names(client: OrkesClient, name: str) -> list[str]:
    return [a.id for a in client.list_applications() if a.name == name]


def test_the_application_key_role_and_grant_life_cycle_round_trips(client: OrkesClient, server: SandboxProcess) -> None:
    app = client.create_application("lifecycle-worker")
    assert client.get_application(app.id).name == "lifecycle-worker"
    client.put_application_tags(app.id, [MANAGED_TAG])
    assert MANAGED_TAG in client.get_application_tags(app.id)
    assert MANAGED_TAG in next(a for a in client.list_applications() if a.id == app.id).tags

    client.add_role(app.id, "WORKER")
    user = client.get_app_user(app.id)
    assert user.id == f"app:{app.id}"
    assert "WORKER" in user.role_names

    key = client.create_key(app.id)
    assert [(k.id, k.status) for k in client.list_keys(app.id)] == [(key.id, "ACTIVE")]
    assert client.exchange_token(key.id, key.secret).get_secret_value().count(".") == 2
    assert client.get_application_by_key(key.id).id == app.id
    with OrkesClient(Credentials(server=server.url, key_id=key.id, secret=key.secret)) as as_app:
        assert as_app.user_info()["id"] == f"app:{app.id}"

    client.register_task_defs([TaskDef(name="lifecycle-task")])
    assert client.get_task_def("lifecycle-task").name == "lifecycle-task"
    target = Target(type="TASK_DEF", id="lifecycle-task")
    client.grant(app_subject(app.id), target, ["EXECUTE"])
    granted = client.get_user_permissions(f"app:{app.id}")
    assert any(g.target == target and "EXECUTE" in g.access for g in granted)
    assert app_subject(app.id) in client.get_permissions(target).get("EXECUTE", [])
    client.revoke(app_subject(app.id), target, ["EXECUTE"])
    assert not any(g.target == target for g in client.get_user_permissions(f"app:{app.id}"))

    assert client.toggle_key(app.id, key.id).status == "INACTIVE"
    with pytest.raises(AuthenticationError) as caught:
        client.exchange_token(key.id, key.secret)
    assert key.id in caught.value.message
    client.delete_key(app.id, key.id)
    assert client.list_keys(app.id) == []
    client.remove_role(app.id, "WORKER")
    assert "WORKER" not in client.get_app_user(app.id).role_names
    client.delete_application(app.id)
    with pytest.raises(NotFound) as missing:
        client.get_application(app.id)
    assert app.id in missing.value.message


def test_a_wrong_secret_is_rejected_naming_the_key_and_never_the_secret(client: SandboxClient,
                                                                         server: SandboxProcess) -> None:
    with pytest.raises(AuthenticationError) as caught:
        client.exchange_token(server.admin_key_id, SecretStr("Wrong-Secret-Sentinel"))
    assert caught.value.message == f"the server rejected key {server.admin_key_id}"
    assert "Wrong-Secret-Sentinel" not in caught.value.message + caught.value.hint


def test_a_missing_task_definition_is_not_found(client: SandboxClient) -> None:
    with pytest.raises(NotFound):
        client.get_task_def("no-such-task-anywhere")


def test_an_empty_application_name_is_a_usage_error(client: SandboxClient) -> None:
    with pytest.raises(UsageError):
        client.create_application("")


def test_an_application_without_roles_gets_permission_denied_with_the_servers_message(
        client: OrkesClient, server: SandboxProcess) -> None:
    app = client.create_application("no-roles-app")
    key = client.create_key(app.id)
    with OrkesClient(Credentials(server=server.url, key_id=key.id, secret=key.secret)) as weak, \
            pytest.raises(PermissionDenied) as caught:
        weak.add_role(app.id, "ADMIN")
    assert "ADMIN" in caught.value.hint
    assert caught.value.exit_code == 5


def test_a_get_survives_injected_503s_and_a_429_with_retry_after(client: SandboxClient, server: SandboxProcess) -> None:
    mark = server.mark()
    client.add_fault("GET", ADMIN_PATHS, count=2, status=503)
    client.add_fault("GET", ADMIN_PATHS, count=1, status=429, retry_after=3)
    client.list_applications()
    statuses = [r["status"] for r in server.requests()[mark:] if r["path"] == "/api/applications"]
    assert statuses == [503, 503, 429, 200]
    sleeps = client._sleep  # the Sleeps recorder given by the fixture
    assert isinstance(sleeps, Sleeps)
    assert sleeps[-1] == 3.0


def test_create_application_is_not_repeated_when_the_answer_is_lost_after_commit(client: SandboxClient,
                                                                                  server: SandboxProcess) -> None:
    client.add_fault("POST", ADMIN_PATHS, action="drop_after_commit")
    with pytest.raises(ServerUnavailable) as caught:
        client.create_application("lost-answer-app")
    assert "may have been applied" in caught.value.hint
    # Exactly one application exists: the client did not blindly create a second one.
    assert len(_names(client, "lost-answer-app")) == 1


def test_create_application_is_not_repeated_on_an_injected_503(client: SandboxClient, server: SandboxProcess) -> None:
    client.add_fault("POST", ADMIN_PATHS, status=503)
    with pytest.raises(ServerUnavailable):
        client.create_application("refused-app")
    assert _names(client, "refused-app") == []
    client.create_application("refused-app")
    assert len(_names(client, "refused-app")) == 1


def test_a_token_exchange_that_fails_once_is_retried(client: SandboxClient, server: SandboxProcess) -> None:
    client.add_fault("POST", r"^/api/token$", status=503)
    with OrkesClient(Credentials(server=server.url, key_id=server.admin_key_id, secret=server.admin_secret),
                     sleep=Sleeps()) as fresh:
        assert fresh.list_applications()


def test_a_server_that_is_down_is_unavailable_naming_it(tmp_path: Path) -> None:
    with OrkesClient(Credentials(server="http://127.0.0.1:9/api", key_id="k", secret=SecretStr("s")),
                     max_retries=0) as down, pytest.raises(ServerUnavailable) as caught:
        down.list_applications()
    assert caught.value.message.startswith("cannot reach http://127.0.0.1:9/api: connection refused")


def test_a_url_without_api_is_recognised_as_not_an_orkes_api(server: SandboxProcess) -> None:
    bare = Credentials(server=server.root_url, key_id=server.admin_key_id, secret=server.admin_secret)
    with OrkesClient(bare) as wrong, pytest.raises(ConfigError) as caught:
        wrong.list_applications()
    assert "not an Orkes API" in caught.value.message
    assert "ending in /api" in caught.value.hint


def test_profile_sandbox_finds_the_running_sandbox_with_no_set_up(server: SandboxProcess, client: OrkesClient) -> None:
    env = {"XDG_DATA_HOME": str(server.data_dir.parent.parent), "HOME": str(server.data_dir)}
    credentials = resolve_credentials(server=None, profile="sandbox", env=env)
    assert credentials.server == server.url
    with OrkesClient(credentials) as admin:
        assert "ADMIN" in {r["name"] for r in admin.user_info().get("roles", [])}


def test_workflows_start_and_can_be_read_back(client: SandboxClient) -> None:
    client.register_task_defs([TaskDef(name="wf-client-task")])
    client.register_workflow_def({"name": "wf-client", "version": 1, "ownerEmail": "x@example.com",
                                  "schemaVersion": 2, "tasks": [
                                      {"name": "wf-client-task", "taskReferenceName": "t1", "type": "SIMPLE"}]})
    assert client.get_workflow_def("wf-client")["name"] == "wf-client"
    workflow_id = client.start_workflow("wf-client", {"who": "Ada"}, version=1)
    assert client.get_workflow(workflow_id)["workflowId"] == workflow_id


def test_tags_can_be_removed(client: SandboxClient) -> None:
    app = client.create_application("tagged-app")
    client.put_application_tags(app.id, [Tag(key="team", value="a"), MANAGED_TAG])
    client.delete_application_tags(app.id, [Tag(key="team", value="a")])
    assert client.get_application_tags(app.id) == [MANAGED_TAG]
