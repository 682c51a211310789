"""Returning a polled task to its queue, and finding the tasks a worker holds: the two server
operations that let a supervisor hand the tasks of a stopped worker to its replacement.

Conductor's rules (conductor-oss ``WorkflowExecutorOps.updateTask`` and ``DeciderService.
isResponseTimedOut``): an ``IN_PROGRESS`` update of a worker task sets it back to ``SCHEDULED``,
records the update's ``workerId`` (none if absent) and ``callbackAfterSeconds``, and postpones its
queue message by that many seconds, so ``0`` hands it to the next poll; ``extendLease`` only
restarts the response-timeout clock; the response timeout applies to ``IN_PROGRESS`` tasks only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orkes_provision.sandbox import engine
from orkes_provision.sandbox.http import now_ms
from tests.sandbox.conftest import Api

WORKFLOW = {"name": "slow", "version": 1, "timeoutSeconds": 3600,
            "tasks": [{"name": "crunch", "taskReferenceName": "crunch_ref", "type": "SIMPLE"},
                      {"name": "report", "taskReferenceName": "report_ref", "type": "SIMPLE"}]}


def _setup(api: Api, **task_def: Any) -> None:
    # No short timeouts: the server's defaults (responseTimeoutSeconds 600, retryDelaySeconds 60).
    defs = [{"name": n, "timeoutSeconds": 3600, **task_def} for n in ("crunch", "report")]
    assert api.client.post("/api/metadata/taskdefs", json=defs, headers=api.admin).status_code == 200
    assert api.client.post("/api/metadata/workflow", json=WORKFLOW, headers=api.admin).status_code == 200


def _start(api: Api) -> str:
    response = api.client.post("/api/workflow", json={"name": "slow", "input": {}}, headers=api.admin)
    assert response.status_code == 200, response.text
    return response.text


def _requeue(task: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"workflowInstanceId": task["workflowInstanceId"], "taskId": task["taskId"], "status": "IN_PROGRESS",
            "callbackAfterSeconds": 0, **extra}


@pytest.fixture
def started(api: Api) -> str:
    _setup(api)
    return _start(api)


def test_an_in_progress_update_hands_the_task_to_the_next_poll_with_no_retry(api: Api, started: str) -> None:
    db, t0 = api.state.db, now_ms()
    [held] = engine.poll(db, "crunch", None, "old-worker", 1, t0)

    engine.update_task(db, _requeue(held), t0 + 1_000)

    stored = engine.load_task(db, held["taskId"])
    assert stored is not None
    assert (stored["status"], stored.get("workerId")) == ("SCHEDULED", None)
    [again] = engine.poll(db, "crunch", None, "new-worker", 1, t0 + 1_000)
    assert (again["taskId"], again["status"], again["workerId"]) == (held["taskId"], "IN_PROGRESS", "new-worker")
    assert (again["pollCount"], again["retryCount"]) == (2, 0)  # the same attempt: no retry, no retry delay
    engine.update_task(db, {**_requeue(again), "status": "COMPLETED", "outputData": {"n": 1}}, t0 + 2_000)
    [first, second] = engine.tasks_of(db, started)
    assert (first["status"], second["status"]) == ("COMPLETED", "SCHEDULED")


def test_callback_after_seconds_keeps_the_returned_task_hidden_until_then(api: Api, started: str) -> None:
    db, t0 = api.state.db, now_ms()
    [held] = engine.poll(db, "crunch", None, "w", 1, t0)
    engine.update_task(db, _requeue(held, callbackAfterSeconds=30, workerId="w"), t0)
    assert engine.load_task(db, held["taskId"])["status"] == "SCHEDULED"  # type: ignore[index]
    assert engine.poll(db, "crunch", None, "w", 1, t0 + 29_999) == []
    assert [t["taskId"] for t in engine.poll(db, "crunch", None, "w", 1, t0 + 30_000)] == [held["taskId"]]


def test_a_returned_task_is_not_timed_out_while_it_waits_in_the_queue(api: Api, started: str) -> None:
    db, t0 = api.state.db, now_ms()
    [held] = engine.poll(db, "crunch", None, "w", 1, t0)
    engine.update_task(db, _requeue(held), t0)
    engine.sweep_timeouts(db, t0 + 601_000)  # past the default responseTimeoutSeconds of 600
    assert engine.load_task(db, held["taskId"])["status"] == "SCHEDULED"  # type: ignore[index]


def test_a_lease_extension_keeps_the_task_with_its_worker_and_restarts_the_response_clock(api: Api) -> None:
    _setup(api, responseTimeoutSeconds=10, retryCount=0)
    workflow_id = _start(api)
    db, t0 = api.state.db, now_ms()
    [held] = engine.poll(db, "crunch", None, "w", 1, t0)

    engine.update_task(db, _requeue(held, extendLease=True, workerId="w"), t0 + 8_000)

    assert engine.poll(db, "crunch", None, "other", 1, t0 + 8_000) == []
    engine.sweep_timeouts(db, t0 + 17_000)
    stored = engine.load_task(db, held["taskId"])
    assert stored is not None
    assert (stored["status"], stored["workerId"]) == ("IN_PROGRESS", "w")
    engine.sweep_timeouts(db, t0 + 18_001)
    assert engine.load_task(db, held["taskId"])["status"] == "TIMED_OUT"  # type: ignore[index]
    assert engine.load_workflow(db, workflow_id)["status"] == "FAILED"  # type: ignore[index]


def test_without_the_update_a_task_of_a_vanished_worker_waits_for_its_response_timeout(
        api: Api, started: str) -> None:
    # What the requeue avoids: nobody else gets the task for 600 s, then it is retried after 60 s more.
    db, t0 = api.state.db, now_ms()
    [held] = engine.poll(db, "crunch", None, "gone", 1, t0)
    assert engine.poll(db, "crunch", None, "new", 1, t0 + 599_000) == []
    assert engine.poll(db, "crunch", None, "new", 1, t0 + 600_001) == []  # TIMED_OUT, retry after the delay
    assert engine.load_task(db, held["taskId"])["status"] == "TIMED_OUT"  # type: ignore[index]
    [retry] = engine.poll(db, "crunch", None, "new", 1, t0 + 660_001)
    assert retry["retryCount"] == 1


def test_the_update_goes_through_the_worker_api_with_execute_permission(api: Api, started: str) -> None:
    app_id, worker = api.new_app("crunchers", "WORKER")
    api.grant(app_id, "TASK_DEF", "crunch", "EXECUTE")
    [held] = api.client.get("/api/tasks/poll/batch/crunch?workerid=old&count=1&timeout=0", headers=worker).json()

    response = api.client.post("/api/tasks", json=_requeue(held), headers=worker)

    assert response.status_code == 200, response.text
    assert response.text == held["taskId"]
    [again] = api.client.get("/api/tasks/poll/batch/crunch?workerid=new&count=1&timeout=0", headers=worker).json()
    assert (again["taskId"], again["workerId"]) == (held["taskId"], "new")
    _, stranger = api.new_app("strangers", "WORKER")
    assert api.client.post("/api/tasks", json=_requeue(again), headers=stranger).status_code == 403


# finding what a worker holds: GET /api/tasks/search, then each task ------------------------------

def _search(api: Api, headers: dict[str, str], query: str, **params: Any) -> dict[str, Any]:
    response = api.client.get("/api/tasks/search", params={"query": query, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_search_finds_in_progress_tasks_by_type_as_task_summaries(api: Api) -> None:
    _setup(api)
    ids = [_start(api) for _ in range(3)]
    db, t0 = api.state.db, now_ms()
    polled = engine.poll(db, "crunch", None, "w1", 2, t0)

    found = _search(api, api.admin, "status IN (IN_PROGRESS) AND taskType = crunch")

    assert found["totalHits"] == 2
    assert sorted(s["taskId"] for s in found["results"]) == sorted(t["taskId"] for t in polled)
    summary = found["results"][0]
    assert "workerId" not in summary  # as on Conductor: the summary does not say who holds a task
    assert summary["workflowId"] in ids
    assert (summary["taskDefName"], summary["taskType"], summary["status"]) == ("crunch", "crunch", "IN_PROGRESS")
    assert summary["taskReferenceName"] == "crunch_ref"
    assert summary["startTime"].endswith("Z") and summary["input"] == "{}"
    scheduled = _search(api, api.admin, "status = SCHEDULED AND taskDefName IN (crunch, report)", size=10)
    assert scheduled["totalHits"] == 1


def test_search_pages_and_sorts(api: Api) -> None:
    _setup(api)
    for _ in range(5):
        _start(api)
    everything = _search(api, api.admin, "taskType = crunch", sort="scheduledTime:DESC")
    pages = [_search(api, api.admin, "taskType = crunch", sort="scheduledTime:DESC", start=s, size=2)
             for s in (0, 2, 4)]
    assert [p["totalHits"] for p in pages] == [5, 5, 5]
    assert [s["taskId"] for p in pages for s in p["results"]] == [s["taskId"] for s in everything["results"]]
    times = [s["scheduledTime"] for s in everything["results"]]
    assert times == sorted(times, reverse=True)


@pytest.mark.parametrize("query", ["status = IN_PROGRESS OR taskType = crunch", "colour = red", "status IN ()",
                                   "status IN (SCHEDULED", "status <", "taskType > 3"])
def test_search_refuses_what_it_cannot_read(api: Api, query: str) -> None:
    response = api.client.get("/api/tasks/search", params={"query": query}, headers=api.admin)
    assert response.status_code == 400
    assert "invalid search query" in response.json()["message"]


def test_a_worker_application_may_not_search_tasks_even_those_it_executes(api: Api, started: str) -> None:
    app_id, worker = api.new_app("crunchers", "WORKER")
    api.grant(app_id, "TASK_DEF", "crunch", "EXECUTE")
    refused = api.client.get("/api/tasks/search", params={"query": "status = SCHEDULED"}, headers=worker)
    assert (refused.status_code, refused.json()["message"]) == (403, "You don't have permissions to search tasks")
    # USER_READ_ONLY is a role of people; a USER application may search.
    _, user = api.new_app("searchers", "USER")
    assert _search(api, user, "status = SCHEDULED")["totalHits"] == 0  # it may read none of them


def test_where_worker_search_is_allowed_a_worker_sees_only_the_tasks_it_may_execute(tmp_path: Path) -> None:
    api = Api(tmp_path / "data", worker_search=True)
    try:
        _setup(api)
        _start(api)
        app_id, worker = api.new_app("crunchers", "WORKER")
        api.grant(app_id, "TASK_DEF", "crunch", "EXECUTE")
        _, stranger = api.new_app("strangers", "WORKER")
        assert _search(api, worker, "status = SCHEDULED")["totalHits"] == 1
        assert _search(api, stranger, "status = SCHEDULED") == {"totalHits": 0, "results": []}
    finally:
        api.close()

