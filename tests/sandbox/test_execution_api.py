"""Workflows of SIMPLE tasks: start, poll, update, retries, timeouts and who may do them."""

from __future__ import annotations

from typing import Any

import pytest

from orkes_provision.sandbox import engine
from orkes_provision.sandbox.http import now_ms
from tests.sandbox.conftest import Api

TWO_STEPS = {
    "name": "greet", "version": 1, "timeoutSeconds": 60,
    "tasks": [
        {"name": "greetings", "taskReferenceName": "hello", "type": "SIMPLE",
         "inputParameters": {"name": "${workflow.input.name}", "fixed": 7}},
        {"name": "shout", "taskReferenceName": "loud", "type": "SIMPLE",
         "inputParameters": {"text": "${hello.output.greeting}", "wf": "${workflow.workflowId}"}},
    ],
    "outputParameters": {"result": "${loud.output.text}", "first": "${hello.output.greeting}"},
}


def _setup(api: Api, workflow: dict[str, Any] | None = None, **task_def: Any) -> None:
    defs = [{"name": n, "timeoutSeconds": 60, "retryCount": 0, "retryDelaySeconds": 0, **task_def}
            for n in ("greetings", "shout")]
    assert api.client.post("/api/metadata/taskdefs", json=defs, headers=api.admin).status_code == 200
    assert api.client.post("/api/metadata/workflow", json=workflow or TWO_STEPS, headers=api.admin).status_code == 200


def _worker(api: Api, *tasks: str) -> dict[str, str]:
    app_id, headers = api.new_app("worker", "WORKER")
    for task in tasks:
        api.grant(app_id, "TASK_DEF", task, "EXECUTE")
    return headers


def _start(api: Api, name: str = "Ada") -> str:
    response = api.client.post("/api/workflow", json={"name": "greet", "input": {"name": name}}, headers=api.admin)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def _poll_one(api: Api, headers: dict[str, str], task: str) -> dict[str, Any]:
    polled = api.client.get(f"/api/tasks/poll/batch/{task}?workerid=w1&count=1&timeout=100", headers=headers).json()
    assert len(polled) == 1
    return dict(polled[0])


def _complete(api: Api, headers: dict[str, str], task: dict[str, Any], output: dict[str, Any]) -> str:
    response = api.client.post("/api/tasks", headers=headers, json={
        "workflowInstanceId": task["workflowInstanceId"], "taskId": task["taskId"], "status": "COMPLETED",
        "outputData": output, "workerId": "w1"})
    assert response.status_code == 200
    return response.text


def test_a_two_step_workflow_runs_to_completion_with_resolved_inputs_and_outputs(api: Api) -> None:
    _setup(api)
    worker = _worker(api, "greetings", "shout")
    workflow_id = _start(api)
    running = api.client.get(f"/api/workflow/{workflow_id}", headers=api.admin).json()
    assert running["status"] == "RUNNING"
    assert [t["status"] for t in running["tasks"]] == ["SCHEDULED"]
    first = _poll_one(api, worker, "greetings")
    assert first["inputData"] == {"name": "Ada", "fixed": 7}
    assert (first["status"], first["workerId"], first["referenceTaskName"]) == ("IN_PROGRESS", "w1", "hello")
    assert _complete(api, worker, first, {"greeting": "Hello, Ada"}) == first["taskId"]
    second = _poll_one(api, worker, "shout")
    assert second["inputData"] == {"text": "Hello, Ada", "wf": workflow_id}
    v2 = api.client.post("/api/tasks/update-v2", headers=worker, json={
        "workflowInstanceId": workflow_id, "taskId": second["taskId"], "status": "COMPLETED",
        "outputData": {"text": "HELLO, ADA"}})
    assert v2.status_code == 204  # no next task of that type
    done = api.client.get(f"/api/workflow/{workflow_id}", headers=api.admin).json()
    assert done["status"] == "COMPLETED"
    assert done["output"] == {"result": "HELLO, ADA", "first": "Hello, Ada"}
    assert [t["status"] for t in done["tasks"]] == ["COMPLETED", "COMPLETED"]
    assert done["endTime"] >= done["startTime"]


