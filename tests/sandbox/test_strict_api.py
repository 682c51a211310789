"""Where Orkes binds a body into typed objects, the sandbox answers 400 as it would and stores nothing;
operations of the Orkes document the sandbox lacks answer 501; an application cannot delete itself."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sandbox.conftest import Api

FLOW: dict[str, Any] = {"name": "flow", "version": 1, "timeoutSeconds": 60,
                        "tasks": [{"name": "t", "taskReferenceName": "t_ref", "type": "SIMPLE"}]}
INT32_MAX, INT64_MAX = 2**31 - 1, 2**63 - 1


def _task(**fields: Any) -> dict[str, Any]:
    return {"name": "bound", "timeoutSeconds": 60, **fields}


def _refused(response: Any, field: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == 400
    assert field in body["message"]
    assert any(field in str(e["path"]) for e in body["validationErrors"])


@pytest.mark.parametrize(("fields", "field"), [
    ({"timeoutPolicy": "NOPE"}, "timeoutPolicy"),
    ({"retryLogic": "SOMETIMES"}, "retryLogic"),
    ({"retryCount": INT32_MAX + 1}, "retryCount"),
    ({"timeoutSeconds": INT64_MAX + 1}, "timeoutSeconds"),
    ({"retryCount": "three"}, "retryCount"),
    ({"retryCount": True}, "retryCount"),
    ({"retryCount": 2.5}, "retryCount"),
    ({"inputKeys": {"not": "a list"}}, "inputKeys"),
    ({"inputTemplate": ["not", "an", "object"]}, "inputTemplate"),
    ({"enforceSchema": "yes"}, "enforceSchema"),
    ({"description": {"not": "a string"}}, "description"),
    ({"tags": [{"key": 1}]}, "tags[0].key"),
])
def test_task_definitions_that_do_not_bind_are_400_and_nothing_is_stored(api: Api, fields: dict[str, Any],
                                                                         field: str) -> None:
    for method, body in (("POST", [_task(**fields)]), ("PUT", _task(**fields))):
        _refused(api.client.request(method, "/api/metadata/taskdefs", json=body, headers=api.admin), field)
    assert api.client.get("/api/metadata/taskdefs/bound", headers=api.admin).status_code == 404


def test_the_largest_integers_of_each_type_still_bind(api: Api) -> None:
    body = _task(retryCount=INT32_MAX, timeoutSeconds=INT64_MAX, responseTimeoutSeconds=1)
    assert api.client.post("/api/metadata/taskdefs", json=[body], headers=api.admin).status_code == 200
    stored = api.client.get("/api/metadata/taskdefs/bound", headers=api.admin).json()
    assert (stored["retryCount"], stored["timeoutSeconds"]) == (INT32_MAX, INT64_MAX)


@pytest.mark.parametrize(("change", "field"), [
    ({"version": INT32_MAX + 1}, "version"),
    ({"version": 10**30}, "version"),
    ({"timeoutPolicy": "RETRY"}, "timeoutPolicy"),  # a task's policy, not a workflow's
    ({"schemaVersion": "two"}, "schemaVersion"),
    ({"tasks": [{"name": "t", "taskReferenceName": "t_ref", "optional": "maybe"}]}, "tasks[0].optional"),
    ({"tasks": [{"name": "t", "taskReferenceName": "t_ref", "startDelay": 2**40}]}, "tasks[0].startDelay"),
    ({"tasks": [{"name": "t", "taskReferenceName": "t_ref", "workflowTaskType": "TELEPORT"}]},
     "tasks[0].workflowTaskType"),
])
def test_workflow_definitions_that_do_not_bind_are_400_and_nothing_is_stored(api: Api, change: dict[str, Any],
                                                                             field: str) -> None:
    _refused(api.client.post("/api/metadata/workflow", json={**FLOW, **change}, headers=api.admin), field)
    _refused(api.client.put("/api/metadata/workflow", json=[{**FLOW, **change}], headers=api.admin), field)
    assert api.client.get("/api/metadata/workflow", headers=api.admin).json() == []


def _registered(api: Api) -> None:
    task = {"name": "t", "timeoutSeconds": 60}
    assert api.client.post("/api/metadata/taskdefs", json=[task], headers=api.admin).status_code == 200
    assert api.client.post("/api/metadata/workflow", json=FLOW, headers=api.admin).status_code == 200


@pytest.mark.parametrize("priority", [-1, 100, INT32_MAX + 1])
def test_a_workflow_priority_outside_0_to_99_is_400_and_starts_nothing(api: Api, priority: int) -> None:
    _registered(api)
    _refused(api.client.post("/api/workflow", json={"name": "flow", "priority": priority}, headers=api.admin),
             "priority")
    _refused(api.client.post(f"/api/workflow/flow?priority={priority}", json={}, headers=api.admin), "priority")
    assert api.state.db.one("SELECT COUNT(*) AS n FROM workflows")["n"] == 0  # type: ignore[index]
    assert api.client.post("/api/workflow", json={"name": "flow", "priority": 99}, headers=api.admin).status_code \
        == 200


def test_integer_query_parameters_past_their_type_are_400_not_500(api: Api) -> None:
    _registered(api)
    _refused(api.client.get(f"/api/metadata/workflow/flow?version={10**30}", headers=api.admin), "version")
    _refused(api.client.post("/api/workflow", json={"name": "flow", "version": 10**30}, headers=api.admin),
             "version")
    _refused(api.client.get("/api/tasks/poll/batch/t?count=99999999999", headers=api.admin), "count")


def test_operations_of_the_orkes_document_the_sandbox_lacks_answer_501(api: Api) -> None:
    tags = api.client.get("/api/metadata/workflow/flow/tags", headers=api.admin)
    assert tags.status_code == 501
    assert tags.json()["message"] == ("The sandbox does not implement GET /api/metadata/workflow/{name}/tags "
                                      "(getWorkflowTags)")
    assert api.client.put("/api/workflow/bulk/pause", json=[], headers=api.admin).status_code == 501
    # Outside the document: still 404 and 405.
    assert api.client.get("/api/no-such-resource", headers=api.admin).status_code == 404
    assert api.client.patch("/api/applications", headers=api.admin).status_code == 405


def test_the_application_whose_key_makes_the_request_cannot_delete_itself(api: Api) -> None:
    refused = api.client.delete(f"/api/applications/{api.creds.app_id}", headers=api.admin)
    assert refused.status_code == 409
    assert refused.json()["message"] == (
        f"Application '{api.creds.app_id}' cannot delete itself: the key of this request belongs to it")
    assert api.client.get("/api/applications", headers=api.admin).status_code == 200
    # Another admin may delete it.
    other_id, other = api.new_app("second-admin", "ADMIN")
    assert api.client.delete(f"/api/applications/{api.creds.app_id}", headers=other).status_code == 200
    assert api.client.delete(f"/api/applications/{other_id}", headers=other).status_code == 409
