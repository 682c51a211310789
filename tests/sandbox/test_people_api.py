"""Users and groups as Orkes shapes them (in-process): upserts, members, and what members inherit."""

from __future__ import annotations

from typing import Any

from tests.sandbox.conftest import Api

ADA = "ada@example.com"


def _put_user(api: Api, user_id: str, **body: Any) -> Any:
    return api.client.put(f"/api/users/{user_id}", json={"name": "Ada Lovelace", **body}, headers=api.admin)


def _put_group(api: Api, group_id: str, **body: Any) -> Any:
    return api.client.put(f"/api/groups/{group_id}", json={"description": "Payments", **body}, headers=api.admin)


def test_a_user_is_an_upsert_read_back_listed_and_deleted(api: Api) -> None:
    created = _put_user(api, ADA, roles=["USER"])
    assert created.status_code == 200, created.text
    user = created.json()
    assert (user["id"], user["name"], user["applicationUser"], user["groups"]) == (ADA, "Ada Lovelace", False, [])
    assert [r["name"] for r in user["roles"]] == ["USER"]
    assert "CREATE_WORKFLOW_DEF" in {p["name"] for p in user["roles"][0]["permissions"]}
    renamed = _put_user(api, ADA, name="Ada King", roles=["USER_READ_ONLY"]).json()
    assert (renamed["name"], [r["name"] for r in renamed["roles"]], renamed["uuid"]) == \
        ("Ada King", ["USER_READ_ONLY"], user["uuid"])
    assert api.client.get("/api/users/ada%40example.com", headers=api.admin).json()["name"] == "Ada King"
    listed = api.client.get("/api/users", headers=api.admin).json()
    assert [u["id"] for u in listed] == [ADA]
    with_apps = api.client.get("/api/users?apps=true", headers=api.admin).json()
    assert {u["id"] for u in with_apps} == {ADA, f"app:{api.creds.app_id}"}
    deleted = api.client.delete(f"/api/users/{ADA}", headers=api.admin)
    assert deleted.json() == {"message": f"Deleted user '{ADA}'"}
    assert api.client.get(f"/api/users/{ADA}", headers=api.admin).status_code == 404
    assert api.client.delete(f"/api/users/{ADA}", headers=api.admin).status_code == 404


def test_user_upserts_are_validated_as_orkes_does(api: Api) -> None:
    assert _put_user(api, "app:someone").status_code == 400  # 'app:' is reserved for applications
    assert api.client.put(f"/api/users/{ADA}", json={"roles": ["USER"]}, headers=api.admin).status_code == 400
    assert _put_user(api, ADA, roles=["BOSS"]).status_code == 400
    assert _put_user(api, ADA, roles=["USER"], groups=["missing"]).status_code == 404
    both = _put_user(api, ADA, roles=["USER_READ_ONLY", "USER"])
    assert (both.status_code, both.json()["message"]) == (400, "USER_READ_ONLY cannot be combined with other roles")
    assert _put_group(api, "g").status_code == 200
    in_group = _put_user(api, ADA, roles=["USER_READ_ONLY"], groups=["g"])
    assert in_group.status_code == 400
    assert api.client.get("/api/users", headers=api.admin).json() == []  # nothing was stored


def test_groups_are_upserts_with_roles_members_and_a_delete_that_removes_their_grants(api: Api) -> None:
    group = _put_group(api, "payments-team", roles=["USER", "WORKER"]).json()
    assert (group["id"], group["description"], group["defaultAccess"]) == ("payments-team", "Payments", {})
    assert [r["name"] for r in group["roles"]] == ["USER", "WORKER"]
    for user in (ADA, "bob@example.com", "cy@example.com"):
        assert _put_user(api, user, roles=[]).status_code == 200
    assert api.client.post("/api/groups/payments-team/users", json=[ADA, "bob@example.com"],
                           headers=api.admin).status_code == 200
    assert api.client.post("/api/groups/payments-team/users/cy%40example.com", headers=api.admin).status_code == 200
    members = api.client.get("/api/groups/payments-team/users", headers=api.admin).json()
    assert sorted(m["id"] for m in members) == [ADA, "bob@example.com", "cy@example.com"]
    assert [g["id"] for g in members[0]["groups"]] == ["payments-team"]
    api.client.request("DELETE", "/api/groups/payments-team/users", json=["bob@example.com"], headers=api.admin)
    api.client.delete("/api/groups/payments-team/users/cy%40example.com", headers=api.admin)
    assert [m["id"] for m in api.client.get("/api/groups/payments-team/users", headers=api.admin).json()] == [ADA]
    updated = _put_group(api, "payments-team", description="Payments engineers", roles=["USER"]).json()
    assert [r["name"] for r in updated["roles"]] == ["USER"]
    assert [g["id"] for g in api.client.get("/api/groups", headers=api.admin).json()] == ["payments-team"]
    # A user upsert that names no groups keeps them; one that names them sets them.
    assert [g["id"] for g in _put_user(api, ADA, roles=["USER"]).json()["groups"]] == ["payments-team"]
    assert _put_user(api, ADA, roles=["USER"], groups=[]).json()["groups"] == []
    _grant_group(api, "payments-team", "WORKFLOW_DEF", "payments_flow", "READ")
    assert api.client.get("/api/groups/payments-team/permissions", headers=api.admin).json() == {
        "grantedAccess": [{"target": {"type": "WORKFLOW_DEF", "id": "payments_flow"}, "access": ["READ"]}]}
    assert api.client.delete("/api/groups/payments-team", headers=api.admin).json() == {
        "message": "Deleted group 'payments-team'"}
    assert api.client.get("/api/groups/payments-team", headers=api.admin).status_code == 404
    assert api.state.db.all("SELECT * FROM grants WHERE subject_type = 'GROUP'") == []


