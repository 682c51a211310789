"""Tokens, applications, keys, roles, users and grants, as Orkes shapes them (in-process)."""

from __future__ import annotations

import json

import jwt

from tests.sandbox.conftest import Api


def _error_shape(body: dict[str, object], status: int) -> None:
    assert body["status"] == status
    assert isinstance(body["message"], str)
    assert body["message"]
    assert body["retryable"] is False
    assert isinstance(body["instance"], str)


def test_token_is_a_jwt_with_sub_iat_exp_and_key_id(api: Api) -> None:
    token = api.token(api.creds.key_id, api.creds.secret.get_secret_value())
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == f"app:{api.creds.app_id}"
    assert claims["keyId"] == api.creds.key_id
    assert claims["exp"] - claims["iat"] == 3600
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_token_exchange_rejects_wrong_secret_unknown_key_and_inactive_key(api: Api) -> None:
    app_id, _ = api.new_app("w", "WORKER")
    key = api.client.post(f"/api/applications/{app_id}/accessKeys", headers=api.admin).json()
    wrong = api.client.post("/api/token", json={"keyId": key["id"], "keySecret": key["secret"] + "x"})
    unknown = api.client.post("/api/token", json={"keyId": "nope", "keySecret": key["secret"]})
    api.client.post(f"/api/applications/{app_id}/accessKeys/{key['id']}/status", json={}, headers=api.admin)
    inactive = api.client.post("/api/token", json={"keyId": key["id"], "keySecret": key["secret"]})
    for response in (wrong, unknown, inactive):
        assert response.status_code == 401
        body = response.json()
        assert body["message"] == "Invalid access key or secret"
        assert body["error"] == "INVALID_CREDENTIALS"
        assert isinstance(body["timestamp"], int)
        assert key["secret"] not in response.text


def test_missing_garbage_and_expired_tokens_get_the_auth_filter_401s(api: Api) -> None:
    missing = api.client.get("/api/applications")
    garbage = api.client.get("/api/applications", headers={"X-Authorization": "not.a.jwt"})
    expired_token = api.state.tokens.issue(f"app:{api.creds.app_id}", api.creds.key_id, ttl_seconds=-5)
    expired = api.client.get("/api/applications", headers={"X-Authorization": expired_token})
    assert (missing.status_code, missing.json()["error"]) == (401, "INVALID_TOKEN")
    assert missing.json()["message"] == "Token cannot be null or empty"
    assert (garbage.status_code, garbage.json()["error"]) == (401, "INVALID_TOKEN")
    assert (expired.status_code, expired.json()["error"]) == (401, "EXPIRED_TOKEN")


def test_a_deactivated_or_deleted_key_revokes_its_tokens_at_once(api: Api) -> None:
    app_id, headers = api.new_app("w", "WORKER")
    assert api.client.get("/api/token/userInfo", headers=headers).status_code == 200
    key_id = jwt.decode(headers["X-Authorization"], options={"verify_signature": False})["keyId"]
    api.client.post(f"/api/applications/{app_id}/accessKeys/{key_id}/status", headers=api.admin)
    after_toggle = api.client.get("/api/token/userInfo", headers=headers)
    assert (after_toggle.status_code, after_toggle.json()["error"]) == (401, "INVALID_TOKEN")
    api.client.post(f"/api/applications/{app_id}/accessKeys/{key_id}/status", headers=api.admin)
    assert api.client.get("/api/token/userInfo", headers=headers).status_code == 200
    api.client.delete(f"/api/applications/{app_id}/accessKeys/{key_id}", headers=api.admin)
    assert api.client.get("/api/token/userInfo", headers=headers).status_code == 401


def test_user_info_names_the_caller_and_its_roles(api: Api) -> None:
    app_id, headers = api.new_app("worker-app", "WORKER")
    body = api.client.get("/api/token/userInfo", headers=headers).json()
    assert body["id"] == f"app:{app_id}"
    assert body["name"] == "worker-app"
    assert [r["name"] for r in body["roles"]] == ["WORKER"]
    with_claims = api.client.get("/api/token/userInfo?claims=true", headers=headers).json()
    assert with_claims["claims"]["sub"] == f"app:{app_id}"