def test_start_by_name_takes_the_input_as_body_and_update_v2_hands_out_the_next_task(api: Api) -> None:
    _setup(api)
    worker = _worker(api, "greetings")
    ids = [api.client.post("/api/workflow/greet?correlationId=c1&priority=0", json={"name": n},
                           headers=api.admin).text for n in ("A", "B")]
    first = _poll_one(api, worker, "greetings")
    nxt = api.client.post("/api/tasks/update-v2", headers=worker, json={
        "workflowInstanceId": first["workflowInstanceId"], "taskId": first["taskId"], "status": "COMPLETED",
        "outputData": {"greeting": "hi"}})
    assert nxt.status_code == 200
    assert nxt.json()["status"] == "IN_PROGRESS"
    assert {first["workflowInstanceId"], nxt.json()["workflowInstanceId"]} == set(ids)
    assert api.client.get(f"/api/workflow/{ids[0]}", headers=api.admin).json()["correlationId"] == "c1"


def test_empty_queues_answer_an_empty_list_or_204(api: Api) -> None:
    _setup(api)
    worker = _worker(api, "greetings")
    batch = api.client.get("/api/tasks/poll/batch/greetings?workerid=w&count=5&timeout=0", headers=worker)
    assert (batch.status_code, batch.json()) == (200, [])
    single = api.client.get("/api/tasks/poll/greetings?workerid=w", headers=worker)
    assert (single.status_code, single.content) == (204, b"")


def test_polling_without_execute_is_the_orkes_403(api: Api) -> None:
    _setup(api)
    _start(api)
    _, no_grant = api.new_app("no-grant", "WORKER")
    granted_no_role_id, granted_no_role = api.new_app("no-role")
    api.grant(granted_no_role_id, "TASK_DEF", "greetings", "EXECUTE")
    for headers in (no_grant, granted_no_role):
        denied = api.client.get("/api/tasks/poll/batch/greetings?workerid=w&count=1", headers=headers)
        assert denied.status_code == 403
        assert denied.json() == {"status": 403, "message": "You don't have permissions to execute task: greetings",
                                 "instance": "orkes-provision-sandbox", "retryable": False}
    # ...and the task stays queued for someone who may run it.
    assert _poll_one(api, _worker(api, "greetings"), "greetings")["taskDefName"] == "greetings"


def test_execute_can_come_from_a_tag_a_domain_or_unrestricted_worker(api: Api) -> None:
    _setup(api, tags=[{"key": "team", "value": "blue"}])
    by_tag_id, by_tag = api.new_app("tag", "WORKER")
    api.grant(by_tag_id, "TAG", "team:blue", "EXECUTE")
    _, unrestricted = api.new_app("unrestricted", "UNRESTRICTED_WORKER")
    by_domain_id, by_domain = api.new_app("domain", "WORKER")
    api.grant(by_domain_id, "DOMAIN", "eu", "EXECUTE")
    _start(api)
    assert _poll_one(api, by_tag, "greetings")["taskDefName"] == "greetings"
    _start(api)
    assert _poll_one(api, unrestricted, "greetings")["taskDefName"] == "greetings"
    in_domain = api.client.post("/api/workflow", headers=api.admin, json={
        "name": "greet", "input": {"name": "x"}, "taskToDomain": {"greetings": "eu"}}).text
    assert api.client.get("/api/tasks/poll/batch/greetings?count=1&timeout=0",
                          headers=by_domain).status_code == 403
    assert api.client.get("/api/tasks/poll/batch/greetings?count=1&timeout=0", headers=unrestricted).json() == []
    task = api.client.get("/api/tasks/poll/batch/greetings?count=1&domain=eu", headers=by_domain).json()[0]
    assert (task["workflowInstanceId"], task["domain"]) == (in_domain, "eu")


