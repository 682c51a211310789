"""``/api/roles`` (in-process): system and custom roles as conductor-python's RoleResourceApi reads them,
the rules the docs give (admin only, uppercase names, known permissions, the two implicit ones) and the
stricter choices where they are silent (409 on a name taken or a role still held, 400 on a system role)."""

from __future__ import annotations

from typing import Any

import pytest

from orkes_provision.sandbox.roles import IMPLICIT
from tests.sandbox.conftest import Api

ADA = "ada@example.com"


def _create(api: Api, name: str, *permissions: str, headers: dict[str, str] | None = None) -> Any:
    return api.client.post("/api/roles", json={"name": name, "permissions": list(permissions)},
                           headers=headers or api.admin)


def _names(role: dict[str, Any]) -> list[str]:
    return [p["name"] for p in role["permissions"]]


def test_a_custom_role_is_created_read_listed_updated_and_deleted(api: Api) -> None:
    created = _create(api, "WORKFLOW_OPERATOR", "READ_WORKFLOW_DEF", "EXECUTE_WORKFLOW_DEF")
    assert created.status_code == 200, created.text
    assert created.json()["name"] == "WORKFLOW_OPERATOR"
    assert _names(created.json()) == sorted({"READ_WORKFLOW_DEF", "EXECUTE_WORKFLOW_DEF", *IMPLICIT})
    assert api.client.get("/api/roles/WORKFLOW_OPERATOR", headers=api.admin).json() == created.json()
    assert [r["name"] for r in api.client.get("/api/roles/custom", headers=api.admin).json()] == ["WORKFLOW_OPERATOR"]
    every = [r["name"] for r in api.client.get("/api/roles", headers=api.admin).json()]
    assert "WORKFLOW_OPERATOR" in every and "ADMIN" in every and "WORKER" in every

    updated = api.client.put("/api/roles/WORKFLOW_OPERATOR", json={"name": "WORKFLOW_OPERATOR",
                                                                    "permissions": ["READ_TASK_DEF"]},
                             headers=api.admin)
    assert updated.status_code == 200, updated.text
    assert _names(updated.json()) == sorted({"READ_TASK_DEF", *IMPLICIT})

    assert api.client.delete("/api/roles/WORKFLOW_OPERATOR", headers=api.admin).status_code == 200
    assert api.client.get("/api/roles/WORKFLOW_OPERATOR", headers=api.admin).status_code == 404
    assert api.client.get("/api/roles/custom", headers=api.admin).json() == []


def test_system_roles_are_a_map_by_name_and_cannot_be_changed_or_deleted(api: Api) -> None:
    system = api.client.get("/api/roles/system", headers=api.admin).json()
    assert {"ADMIN", "USER", "WORKER", "METADATA_MANAGER", "WORKFLOW_MANAGER"} <= set(system)
    assert system["METADATA_API"] == {"name": "METADATA_API", "permissions": [
        {"name": "CREATE_TASK_DEF"}, {"name": "CREATE_WORKFLOW_DEF"}, {"name": "CREATE_USER_FORM_TEMPLATE"}]}
    changed = api.client.put("/api/roles/USER", json={"permissions": ["READ_TASK_DEF"]}, headers=api.admin)
    assert (changed.status_code, changed.json()["message"]) == (400, "USER is a system role and cannot be changed")
    assert api.client.delete("/api/roles/ADMIN", headers=api.admin).status_code == 400
    assert _create(api, "WORKER").status_code == 409


def test_the_permission_catalogue_lists_resource_permissions_and_refuses_others(api: Api) -> None:
    catalogue = api.client.get("/api/roles/permissions", headers=api.admin).json()
    assert "READ_WORKFLOW_DEF" in catalogue["WORKFLOW_DEF"]["permissions"]
    assert "EXECUTE_TASK_DEF" in catalogue["TASK_DEF"]["permissions"]
    refused = _create(api, "OPERATOR", "READ_WORKFLOW_DEF", "workflow:read")
    assert refused.status_code == 400
    assert refused.json()["validationErrors"][0]["path"] == "permissions[1]"
    assert api.client.get("/api/roles/OPERATOR", headers=api.admin).status_code == 404


