"""The proof: conductor-python 2.0.0, unmodified, provisions and runs a worker against the sandbox.

Every test drives the sandbox only through the SDK's clients (authorization, metadata, workflow,
task) and a real ``TaskHandler`` worker process; the requests the SDK sends and the responses it
gets are validated against the Orkes OpenAPI schemas (``openapi_subset.json``).
"""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from conductor.client.configuration.configuration import Configuration
from conductor.client.http.models.create_or_update_application_request import CreateOrUpdateApplicationRequest
from conductor.client.http.models.start_workflow_request import StartWorkflowRequest
from conductor.client.http.models.subject_ref import SubjectRef, SubjectType
from conductor.client.http.models.target_ref import TargetRef, TargetType
from conductor.client.http.models.task_def import TaskDef
from conductor.client.http.models.task_result import TaskResult
from conductor.client.http.models.workflow_def import WorkflowDef
from conductor.client.http.models.workflow_task import WorkflowTask
from conductor.client.http.rest import ApiException, AuthorizationException
from conductor.client.orkes.models.access_type import AccessType
from conductor.client.orkes.models.metadata_tag import MetadataTag
from conductor.client.orkes_clients import OrkesClients
from dotenv import dotenv_values

from orkes_provision.sandbox.harness import SandboxProcess
from tests.sandbox.conformance.schemas import validate
from tests.sandbox.conformance.sdk_support import Recorder, sdk_clients, wait_for, worker_process
from tests.sandbox_fixtures import SandboxFactory

pytestmark = pytest.mark.slow

WORKFLOW = "greetings_workflow"


def _admin(sb: SandboxProcess, recorder: Recorder | None = None) -> OrkesClients:
    return sdk_clients(sb.url, sb.admin_key_id, sb.admin_secret.get_secret_value(), recorder)


def _register_definitions(clients: OrkesClients) -> None:
    metadata = clients.get_metadata_client()
    metadata.register_task_def(TaskDef(name="greetings", description="says hello", timeout_seconds=60,
                                       total_timeout_seconds=0, response_timeout_seconds=30, retry_count=1,
                                       retry_delay_seconds=0, owner_email="dev@example.com"))
    task = WorkflowTask(name="greetings", task_reference_name="greet", type="SIMPLE",
                        input_parameters={"name": "${workflow.input.name}"})
    metadata.register_workflow_def(WorkflowDef(name=WORKFLOW, version=1, tasks=[task], timeout_seconds=120,
                                               output_parameters={"greeting": "${greet.output.result}"},
                                               owner_email="dev@example.com"), overwrite=True)


def _worker_app(clients: OrkesClients, name: str, *, grant: bool) -> tuple[str, str, str]:
    """An application with WORKER, a key and (optionally) EXECUTE on greetings: (app id, key id, secret)."""
    auth = clients.get_authorization_client()
    app = auth.create_application(CreateOrUpdateApplicationRequest(name))
    auth.add_role_to_application_user(app.id, "WORKER")
    key = auth.create_access_key(app.id)
    if grant:
        _grant(clients, app.id)
    return app.id, key.id, key.secret


def _grant(clients: OrkesClients, app_id: str) -> None:
    clients.get_authorization_client().grant_permissions(
        SubjectRef(SubjectType.USER, f"app:{app_id}"), TargetRef(TargetType.TASK_DEF, "greetings"),
        [AccessType.EXECUTE])


def _start(clients: OrkesClients, name: str) -> str:
    workflow_id: str = clients.get_workflow_client().start_workflow(
        StartWorkflowRequest(name=WORKFLOW, version=1, input={"name": name}))
    return workflow_id


def _finished(clients: OrkesClients, workflow_id: str, timeout: float = 30.0) -> Any:
    workflows = clients.get_workflow_client()
    return wait_for(lambda: (wf := workflows.get_workflow(workflow_id, include_tasks=True)).status != "RUNNING"
                    and wf, timeout=timeout)


