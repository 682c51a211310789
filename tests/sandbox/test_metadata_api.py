"""Task and workflow definitions: shapes, defaults, 404s and who may change them (in-process)."""

from __future__ import annotations

from tests.sandbox.conftest import Api

GREETINGS = {"name": "greetings", "timeoutSeconds": 120, "totalTimeoutSeconds": 0, "ownerEmail": "a@b.c"}
WORKFLOW = {"name": "greet", "version": 1, "timeoutSeconds": 60, "tasks": [
    {"name": "greetings", "taskReferenceName": "g1", "type": "SIMPLE",
     "inputParameters": {"name": "${workflow.input.name}"}}]}


def test_register_get_update_delete_task_defs_with_defaults_filled_in(api: Api) -> None:
    assert api.client.post("/api/metadata/taskdefs", json=[GREETINGS], headers=api.admin).status_code == 200
    got = api.client.get("/api/metadata/taskdefs/greetings", headers=api.admin).json()
    assert got["name"] == "greetings"
    assert (got["retryCount"], got["retryLogic"], got["retryDelaySeconds"]) == (3, "FIXED", 60)
    assert got["responseTimeoutSeconds"] == 120  # never longer than timeoutSeconds
    assert got["createdBy"] == f"app:{api.creds.app_id}"
    assert isinstance(got["createTime"], int)
    updated = api.client.put("/api/metadata/taskdefs", json={**GREETINGS, "retryCount": 0}, headers=api.admin)
    assert updated.status_code == 200
    assert api.client.get("/api/metadata/taskdefs/greetings", headers=api.admin).json()["retryCount"] == 0
    names = [d["name"] for d in api.client.get("/api/metadata/taskdefs", headers=api.admin).json()]
    assert names == ["greetings"]
    assert api.client.delete("/api/metadata/taskdefs/greetings", headers=api.admin).status_code == 200
    for response in (api.client.get("/api/metadata/taskdefs/greetings", headers=api.admin),
                     api.client.delete("/api/metadata/taskdefs/greetings", headers=api.admin),
                     api.client.put("/api/metadata/taskdefs", json=GREETINGS, headers=api.admin)):
        assert response.status_code == 404
        assert "greetings" in response.json()["message"]


def test_invalid_task_defs_are_400_with_validation_errors(api: Api) -> None:
    too_slow = {**GREETINGS, "timeoutSeconds": 10, "responseTimeoutSeconds": 20}
    response = api.client.post("/api/metadata/taskdefs", json=[too_slow], headers=api.admin)
    assert response.status_code == 400
    assert response.json()["validationErrors"][0]["path"] == "[0].responseTimeoutSeconds"
    nameless = api.client.post("/api/metadata/taskdefs", json=[{"timeoutSeconds": 1}], headers=api.admin)
    assert nameless.status_code == 400
    assert api.client.post("/api/metadata/taskdefs", json=[], headers=api.admin).status_code == 400


def test_registering_needs_metadata_api_and_the_registrant_owns_the_definition(api: Api) -> None:
    _, plain = api.new_app("plain", "WORKER")
    _, author = api.new_app("author", "METADATA_API")
    _, rival = api.new_app("rival", "METADATA_API")
    assert api.client.post("/api/metadata/taskdefs", json=[GREETINGS], headers=plain).status_code == 403
    assert api.client.post("/api/metadata/taskdefs", json=[GREETINGS], headers=author).status_code == 200
    assert api.client.put("/api/metadata/taskdefs", json={**GREETINGS, "retryCount": 1},
                          headers=author).status_code == 200
    assert api.client.put("/api/metadata/taskdefs", json=GREETINGS, headers=rival).status_code == 403
    assert api.client.delete("/api/metadata/taskdefs/greetings", headers=rival).status_code == 403
    # The creator may share what it created.
    rival_id = api.client.get("/api/token/userInfo", headers=rival).json()["id"]
    shared = api.client.post("/api/auth/authorization", headers=author, json={
        "subject": {"type": "USER", "id": rival_id}, "target": {"type": "TASK_DEF", "id": "greetings"},
        "access": ["UPDATE"]})
    assert shared.status_code == 200
    assert api.client.put("/api/metadata/taskdefs", json=GREETINGS, headers=rival).status_code == 200
    # A plain worker sees only definitions it has a grant on.
    assert api.client.get("/api/metadata/taskdefs", headers=plain).json() == []
    assert api.client.get("/api/metadata/taskdefs/greetings", headers=plain).status_code == 403


def test_task_defs_list_filters_by_tag(api: Api) -> None:
    tagged = {**GREETINGS, "name": "tagged", "tags": [{"key": "team", "value": "a"}]}
    api.client.post("/api/metadata/taskdefs", json=[GREETINGS, tagged], headers=api.admin)
    listed = api.client.get("/api/metadata/taskdefs?tagKey=team&tagValue=a", headers=api.admin).json()
    assert [d["name"] for d in listed] == ["tagged"]


def test_workflow_defs_create_conflict_overwrite_versions_and_delete(api: Api) -> None:
    assert api.client.post("/api/metadata/workflow", json=WORKFLOW, headers=api.admin).status_code == 200
    conflict = api.client.post("/api/metadata/workflow", json=WORKFLOW, headers=api.admin)
    assert conflict.status_code == 409
    overwrite = api.client.post("/api/metadata/workflow?overwrite=True", json={**WORKFLOW, "description": "d"},
                                headers=api.admin)
    assert overwrite.status_code == 200
    assert api.client.put("/api/metadata/workflow", json=[{**WORKFLOW, "version": 2}],
                          headers=api.admin).status_code == 200
    latest = api.client.get("/api/metadata/workflow/greet", headers=api.admin).json()
    assert latest["version"] == 2
    first = api.client.get("/api/metadata/workflow/greet?version=1", headers=api.admin).json()
    assert first["description"] == "d"
    assert first["tasks"][0]["inputParameters"] == {"name": "${workflow.input.name}"}
    assert len(api.client.get("/api/metadata/workflow", headers=api.admin).json()) == 2
    assert api.client.delete("/api/metadata/workflow/greet/2", headers=api.admin).status_code == 200
    assert api.client.get("/api/metadata/workflow/greet?version=2", headers=api.admin).status_code == 404
    missing = api.client.get("/api/metadata/workflow/nope", headers=api.admin)
    assert missing.status_code == 404
    assert "nope" in missing.json()["message"]


def test_workflow_defs_are_validated(api: Api) -> None:
    no_tasks = api.client.post("/api/metadata/workflow", json={**WORKFLOW, "tasks": []}, headers=api.admin)
    assert no_tasks.status_code == 400
    duplicate_ref = {**WORKFLOW, "tasks": WORKFLOW["tasks"] * 2}
    assert api.client.post("/api/metadata/workflow", json=duplicate_ref, headers=api.admin).status_code == 400