def test_starting_needs_execute_on_the_workflow_def(api: Api) -> None:
    _setup(api)
    app_id, starter = api.new_app("starter")
    denied = api.client.post("/api/workflow", json={"name": "greet", "input": {}}, headers=starter)
    assert denied.status_code == 403
    assert denied.json()["message"] == "You don't have permissions to execute workflow: greet"
    api.grant(app_id, "WORKFLOW_DEF", "greet", "EXECUTE")
    started = api.client.post("/api/workflow", json={"name": "greet", "input": {}}, headers=starter)
    assert started.status_code == 200
    assert api.client.get(f"/api/workflow/{started.text}", headers=starter).json()["createdBy"] == f"app:{app_id}"
    missing = api.client.post("/api/workflow", json={"name": "nope"}, headers=api.admin)
    assert missing.status_code == 404
    assert "nope" in missing.json()["message"]


def test_failed_tasks_are_retried_then_fail_the_workflow(api: Api) -> None:
    _setup(api, retryCount=1)
    worker = _worker(api, "greetings")
    workflow_id = _start(api)
    for attempt in (0, 1):
        task = _poll_one(api, worker, "greetings")
        assert task["retryCount"] == attempt
        api.client.post("/api/tasks", headers=worker, json={
            "workflowInstanceId": workflow_id, "taskId": task["taskId"], "status": "FAILED",
            "reasonForIncompletion": f"boom {attempt}"})
    failed = api.client.get(f"/api/workflow/{workflow_id}", headers=api.admin).json()
    assert failed["status"] == "FAILED"
    assert failed["reasonForIncompletion"] == "boom 1"
    assert failed["failedReferenceTaskNames"] == ["hello"]
    assert [t["status"] for t in failed["tasks"]] == ["FAILED", "FAILED"]
    assert failed["tasks"][0]["retried"] is True


def test_a_terminal_error_is_not_retried(api: Api) -> None:
    _setup(api, retryCount=3)
    worker = _worker(api, "greetings")
    workflow_id = _start(api)
    task = _poll_one(api, worker, "greetings")
    api.client.post("/api/tasks", headers=worker, json={
        "workflowInstanceId": workflow_id, "taskId": task["taskId"], "status": "FAILED_WITH_TERMINAL_ERROR"})
    assert api.client.get(f"/api/workflow/{workflow_id}", headers=api.admin).json()["status"] == "FAILED"


def test_repeated_updates_are_harmless_and_bad_ones_are_rejected(api: Api) -> None:
    _setup(api)
    worker = _worker(api, "greetings", "shout")
    workflow_id = _start(api)
    task = _poll_one(api, worker, "greetings")
    _complete(api, worker, task, {"greeting": "one"})
    assert _complete(api, worker, task, {"greeting": "two"}) == task["taskId"]
    tasks = api.client.get(f"/api/workflow/{workflow_id}", headers=api.admin).json()["tasks"]
    assert tasks[0]["outputData"] == {"greeting": "one"}
    assert len(tasks) == 2
    unknown = api.client.post("/api/tasks", headers=worker, json={
        "workflowInstanceId": workflow_id, "taskId": "nope", "status": "COMPLETED"})
    assert unknown.status_code == 404
    bad = api.client.post("/api/tasks", headers=worker, json={
        "workflowInstanceId": workflow_id, "taskId": tasks[1]["taskId"], "status": "DONE"})
    assert bad.status_code == 400
    assert bad.json()["validationErrors"][0]["path"] == "status"