def test_application_names_are_not_unique_and_list_carries_tags(api: Api) -> None:
    first = api.client.post("/api/applications", json={"name": "dup"}, headers=api.admin).json()
    second = api.client.post("/api/applications", json={"name": "dup"}, headers=api.admin).json()
    assert first["id"] != second["id"]
    assert first["createdBy"] == f"app:{api.creds.app_id}"
    tagged = api.client.put(f"/api/applications/{first['id']}/tags", headers=api.admin,
                            json=[{"key": "team", "value": "a"}])
    assert tagged.status_code == 200
    listed = api.client.get("/api/applications", headers=api.admin).json()
    dups = [a for a in listed if a["name"] == "dup"]
    assert len(dups) == 2
    first_tags = next(a for a in dups if a["id"] == first["id"])["tags"]
    assert first_tags == [{"key": "team", "value": "a", "type": "METADATA"}]
    api.client.put(f"/api/applications/{first['id']}/tags", headers=api.admin, json=[{"key": "team", "value": "b"}])
    assert api.client.get(f"/api/applications/{first['id']}/tags", headers=api.admin).json()[0]["value"] == "b"
    api.client.request("DELETE", f"/api/applications/{first['id']}/tags", headers=api.admin,
                       json=[{"key": "team", "value": "b"}])
    assert api.client.get(f"/api/applications/{first['id']}/tags", headers=api.admin).json() == []


def test_get_update_delete_and_404s_name_the_id(api: Api) -> None:
    created = api.client.post("/api/applications", json={"name": "one"}, headers=api.admin).json()
    app_id = created["id"]
    updated = api.client.put(f"/api/applications/{app_id}", json={"name": "two"}, headers=api.admin).json()
    assert updated["name"] == "two"
    assert updated["updateTime"] >= created["updateTime"]
    assert api.client.get(f"/api/applications/{app_id}", headers=api.admin).json()["name"] == "two"
    # The Python SDK sends {} with Content-Type on bodiless DELETEs.
    deleted = api.client.request("DELETE", f"/api/applications/{app_id}", headers=api.admin, json={})
    assert deleted.json() == {"message": f"Deleted Application '{app_id}'"}
    for method in ("GET", "PUT", "DELETE"):
        missing = api.client.request(method, f"/api/applications/{app_id}", headers=api.admin, json={"name": "x"})
        assert missing.status_code == 404
        _error_shape(missing.json(), 404)
        assert app_id in missing.json()["message"]


def test_blank_application_name_is_a_400_with_validation_errors(api: Api) -> None:
    response = api.client.post("/api/applications", json={"name": " "}, headers=api.admin)
    assert response.status_code == 400
    body = response.json()
    _error_shape(body, 400)
    assert body["validationErrors"][0]["path"] == "name"


def test_access_keys_secret_once_list_without_secret_toggle_delete(api: Api) -> None:
    app_id, _ = api.new_app("keys")
    created = api.client.post(f"/api/applications/{app_id}/accessKeys", headers=api.admin,
                              content=b"", ).json()
    assert set(created) == {"id", "secret"}
    listed = api.client.get(f"/api/applications/{app_id}/accessKeys", headers=api.admin)
    assert created["secret"] not in listed.text
    entry = next(k for k in listed.json() if k["id"] == created["id"])
    assert set(entry) == {"id", "createdAt", "status"}
    assert entry["status"] == "ACTIVE"
    toggled = api.client.post(f"/api/applications/{app_id}/accessKeys/{created['id']}/status", json={},
                              headers=api.admin).json()
    assert toggled == {"id": created["id"], "createdAt": entry["createdAt"], "status": "INACTIVE"}
    by_key = api.client.get(f"/api/applications/key/{created['id']}", headers=api.admin).json()
    assert by_key["id"] == app_id
    deleted = api.client.delete(f"/api/applications/{app_id}/accessKeys/{created['id']}", headers=api.admin)
    assert deleted.json() == {"message": f"Deleted Access key '{created['id']}'"}
    assert api.client.get(f"/api/applications/key/{created['id']}", headers=api.admin).status_code == 404
    assert api.client.post(f"/api/applications/{app_id}/accessKeys/nope/status", headers=api.admin).status_code == 404
    assert api.client.post("/api/applications/nope/accessKeys", headers=api.admin).status_code == 404