def test_group_rules_unknown_members_and_default_access(api: Api) -> None:
    assert api.client.put("/api/groups/g", json={"roles": ["USER"]}, headers=api.admin).status_code == 400
    assert _put_group(api, "g", roles=["USER_READ_ONLY", "USER"]).status_code == 400
    assert _put_group(api, "g", defaultAccess={"APPLICATION": ["READ"]}).status_code == 400
    assert _put_group(api, "g", roles=["USER_READ_ONLY"], defaultAccess={"TASK_DEF": ["READ"]}).status_code == 400
    assert _put_group(api, "g", defaultAccess={"TASK_DEF": ["READ", "EXECUTE"]}).json()["defaultAccess"] == {
        "TASK_DEF": ["EXECUTE", "READ"]}
    assert api.client.post("/api/groups/g/users", json=["nobody@example.com"], headers=api.admin).status_code == 404
    assert api.client.post("/api/groups/nope/users/x", headers=api.admin).status_code == 404
    _put_user(api, ADA, roles=["USER_READ_ONLY"])
    read_only = api.client.post(f"/api/groups/g/users/{ADA}", headers=api.admin)
    assert read_only.status_code == 400
    assert "USER_READ_ONLY" in read_only.json()["message"]


def test_only_an_admin_manages_or_reads_people_and_groups(api: Api) -> None:
    _, manager = api.new_app("manager", "APPLICATION_MANAGER", "METADATA_MANAGER")
    _put_user(api, ADA)
    _put_group(api, "g")
    for method, path, body in (("PUT", f"/api/users/{ADA}", {"name": "x"}), ("DELETE", f"/api/users/{ADA}", None),
                               ("GET", f"/api/users/{ADA}", None), ("GET", "/api/users", None),
                               ("PUT", "/api/groups/g", {"description": "x"}), ("GET", "/api/groups", None),
                               ("GET", "/api/groups/g/users", None), ("POST", f"/api/groups/g/users/{ADA}", None),
                               ("GET", "/api/groups/g/permissions", None), ("DELETE", "/api/groups/g", None)):
        response = api.client.request(method, path, json=body, headers=manager)
        assert response.status_code == 403, (method, path)


def _grant_group(api: Api, group: str, target_type: str, target_id: str, *access: str) -> None:
    response = api.client.post("/api/auth/authorization", headers=api.admin, json={
        "subject": {"type": "GROUP", "id": group}, "target": {"type": target_type, "id": target_id},
        "access": list(access)})
    assert response.status_code == 200, response.text


def test_members_inherit_the_groups_grants_and_roles_and_lose_them_when_they_leave(api: Api) -> None:
    assert api.client.post("/api/metadata/taskdefs", json=[{"name": "charge", "timeoutSeconds": 60}],
                           headers=api.admin).status_code == 200
    _put_group(api, "payments-team", roles=["WORKER"])
    _grant_group(api, "payments-team", "TASK_DEF", "charge", "EXECUTE")
    _put_user(api, ADA, roles=[])
    check = f"/api/users/{ADA}/checkPermissions?type=TASK_DEF&id=charge"
    assert api.client.get(check, headers=api.admin).json()["EXECUTE"] is False
    app_id, worker = api.new_app("payments-worker")  # no role, no grant of its own
    poll = "/api/tasks/poll/batch/charge?count=1&timeout=0"
    assert api.client.get(poll, headers=worker).status_code == 403
    for member in (ADA, f"app:{app_id}"):
        assert api.client.post(f"/api/groups/payments-team/users/{member}", headers=api.admin).status_code == 200
    assert api.client.get(check, headers=api.admin).json() == {
        "READ": False, "EXECUTE": True, "DELETE": False, "CREATE": False, "UPDATE": False}
    # The application's next request holds the group's WORKER role and EXECUTE grant: it may poll.
    assert (response := api.client.get(poll, headers=worker)).status_code == 200, response.text
    app_user = api.client.get(f"/api/users/app%3A{app_id}", headers=api.admin).json()
    assert ([g["id"] for g in app_user["groups"]], app_user["roles"]) == (["payments-team"], [])
    api.client.delete(f"/api/groups/payments-team/users/app%3A{app_id}", headers=api.admin)
    assert api.client.get(poll, headers=worker).status_code == 403


def test_deleting_an_application_removes_it_from_its_groups(api: Api) -> None:
    _put_group(api, "g")
    app_id, _ = api.new_app("member")
    api.client.post(f"/api/groups/g/users/app%3A{app_id}", headers=api.admin)
    api.client.delete(f"/api/applications/{app_id}", headers=api.admin)
    assert api.client.get("/api/groups/g/users", headers=api.admin).json() == []