def _validated(recorder: Recorder) -> set[str]:
    checked = {validate(exchange) for exchange in recorder.exchanges}
    return {c for c in checked if c is not None}


def test_sdk_provisions_a_worker_that_completes_the_workflow(sandbox: SandboxProcess, tmp_path: Path) -> None:
    recorder = Recorder()
    admin = _admin(sandbox, recorder)
    auth = admin.get_authorization_client()
    app = auth.create_application(CreateOrUpdateApplicationRequest("greeter"))
    auth.add_role_to_application_user(app.id, "WORKER")
    key = auth.create_access_key(app.id)
    auth.grant_permissions(SubjectRef(SubjectType.USER, f"app:{app.id}"), TargetRef(TargetType.TASK_DEF, "greetings"),
                           [AccessType.EXECUTE])
    granted = auth.get_permissions(TargetRef(TargetType.TASK_DEF, "greetings"))
    assert [(s.type, s.id) for s in granted["EXECUTE"]] == [("USER", f"app:{app.id}")]
    assert [r.name for r in auth.get_user(f"app:{app.id}").roles] == ["WORKER"]
    _register_definitions(admin)
    workflow_id = _start(admin, "Ada")

    with worker_process(tmp_path, sandbox.url, key.id, key.secret):
        done = _finished(admin, workflow_id)

    assert done.status == "COMPLETED"
    assert done.output == {"greeting": "Hello, Ada"}
    assert done.tasks[0].output_data == {"result": "Hello, Ada"}
    worker_calls = [r for r in sandbox.requests() if r["caller"] == f"app:{app.id}"]
    assert {(r["method"], r["path"]) for r in worker_calls} >= {
        ("GET", "/api/tasks/poll/batch/greetings"), ("POST", "/api/tasks/update-v2")}
    assert _validated(recorder) >= {"createApplication", "addRoleToApplicationUser", "createAccessKey",
                                    "grantPermissions", "getPermissions", "getUser", "registerTaskDef", "create",
                                    "startWorkflow", "getExecutionStatus", "generateToken"}


def test_sdk_application_key_and_grant_life_cycle_conforms(sandbox: SandboxProcess) -> None:
    recorder = Recorder()
    admin = _admin(sandbox, recorder)
    auth = admin.get_authorization_client()
    app = auth.create_application(CreateOrUpdateApplicationRequest("life-cycle"))
    renamed = auth.update_application(CreateOrUpdateApplicationRequest("life-cycle-2"), app.id)
    assert renamed.name == "life-cycle-2"
    assert auth.get_application(app.id).name == "life-cycle-2"
    assert app.id in [a.id for a in auth.list_applications()]
    auth.set_application_tags([MetadataTag("team", "blue")], app.id)
    assert [(t.key, t.value) for t in auth.get_application_tags(app.id)] == [("team", "blue")]
    key = auth.create_access_key(app.id)
    assert [(k.id, k.status) for k in auth.get_access_keys(app.id)] == [(key.id, "ACTIVE")]
    assert auth.toggle_access_key_status(app.id, key.id).status == "INACTIVE"
    assert auth.toggle_access_key_status(app.id, key.id).status == "ACTIVE"
    assert auth.get_app_by_access_key_id(key.id)["id"] == app.id
    auth.add_role_to_application_user(app.id, "METADATA_API")
    auth.remove_role_from_application_user(app.id, "METADATA_API")
    assert auth.get_user(f"app:{app.id}").roles == []
    subject, target = SubjectRef(SubjectType.USER, f"app:{app.id}"), TargetRef(TargetType.WORKFLOW_DEF, "not-yet")
    auth.grant_permissions(subject, target, [AccessType.EXECUTE, AccessType.READ])  # targets need not exist
    held = auth.get_granted_permissions_for_user(f"app:{app.id}")
    assert [(p.target.type, p.target.id, sorted(p.access)) for p in held] == [
        ("WORKFLOW_DEF", "not-yet", ["EXECUTE", "READ"])]
    auth.remove_permissions(subject, target, [AccessType.EXECUTE, AccessType.READ])
    assert auth.get_granted_permissions_for_user(f"app:{app.id}") == []
    auth.delete_access_key(app.id, key.id)
    auth.delete_application(app.id)
    with pytest.raises(ApiException) as missing:
        auth.get_application(app.id)
    assert missing.value.status == 404
    assert app.id in missing.value.message
    assert _validated(recorder) >= {"updateApplication", "getApplication", "listApplications",
                                    "putTagForApplication", "getTagsForApplication", "getAccessKeys",
                                    "toggleAccessKeyStatus", "getAppByAccessKeyId", "removeRoleFromApplicationUser",
                                    "getGrantedPermissions", "removePermissions", "deleteAccessKey",
                                    "deleteApplication"}