def test_roles_live_on_the_app_user_read_through_an_encoded_path(api: Api) -> None:
    app_id, _ = api.new_app("roles")
    added = api.client.post(f"/api/applications/{app_id}/roles/WORKER", json={}, headers=api.admin)
    assert added.status_code == 200
    user = api.client.get(f"/api/users/app%3A{app_id}", headers=api.admin).json()
    assert user["id"] == f"app:{app_id}"
    assert user["applicationUser"] is True
    assert [r["name"] for r in user["roles"]] == ["WORKER"]
    api.client.delete(f"/api/applications/{app_id}/roles/WORKER", headers=api.admin)
    assert api.client.get(f"/api/users/app%3A{app_id}", headers=api.admin).json()["roles"] == []
    assert api.client.get("/api/users/app%3Anope", headers=api.admin).status_code == 404


def test_unknown_role_is_400_and_admin_only_roles_need_an_admin(api: Api) -> None:
    _, creator = api.new_app("creator", "APPLICATION_CREATOR")
    own = api.client.post("/api/applications", json={"name": "mine"}, headers=creator).json()
    unknown = api.client.post(f"/api/applications/{own['id']}/roles/SUPERUSER", headers=api.admin)
    assert unknown.status_code == 400
    assert unknown.json()["validationErrors"][0]["invalidValue"] == "SUPERUSER"
    assert api.client.post(f"/api/applications/{own['id']}/roles/WORKER", headers=creator).status_code == 200
    for role in ("UNRESTRICTED_WORKER", "ADMIN", "METADATA_MANAGER"):
        denied = api.client.post(f"/api/applications/{own['id']}/roles/{role}", headers=creator)
        assert denied.status_code == 403
        _error_shape(denied.json(), 403)
    assert api.client.post(f"/api/applications/{own['id']}/roles/UNRESTRICTED_WORKER",
                           headers=api.admin).status_code == 200


def test_a_creator_manages_only_what_it_created(api: Api) -> None:
    _, creator = api.new_app("creator", "APPLICATION_CREATOR")
    other = api.client.post("/api/applications", json={"name": "admins"}, headers=api.admin).json()
    own = api.client.post("/api/applications", json={"name": "mine"}, headers=creator).json()
    listed = api.client.get("/api/applications", headers=creator).json()
    assert [a["id"] for a in listed] == [own["id"]]
    assert api.client.get(f"/api/applications/{other['id']}", headers=creator).status_code == 403
    assert api.client.post(f"/api/applications/{other['id']}/accessKeys", headers=creator).status_code == 403
    assert api.client.post(f"/api/applications/{own['id']}/accessKeys", headers=creator).status_code == 200


def test_a_caller_without_roles_cannot_create_applications(api: Api) -> None:
    _, plain = api.new_app("plain")
    denied = api.client.post("/api/applications", json={"name": "x"}, headers=plain)
    assert denied.status_code == 403
    _error_shape(denied.json(), 403)


def test_grants_accept_any_case_answer_uppercase_and_read_back_both_ways(api: Api) -> None:
    app_id, _ = api.new_app("grantee")
    body = {"subject": {"type": "user", "id": f"app:{app_id}"}, "target": {"type": "task_def", "id": "greetings"},
            "access": ["execute", "READ"]}
    assert api.client.post("/api/auth/authorization", json=body, headers=api.admin).json() == {
        "message": "Granted permission"}
    by_access = api.client.get("/api/auth/authorization/TASK_DEF/greetings", headers=api.admin).json()
    assert by_access == {"CREATE": [], "READ": [{"type": "USER", "id": f"app:{app_id}"}], "UPDATE": [],
                         "DELETE": [], "EXECUTE": [{"type": "USER", "id": f"app:{app_id}"}]}
    by_subject = api.client.get("/api/auth/authorization/TASK_DEF/greetings?groupBy=subject", headers=api.admin)
    assert by_subject.json() == {f"USER:app:{app_id}": ["EXECUTE", "READ"]}
    permissions = api.client.get(f"/api/users/app%3A{app_id}/permissions", headers=api.admin).json()
    assert permissions == {"grantedAccess": [{"target": {"type": "TASK_DEF", "id": "greetings"},
                                              "access": ["READ", "EXECUTE"]}]}
    check = api.client.get(f"/api/users/app%3A{app_id}/checkPermissions?type=TASK_DEF&id=greetings",
                           headers=api.admin).json()
    assert check["EXECUTE"] is True
    assert check["DELETE"] is False
    grants = api.client.get(f"/api/auth/subjects/USER/app%3A{app_id}/grants", headers=api.admin).json()
    assert grants == permissions["grantedAccess"]
    # DELETE carries the same JSON body.
    revoked = api.client.request("DELETE", "/api/auth/authorization", json=body, headers=api.admin)
    assert revoked.json() == {"message": "Removed permission"}
    assert api.client.get(f"/api/users/app%3A{app_id}/permissions", headers=api.admin).json() == {"grantedAccess": []}


