"""The rules the sandbox takes from the Orkes docs (or, where none speaks, the stricter choice,
listed UNCONFIRMED in docs/reliability.md), so that the tool's suite relies on no leniency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.conftest import Api


def _perms(api: Api, app_id: str, headers: dict[str, str]) -> Any:
    return api.client.get(f"/api/users/app%3A{app_id}/permissions", headers=headers)


def test_a_worker_application_may_not_read_its_own_permissions_an_admin_may(api: Api) -> None:
    app_id, worker = api.new_app("worker-only", "WORKER")
    api.grant(app_id, "TASK_DEF", "greetings", "EXECUTE")
    refused = _perms(api, app_id, worker)
    assert refused.status_code == 403
    assert "only an ADMIN may" in refused.json()["message"]
    assert _perms(api, app_id, api.admin).json() == {"grantedAccess": [
        {"target": {"type": "TASK_DEF", "id": "greetings"}, "access": ["EXECUTE"]}]}


@pytest.mark.parametrize("role", ["UNRESTRICTED_WORKER", "METADATA_MANAGER", "WORKFLOW_MANAGER",
                                  "APPLICATION_MANAGER", "ADMIN"])
def test_admin_only_roles_are_refused_to_a_creator_on_its_own_application(api: Api, role: str) -> None:
    _, creator = api.new_app("creator", "APPLICATION_CREATOR")
    made = api.client.post("/api/applications", json={"name": "made"}, headers=creator).json()
    assert api.client.post(f"/api/applications/{made['id']}/roles/WORKER", json={}, headers=creator).status_code \
        == 200
    refused = api.client.post(f"/api/applications/{made['id']}/roles/{role}", json={}, headers=creator)
    assert (refused.status_code, refused.json()["message"]) == (403, f"Only an ADMIN can assign the role {role}")


@pytest.mark.parametrize("role", ["USER_READ_ONLY", "PROMPT_MANAGER"])
def test_roles_of_people_only_are_refused_on_applications_even_to_an_admin(api: Api, role: str) -> None:
    app_id, _ = api.new_app("app")
    refused = api.client.post(f"/api/applications/{app_id}/roles/{role}", json={}, headers=api.admin)
    assert refused.status_code == 400
    assert refused.json()["message"] == f"The role {role} is for users, not applications"


def test_a_tag_grant_is_listed_per_resource_carrying_the_tag_with_its_tag(api: Api) -> None:
    defs = [{"name": "billed", "timeoutSeconds": 60, "tags": [{"key": "team", "value": "billing"}]},
            {"name": "other", "timeoutSeconds": 60}]
    assert api.client.post("/api/metadata/taskdefs", json=defs, headers=api.admin).status_code == 200
    app_id, _ = api.new_app("tagged")
    api.grant(app_id, "TAG", "team:billing", "EXECUTE", "READ")
    api.grant(app_id, "TAG", "team:nobody", "EXECUTE")  # no resource carries it: its raw TAG target
    api.grant(app_id, "TASK_DEF", "billed", "UPDATE")
    assert _perms(api, app_id, api.admin).json()["grantedAccess"] == [
        {"target": {"type": "TAG", "id": "team:nobody"}, "access": ["EXECUTE"]},
        {"target": {"type": "TASK_DEF", "id": "billed"}, "access": ["UPDATE"]},
        {"target": {"type": "TASK_DEF", "id": "billed"}, "access": ["READ", "EXECUTE"], "tag": "team:billing"}]


def test_a_permission_listing_whose_grants_were_all_revoked_keeps_every_access_key(api: Api) -> None:
    app_id, _ = api.new_app("grantee")
    api.grant(app_id, "TASK_DEF", "t", "EXECUTE")
    body = {"subject": {"type": "USER", "id": f"app:{app_id}"}, "target": {"type": "TASK_DEF", "id": "t"},
            "access": ["EXECUTE"]}
    assert api.client.request("DELETE", "/api/auth/authorization", json=body, headers=api.admin).status_code == 200
    assert api.client.get("/api/auth/authorization/TASK_DEF/t", headers=api.admin).json() == {
        "CREATE": [], "READ": [], "UPDATE": [], "DELETE": [], "EXECUTE": []}


def test_keys_per_application_are_capped_with_a_409_that_says_to_delete_one(tmp_path: Path) -> None:
    api = Api(tmp_path / "data", max_keys=2)
    try:
        app_id, _ = api.new_app("capped")  # its first key
        assert api.client.post(f"/api/applications/{app_id}/accessKeys", json={}, headers=api.admin).status_code \
            == 200
        refused = api.client.post(f"/api/applications/{app_id}/accessKeys", json={}, headers=api.admin)
        assert refused.status_code == 409
        assert refused.json()["message"].endswith("the most it may hold (2); delete one first")
    finally:
        api.close()


def test_a_31_digit_version_in_a_path_is_400_not_500(api: Api) -> None:
    response = api.client.delete(f"/api/metadata/workflow/flow/{10**30}", headers=api.admin)
    assert response.status_code == 400
    assert response.json()["validationErrors"][0]["path"] == "version"


@pytest.mark.parametrize("path", ["/api/users?apps=null", "/api/token/userInfo?claims=null",
                                  "/api/metadata/workflow/flow?metadata=null", "/api/users?apps=maybe"])
def test_a_boolean_query_parameter_that_is_no_boolean_is_400(api: Api, path: str) -> None:
    api.client.post("/api/metadata/workflow", headers=api.admin, json={
        "name": "flow", "version": 1, "timeoutSeconds": 60, "tasks": []})
    response = api.client.get(path, headers=api.admin)
    assert response.status_code == 400, response.text
    assert "must be true or false" in response.json()["message"]


@pytest.mark.parametrize(("method", "path", "operation"), [
    ("POST", "/api/workflow/test", "testWorkflow"),
    ("GET", "/api/workflow/search", "search_1"),
    ("DELETE", "/api/metadata/workflow/flow/tags", "deleteWorkflowTag"),
])
def test_an_unimplemented_operation_answers_501_by_its_own_route_not_another(api: Api, method: str, path: str,
                                                                          operation: str) -> None:
    response = api.client.request(method, path, json={}, headers=api.admin)
    assert response.status_code == 501, response.text
    assert response.json()["message"].endswith(f"({operation})")


def test_roles_given_as_one_string_bind_as_a_list_of_one(api: Api) -> None:
    user = api.client.put("/api/users/ann@example.com", json={"name": "Ann", "roles": "USER"}, headers=api.admin)
    assert user.status_code == 200, user.text
    assert [r["name"] for r in user.json()["roles"]] == ["USER"]
    group = api.client.put("/api/groups/ops", json={"description": "ops", "roles": "WORKER"}, headers=api.admin)
    assert group.status_code == 200, group.text
    assert [r["name"] for r in group.json()["roles"]] == ["WORKER"]