def test_sdk_metadata_and_task_clients_conform(sandbox: SandboxProcess) -> None:
    recorder = Recorder()
    admin = _admin(sandbox, recorder)
    _register_definitions(admin)
    metadata = admin.get_metadata_client()
    assert metadata.get_task_def("greetings").retry_count == 1
    assert [d.name for d in metadata.get_all_task_defs()] == ["greetings"]
    assert metadata.get_workflow_def(WORKFLOW).tasks[0].task_reference_name == "greet"
    with pytest.raises(ApiException) as missing:
        metadata.get_task_def("nope")
    assert missing.value.status == 404
    workflows, tasks = admin.get_workflow_client(), admin.get_task_client()
    by_name = workflows.start_workflow_by_name(WORKFLOW, {"name": "Bo"}, version=1)
    polled = tasks.batch_poll_tasks("greetings", worker_id="conformance", count=1, timeout_in_millisecond=100)
    assert [t.workflow_instance_id for t in polled] == [by_name]
    assert polled[0].input_data == {"name": "Bo"}
    result = TaskResult(workflow_instance_id=by_name, task_id=polled[0].task_id, status="COMPLETED",
                        output_data={"result": "Hello, Bo"}, worker_id="conformance")
    assert tasks.update_task(result) == polled[0].task_id
    assert workflows.get_workflow(by_name).output == {"greeting": "Hello, Bo"}
    # update-v2, as the SDK's TaskRunner calls it: the next task of the type comes back in the answer.
    first, second = (workflows.start_workflow_by_name(WORKFLOW, {"name": n}, version=1) for n in ("Cy", "Di"))
    [task] = tasks.batch_poll_tasks("greetings", worker_id="conformance", count=1, timeout_in_millisecond=100)
    following = admin.get_task_client().taskResourceApi.update_task_v2(body=TaskResult(
        workflow_instance_id=task.workflow_instance_id, task_id=task.task_id, status="COMPLETED",
        output_data={"result": "ok"}, worker_id="conformance"))
    assert {task.workflow_instance_id, following.workflow_instance_id} == {first, second}
    tasks.update_task(TaskResult(workflow_instance_id=following.workflow_instance_id, task_id=following.task_id,
                                 status="COMPLETED", output_data={"result": "ok"}))
    # 204 on the wire; the SDK turns the empty body into an empty Task.
    mark = len(sandbox.requests())
    empty = tasks.poll_task("greetings", worker_id="conformance")
    assert empty is None or empty.task_id is None
    # The log line is written as the answer goes out: wait for it rather than read the last line at once.
    [poll] = wait_for(lambda: [r for r in sandbox.requests()[mark:] if r["path"] == "/api/tasks/poll/greetings"]
                      or None, timeout=10)
    assert poll["status"] == 204
    assert tasks.batch_poll_tasks("greetings", worker_id="conformance", count=2, timeout_in_millisecond=0) == []
    assert _validated(recorder) >= {"registerTaskDef", "getTaskDef", "getTaskDefs", "get_1", "startWorkflow_1",
                                    "batchPoll", "updateTask", "updateTaskV2", "getExecutionStatus"}