def test_grant_validation_and_who_may_grant(api: Api) -> None:
    _, plain = api.new_app("plain")
    bad = api.client.post("/api/auth/authorization", headers=api.admin, json={
        "subject": {"type": "TAG", "id": "x"}, "target": {"type": "TASK_DEF", "id": "t"}, "access": ["EXECUTE"]})
    assert bad.status_code == 400
    assert bad.json()["validationErrors"][0]["path"] == "subject.type"
    denied = api.client.post("/api/auth/authorization", headers=plain, json={
        "subject": {"type": "USER", "id": "app:x"}, "target": {"type": "TASK_DEF", "id": "t"}, "access": ["EXECUTE"]})
    assert denied.status_code == 403


def test_requests_log_has_one_line_per_request_without_tokens_or_secrets(api: Api) -> None:
    app_id, headers = api.new_app("logged", "WORKER")
    api.client.get("/api/token/userInfo?claims=true", headers=headers)
    lines = [json.loads(line) for line in (api.config.data_dir / "requests.log").read_text().splitlines()]
    last = lines[-1]
    assert {"time", "method", "path", "status", "caller", "durationMs"} <= set(last)
    assert (last["method"], last["path"], last["status"], last["caller"]) == (
        "GET", "/api/token/userInfo", 200, f"app:{app_id}")
    token_lines = [line for line in lines if line["path"] == "/api/token"]
    assert token_lines
    assert all(line["method"] == "POST" for line in token_lines)
    text = (api.config.data_dir / "requests.log").read_text()
    assert headers["X-Authorization"] not in text
    assert api.creds.secret.get_secret_value() not in text
    assert "claims" not in text


def test_fault_plan_is_admin_only_and_validated(api: Api) -> None:
    _, plain = api.new_app("plain")
    assert api.client.post("/api/sandbox/faults", json={"path": ".*"}, headers=plain).status_code == 403
    bad = api.client.post("/api/sandbox/faults", json={"path": "(", "action": "status"}, headers=api.admin)
    assert bad.status_code == 400
    assert bad.json()["validationErrors"][0]["path"] == "path"
    added = api.client.post("/api/sandbox/faults", headers=api.admin,
                            json={"method": "get", "path": "^/api/applications$", "count": 2, "status": 429,
                                  "retryAfter": 7}).json()
    assert added["method"] == "GET"
    assert added["count"] == 2
    first = api.client.get("/api/applications", headers=api.admin)
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "7"
    _error_shape({**first.json(), "retryable": False}, 429)
    assert api.client.get("/health").status_code == 200  # faults never match /health
    assert api.client.get("/api/sandbox/faults", headers=api.admin).json()[0]["count"] == 1
    assert api.client.get("/api/applications", headers=api.admin).status_code == 429
    assert api.client.get("/api/applications", headers=api.admin).status_code == 200
    api.client.post("/api/sandbox/faults", headers=api.admin, json={"path": ".*", "count": 5})
    assert api.client.delete("/api/sandbox/faults", headers=api.admin).status_code == 200
    assert api.client.get("/api/sandbox/faults", headers=api.admin).json() == []


def test_a_status_fault_runs_no_handler(api: Api) -> None:
    api.client.post("/api/sandbox/faults", headers=api.admin,
                    json={"method": "POST", "path": "^/api/applications$", "status": 503})
    failed = api.client.post("/api/applications", json={"name": "ghost"}, headers=api.admin)
    assert failed.status_code == 503
    names = [a["name"] for a in api.client.get("/api/applications", headers=api.admin).json()]
    assert "ghost" not in names


def test_unknown_endpoints_and_methods_answer_orkes_shaped_errors(api: Api) -> None:
    missing = api.client.get("/api/nothing/here", headers=api.admin)
    assert missing.status_code == 404
    _error_shape(missing.json(), 404)
    wrong_method = api.client.patch("/api/applications", headers=api.admin)
    assert wrong_method.status_code == 405
    _error_shape(wrong_method.json(), 405)