@pytest.mark.parametrize("name", ["operator", "Workflow_Operator", "WORKFLOW-OPERATOR", "_X", "X__Y", "", None])
def test_a_role_name_must_be_uppercase_words_joined_by_underscores(api: Api, name: Any) -> None:
    refused = _create(api, name)
    assert refused.status_code == 400
    assert refused.json()["validationErrors"][0]["path"] == "name"


def test_a_name_taken_is_409_and_a_rename_through_put_is_400(api: Api) -> None:
    assert _create(api, "OPERATOR", "READ_TASK_DEF").status_code == 200
    assert _create(api, "OPERATOR", "READ_TASK_DEF").status_code == 409
    renamed = api.client.put("/api/roles/OPERATOR", json={"name": "OTHER", "permissions": []}, headers=api.admin)
    assert renamed.status_code == 400
    assert api.client.put("/api/roles/NOPE", json={"permissions": []}, headers=api.admin).status_code == 404


def test_every_roles_endpoint_is_refused_to_a_non_admin(api: Api) -> None:
    _, creator = api.new_app("creator", "APPLICATION_CREATOR", "METADATA_API")
    assert _create(api, "OPERATOR", "READ_TASK_DEF").status_code == 200
    calls = [("GET", "/api/roles"), ("GET", "/api/roles/system"), ("GET", "/api/roles/custom"),
             ("GET", "/api/roles/permissions"), ("GET", "/api/roles/OPERATOR"), ("DELETE", "/api/roles/OPERATOR")]
    for method, path in calls:
        answer = api.client.request(method, path, headers=creator)
        assert answer.status_code == 403, (method, path)
    assert _create(api, "MINE", "READ_TASK_DEF", headers=creator).status_code == 403
    assert api.client.put("/api/roles/OPERATOR", json={"permissions": []}, headers=creator).status_code == 403
    assert api.client.get("/api/roles/OPERATOR", headers=api.admin).status_code == 200


def test_users_and_groups_hold_a_custom_role_that_exists_and_it_cannot_be_deleted_while_held(api: Api) -> None:
    unknown = api.client.put(f"/api/users/{ADA}", json={"name": "Ada", "roles": ["OPERATOR"]}, headers=api.admin)
    assert (unknown.status_code, unknown.json()["validationErrors"][0]["path"]) == (400, "body.roles")
    assert _create(api, "OPERATOR", "READ_TASK_DEF").status_code == 200
    user = api.client.put(f"/api/users/{ADA}", json={"name": "Ada", "roles": ["OPERATOR", "USER"]},
                          headers=api.admin).json()
    assert {r["name"]: _names(r) for r in user["roles"]}["OPERATOR"] == sorted({"READ_TASK_DEF", *IMPLICIT})
    group = api.client.put("/api/groups/ops", json={"description": "Ops", "roles": ["OPERATOR"]}, headers=api.admin)
    assert [r["name"] for r in group.json()["roles"]] == ["OPERATOR"]

    held = api.client.delete("/api/roles/OPERATOR", headers=api.admin)
    assert held.status_code == 409
    assert f"user {ADA}" in held.json()["message"] and "group ops" in held.json()["message"]
    api.client.put(f"/api/users/{ADA}", json={"name": "Ada", "roles": ["USER"]}, headers=api.admin)
    api.client.put("/api/groups/ops", json={"description": "Ops", "roles": []}, headers=api.admin)
    assert api.client.delete("/api/roles/OPERATOR", headers=api.admin).status_code == 200


def test_only_an_admin_gives_an_application_a_custom_role(api: Api) -> None:
    assert _create(api, "OPERATOR", "READ_TASK_DEF").status_code == 200
    _, creator = api.new_app("creator", "APPLICATION_CREATOR")
    made = api.client.post("/api/applications", json={"name": "made"}, headers=creator).json()
    refused = api.client.post(f"/api/applications/{made['id']}/roles/OPERATOR", json={}, headers=creator)
    assert refused.status_code == 403
    given = api.client.post(f"/api/applications/{made['id']}/roles/OPERATOR", json={}, headers=api.admin)
    assert given.status_code == 200
    assert "OPERATOR" in [r["name"] for r in given.json()["roles"]]