def test_a_worker_without_the_grant_gets_403_until_granted(sandbox: SandboxProcess, tmp_path: Path) -> None:
    admin = _admin(sandbox)
    _register_definitions(admin)
    app_id, key_id, secret = _worker_app(admin, "ungranted", grant=False)
    workflow_id = _start(admin, "Grace")
    workflows = admin.get_workflow_client()
    with worker_process(tmp_path, sandbox.url, key_id, secret):
        denied = wait_for(lambda: [r for r in sandbox.requests() if r["caller"] == f"app:{app_id}"
                                   and r["path"] == "/api/tasks/poll/batch/greetings" and r["status"] == 403])
        assert denied
        waiting = workflows.get_workflow(workflow_id, include_tasks=True)
        assert waiting.status == "RUNNING"
        assert [t.status for t in waiting.tasks] == ["SCHEDULED"]
        _grant(admin, app_id)
        done = _finished(admin, workflow_id)
    assert done.status == "COMPLETED"
    assert done.output == {"greeting": "Hello, Grace"}


def test_a_worker_keeps_working_past_token_expiry(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    sb = sandbox_factory(token_ttl=3)
    admin = _admin(sb)
    _register_definitions(admin)
    app_id, key_id, secret = _worker_app(admin, "long-lived", grant=True)
    with worker_process(tmp_path, sb.url, key_id, secret):
        assert _finished(admin, _start(admin, "Ada")).status == "COMPLETED"
        # Wait (bounded) until the worker's token expired and the server said so...
        wait_for(lambda: [r for r in sb.requests() if r["path"] == "/api/tasks/poll/batch/greetings"
                          and r["status"] == 401], timeout=20)
        # ...then the SDK mints a new token and carries on.
        done = _finished(admin, _start(admin, "Linus"))
    assert done.status == "COMPLETED"
    assert done.output == {"greeting": "Hello, Linus"}
    exchanges = [r for r in sb.requests() if r["path"] == "/api/token" and r["caller"] == f"app:{app_id}"]
    assert len(exchanges) >= 2


def test_state_survives_a_restart(sandbox: SandboxProcess, tmp_path: Path) -> None:
    admin = _admin(sandbox)
    _register_definitions(admin)
    app_id, key_id, secret = _worker_app(admin, "persistent", grant=True)
    queued = _start(admin, "Barbara")
    sandbox.restart()
    # The same SDK client, with its pre-restart token: the signing key persisted too.
    auth = admin.get_authorization_client()
    assert auth.get_application(app_id).name == "persistent"
    assert [r.name for r in auth.get_user(f"app:{app_id}").roles] == ["WORKER"]
    assert [k.id for k in auth.get_access_keys(app_id)] == [key_id]
    assert [s.id for s in auth.get_permissions(TargetRef(TargetType.TASK_DEF, "greetings"))["EXECUTE"]] == [
        f"app:{app_id}"]
    assert admin.get_metadata_client().get_task_def("greetings").name == "greetings"
    assert admin.get_workflow_client().get_workflow(queued).status == "RUNNING"
    with worker_process(tmp_path, sandbox.url, key_id, secret):
        done = _finished(admin, queued)
    assert done.status == "COMPLETED"
    assert done.output == {"greeting": "Hello, Barbara"}


def test_no_created_secret_appears_in_the_data_dir(sandbox: SandboxProcess) -> None:
    admin = _admin(sandbox)
    auth = admin.get_authorization_client()
    app = auth.create_application(CreateOrUpdateApplicationRequest("secretive"))
    secrets = [auth.create_access_key(app.id).secret for _ in range(3)]
    tokens = [auth.generate_token(auth.get_access_keys(app.id)[0].id, secrets[0])["token"]]
    # Rotation: delete the key and make another.
    auth.delete_access_key(app.id, auth.get_access_keys(app.id)[0].id)
    secrets.append(auth.create_access_key(app.id).secret)
    admin_secret = sandbox.admin_secret.get_secret_value()

    def leaks() -> list[str]:
        found = []
        for path in sandbox.data_dir.rglob("*"):
            if path.is_file() and path.name != "admin.env":
                data = path.read_bytes()
                found += [f"{path.name}: {'secret' if s in secrets else 'admin secret'}"
                          for s in [*secrets, admin_secret] if s.encode() in data]
                found += [f"{path.name}: token" for t in tokens if t.encode() in data]
        return found

    files = sorted(p.name for p in sandbox.data_dir.iterdir())
    assert "sandbox.db-wal" in files  # the WAL is searched too
    assert leaks() == []
    sandbox.stop()  # checkpoints the WAL into the database file
    assert leaks() == []
    assert admin_secret.encode() in sandbox.admin_env_path.read_bytes()


def test_admin_env_is_0600_and_works_for_the_sdk_as_is(sandbox: SandboxProcess,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert stat.S_IMODE(os.stat(sandbox.admin_env_path).st_mode) == 0o600
    values = dotenv_values(sandbox.admin_env_path)
    assert values == sandbox.admin_env
    assert set(values) == {"CONDUCTOR_SERVER_URL", "CONDUCTOR_AUTH_KEY", "CONDUCTOR_AUTH_SECRET"}
    for name, value in values.items():
        assert value is not None
        monkeypatch.setenv(name, value)
    clients = OrkesClients(Configuration())  # reads the CONDUCTOR_* variables, nothing else
    me = clients.get_authorization_client().get_user_info_from_token()
    assert [r["name"] for r in me["roles"]] == ["ADMIN"]
    assert clients.get_authorization_client().list_applications()


def test_a_wrong_secret_fails_cleanly_with_few_token_attempts(sandbox: SandboxProcess) -> None:
    mark = sandbox.mark()
    clients = sdk_clients(sandbox.url, sandbox.admin_key_id, "wrong-secret")
    with pytest.raises(AuthorizationException) as denied:
        clients.get_authorization_client().list_applications()
    assert denied.value.status == 401
    body = json.loads(denied.value.body)
    assert body["error"] == "INVALID_TOKEN"  # the request carried no token at all
    attempts = [r for r in sandbox.requests()[mark:] if r["path"] == "/api/token"]
    assert 1 <= len(attempts) <= 3
    assert all(r["status"] == 401 for r in attempts)


def test_sdk_reads_poll_data_of_a_real_worker_and_of_a_plain_poll(sandbox: SandboxProcess, tmp_path: Path) -> None:
    recorder = Recorder()
    admin = _admin(sandbox, recorder)
    _register_definitions(admin)
    tasks = admin.get_task_client()
    assert tasks.get_task_poll_data("greetings") == []
    _, key_id, secret = _worker_app(admin, "poller", grant=True)
    # A TaskHandler worker polls as the SDK does: its worker id is the host name.
    with worker_process(tmp_path, sandbox.url, key_id, secret):
        polls = wait_for(lambda: tasks.get_task_poll_data("greetings"), timeout=60)
    assert [(p.queue_name, p.worker_id, p.domain) for p in polls] == [("greetings", socket.gethostname(), None)]
    assert polls[0].last_poll_time > 0
    tasks.batch_poll_tasks("greetings", worker_id="conformance", count=1, timeout_in_millisecond=0, domain="blue")
    newest = tasks.get_task_poll_data("greetings")[0]
    assert (newest.worker_id, newest.domain) == ("conformance", "blue")
    # polldata/all as Orkes documents it (the SDK's generated method expects OSS's list, so ask for an object).
    everything = tasks.taskResourceApi.api_client.call_api(
        "/tasks/queue/polldata/all", "GET", {}, [("workerSize", 0), ("workerOpt", "GT")], {"Accept": "*/*"},
        response_type="object", auth_settings=[], _return_http_data_only=True)
    assert everything["queueData"] == {"greetings": {"size": 0, "pollerCount": 1},
                                       "blue:greetings": {"size": 0, "pollerCount": 1}}
    assert {(p["workerId"], p.get("domain")) for p in everything["pollData"]} == {
        (socket.gethostname(), None), ("conformance", "blue")}
    assert _validated(recorder) >= {"getPollData", "getAllPollData", "batchPoll"}