def test_only_simple_tasks_run(api: Api) -> None:
    http_task = {**TWO_STEPS, "name": "web", "tasks": [{"name": "call", "taskReferenceName": "c", "type": "HTTP"}]}
    assert api.client.post("/api/metadata/workflow", json=http_task, headers=api.admin).status_code == 200
    refused = api.client.post("/api/workflow", json={"name": "web"}, headers=api.admin)
    assert refused.status_code == 400
    assert "SIMPLE" in refused.json()["message"]


def test_unknown_workflow_is_404_naming_the_id(api: Api) -> None:
    response = api.client.get("/api/workflow/0000-none", headers=api.admin)
    assert response.status_code == 404
    assert "0000-none" in response.json()["message"]


def test_terminate_cancels_the_queued_task(api: Api) -> None:
    _setup(api)
    worker = _worker(api, "greetings")
    workflow_id = _start(api)
    assert api.client.delete(f"/api/workflow/{workflow_id}?reason=stop", headers=api.admin).status_code == 200
    workflow = api.client.get(f"/api/workflow/{workflow_id}", headers=api.admin).json()
    assert (workflow["status"], workflow["tasks"][0]["status"]) == ("TERMINATED", "CANCELED")
    assert api.client.get("/api/tasks/poll/batch/greetings?timeout=0", headers=worker).json() == []


# engine rules that depend on time: driven with explicit clocks, never by sleeping -----------

@pytest.fixture
def started(api: Api) -> str:
    _setup(api, retryCount=1, retryDelaySeconds=5, responseTimeoutSeconds=10)
    return _start(api)


def test_a_silent_worker_times_out_and_the_task_is_retried_after_the_delay(api: Api, started: str) -> None:
    db, t0 = api.state.db, now_ms()
    [task] = engine.poll(db, "greetings", None, "w", 1, t0)
    engine.sweep_timeouts(db, t0 + 9_000)
    assert engine.load_task(db, task["taskId"])["status"] == "IN_PROGRESS"  # type: ignore[index]
    engine.sweep_timeouts(db, t0 + 10_001)
    assert engine.load_task(db, task["taskId"])["status"] == "TIMED_OUT"  # type: ignore[index]
    assert engine.poll(db, "greetings", None, "w", 1, t0 + 10_002) == []  # retry waits retryDelaySeconds
    [retry] = engine.poll(db, "greetings", None, "w", 1, t0 + 15_002)
    assert (retry["retryCount"], retry["retriedTaskId"]) == (1, task["taskId"])
    engine.sweep_timeouts(db, t0 + 30_000)
    workflow = engine.load_workflow(db, started)
    assert workflow is not None
    assert workflow["status"] == "FAILED"
    assert "responseTimeout" in workflow["reasonForIncompletion"]


def test_in_progress_with_callback_requeues_the_task_later(api: Api, started: str) -> None:
    db, t0 = api.state.db, now_ms()
    [task] = engine.poll(db, "greetings", None, "w", 1, t0)
    engine.update_task(db, {"workflowInstanceId": started, "taskId": task["taskId"], "status": "IN_PROGRESS",
                            "callbackAfterSeconds": 30, "outputData": {"progress": 1}}, t0)
    assert engine.poll(db, "greetings", None, "w", 1, t0 + 29_000) == []
    [again] = engine.poll(db, "greetings", None, "w", 1, t0 + 30_000)
    assert (again["taskId"], again["pollCount"], again["outputData"]) == (task["taskId"], 2, {"progress": 1})


def test_a_worker_that_registered_the_task_def_may_run_it_without_a_grant(api: Api) -> None:
    _, owner = api.new_app("owner", "WORKER", "METADATA_API")
    assert api.client.post("/api/metadata/taskdefs", json=[{"name": "mine", "timeoutSeconds": 60}],
                           headers=owner).status_code == 200
    assert api.client.get("/api/tasks/poll/batch/mine?timeout=0", headers=owner).json() == []
    _, stranger = api.new_app("stranger", "WORKER")
    assert api.client.get("/api/tasks/poll/batch/mine?timeout=0", headers=stranger).status_code == 403
