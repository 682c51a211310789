"""conductor-python 2.0.0's authorization client, unmodified, manages users and groups on the sandbox.

Every request the SDK sends and every answer it gets is validated against the Orkes OpenAPI schemas.
"""

from __future__ import annotations

import pytest
from conductor.client.http.models.create_or_update_application_request import CreateOrUpdateApplicationRequest
from conductor.client.http.models.create_or_update_role_request import CreateOrUpdateRoleRequest
from conductor.client.http.models.subject_ref import SubjectRef, SubjectType
from conductor.client.http.models.target_ref import TargetRef, TargetType
from conductor.client.http.models.upsert_group_request import UpsertGroupRequest
from conductor.client.http.models.upsert_user_request import UpsertUserRequest
from conductor.client.http.rest import ApiException, AuthorizationException
from conductor.client.orkes.models.access_type import AccessType

from orkes_provision.sandbox.harness import SandboxProcess
from tests.sandbox.conformance.schemas import validate
from tests.sandbox.conformance.sdk_support import Recorder, sdk_clients

pytestmark = pytest.mark.slow

ADA, BOB = "ada@example.com", "bob@example.com"


def test_sdk_users_and_groups_conform(sandbox: SandboxProcess) -> None:
    recorder = Recorder()
    auth = sdk_clients(sandbox.url, sandbox.admin_key_id, sandbox.admin_secret.get_secret_value(),
                       recorder).get_authorization_client()
    ada = auth.upsert_user(UpsertUserRequest(name="Ada Lovelace", roles=["USER"]), ADA)
    assert (ada.id, ada.name, [r.name for r in ada.roles], ada.groups) == (ADA, "Ada Lovelace", ["USER"], [])
    auth.upsert_user(UpsertUserRequest(name="Bob", roles=["WORKER"]), BOB)
    assert auth.get_user(BOB).name == "Bob"
    assert {u.id for u in auth.list_users()} == {ADA, BOB}
    with_apps = auth.list_users(apps=True)
    assert {u.id for u in with_apps if not u.application_user} == {ADA, BOB}
    assert any(u.id.startswith("app:") and u.name == "sandbox-admin" for u in with_apps)

    group = auth.upsert_group(UpsertGroupRequest(description="Payments engineers", roles=["USER"]), "payments-team")
    assert (group.id, group.description, [r.name for r in group.roles]) == \
        ("payments-team", "Payments engineers", ["USER"])
    assert [g.id for g in auth.list_groups()] == ["payments-team"]
    assert auth.get_group("payments-team").description == "Payments engineers"
    auth.add_user_to_group("payments-team", ADA)
    auth.add_users_to_group("payments-team", [BOB])
    assert sorted(u.id for u in auth.get_users_in_group("payments-team")) == [ADA, BOB]
    assert [g.id for g in auth.get_user(ADA).groups] == ["payments-team"]

    auth.grant_permissions(SubjectRef(SubjectType.GROUP, "payments-team"), TargetRef(TargetType.TASK_DEF, "charge"),
                           [AccessType.EXECUTE])
    [granted] = auth.get_granted_permissions_for_group("payments-team")
    assert (granted.target.type, granted.target.id, granted.access) == ("TASK_DEF", "charge", ["EXECUTE"])
    assert auth.check_permissions(ADA, "TASK_DEF", "charge")["EXECUTE"] is True
    holders = auth.get_permissions(TargetRef(TargetType.TASK_DEF, "charge"))
    assert [(s.type, s.id) for s in holders["EXECUTE"]] == [("GROUP", "payments-team")]

    auth.remove_user_from_group("payments-team", ADA)
    auth.remove_users_from_group("payments-team", [BOB])
    assert auth.get_users_in_group("payments-team") == []
    assert auth.check_permissions(ADA, "TASK_DEF", "charge")["EXECUTE"] is False
    auth.delete_group("payments-team")
    auth.delete_user(ADA)
    with pytest.raises(ApiException) as missing:
        auth.get_user(ADA)
    assert missing.value.status == 404
    assert auth.list_groups() == []

    checked = {validate(exchange) for exchange in recorder.exchanges}
    assert checked >= {"upsertUser", "getUser", "listUsers", "deleteUser", "upsertGroup", "getGroup", "listGroups",
                       "deleteGroup", "addUserToGroup", "addUsersToGroup", "getUsersInGroup", "removeUserFromGroup",
                       "removeUsersFromGroup", "getGrantedPermissions_1", "checkPermissions", "grantPermissions"}


def test_sdk_sees_the_orkes_refusals_for_users_and_groups(sandbox: SandboxProcess) -> None:
    admin = sdk_clients(sandbox.url, sandbox.admin_key_id, sandbox.admin_secret.get_secret_value())
    auth = admin.get_authorization_client()
    with pytest.raises(ApiException) as reserved:
        auth.upsert_user(UpsertUserRequest(name="not a person", roles=["USER"]), "app:someone")
    assert reserved.value.status == 400
    with pytest.raises(ApiException) as unknown_member:
        auth.add_user_to_group("nobody-group", ADA)
    assert unknown_member.value.status == 404
    app = auth.create_application(CreateOrUpdateApplicationRequest("not-an-admin"))
    auth.add_role_to_application_user(app.id, "METADATA_API")
    key = auth.create_access_key(app.id)
    plain = sdk_clients(sandbox.url, key.id, key.secret).get_authorization_client()
    with pytest.raises(AuthorizationException) as denied:
        plain.upsert_group(UpsertGroupRequest(description="x", roles=["USER"]), "g")
    assert denied.value.status == 403


def test_sdk_custom_roles_conform(sandbox: SandboxProcess) -> None:
    """conductor-python 2.0.0's role client (``RoleResourceApi``) reads what ``/api/roles`` answers."""
    auth = sdk_clients(sandbox.url, sandbox.admin_key_id, sandbox.admin_secret.get_secret_value()) \
        .get_authorization_client()
    system = auth.list_system_roles()
    assert {"USER", "ADMIN", "METADATA_MANAGER", "WORKFLOW_MANAGER", "WORKER"} <= set(system)
    permissions = auth.list_available_permissions()
    assert "READ_WORKFLOW_DEF" in permissions["WORKFLOW_DEF"]["permissions"]

    created = auth.create_role(CreateOrUpdateRoleRequest(name="SDK_OPERATOR", permissions=["READ_WORKFLOW_DEF"]))
    assert created["name"] == "SDK_OPERATOR"
    assert "READ_WORKFLOW_DEF" in [p["name"] for p in auth.get_role("SDK_OPERATOR")["permissions"]]
    auth.update_role("SDK_OPERATOR", CreateOrUpdateRoleRequest(
        name="SDK_OPERATOR", permissions=["READ_WORKFLOW_DEF", "EXECUTE_WORKFLOW_DEF"]))
    [custom] = auth.list_custom_roles()
    assert (custom.name, {"READ_WORKFLOW_DEF", "EXECUTE_WORKFLOW_DEF"} <= {p.name for p in custom.permissions}) == \
        ("SDK_OPERATOR", True)
    assert "SDK_OPERATOR" in {r.name for r in auth.list_all_roles()}
    with pytest.raises(ApiException) as refused:
        auth.create_role(CreateOrUpdateRoleRequest(name="SDK_BAD", permissions=["workflow:read"]))
    assert refused.value.status == 400
    auth.delete_role("SDK_OPERATOR")
    assert auth.list_custom_roles() == []
