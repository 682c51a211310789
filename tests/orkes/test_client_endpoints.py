"""Each client method sends the documented method, path and body, and returns the model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from orkes_provision.errors import NotFound
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import (
    AccessKey,
    Application,
    AppUser,
    CreatedKey,
    GrantedAccess,
    Group,
    Role,
    Subject,
    Tag,
    Target,
    TaskDef,
    User,
    app_subject,
)
from tests.orkes.helpers import FakeOrkes, make_client

APP = {"id": "a1", "name": "greetings-worker", "createdBy": "admin@x", "createTime": 1, "updateTime": 2,
       "tags": [{"key": "managed-by", "value": "orkes-provision"}]}
SUBJECT = app_subject("a1")
TARGET = Target(type="TASK_DEF", id="greetings")

# (name, call, method, raw path, query, request body, reply JSON, check of the result)
Case = tuple[str, Callable[[OrkesClient], Any], str, str, str, Any, Any, Callable[[Any], bool]]
CASES: list[Case] = [
    ("user_info", lambda c: c.user_info(), "GET", "/api/token/userInfo", "", None,
     {"id": "app:admin", "roles": []}, lambda r: r["id"] == "app:admin"),
    ("list_applications", lambda c: c.list_applications(), "GET", "/api/applications", "", None, [APP],
     lambda r: r == [Application.model_validate(APP)] and r[0].tags == [Tag(key="managed-by",
                                                                             value="orkes-provision")]),
    ("get_application", lambda c: c.get_application("a1"), "GET", "/api/applications/a1", "", None, APP,
     lambda r: r.created_by == "admin@x" and r.update_time == 2),
    ("create_application", lambda c: c.create_application("greetings-worker"), "POST", "/api/applications", "",
     {"name": "greetings-worker"}, APP, lambda r: r.id == "a1"),
    ("update_application", lambda c: c.update_application("a1", "renamed"), "PUT", "/api/applications/a1", "",
     {"name": "renamed"}, {**APP, "name": "renamed"}, lambda r: r.name == "renamed"),
    ("delete_application", lambda c: c.delete_application("a1"), "DELETE", "/api/applications/a1", "", None,
     {"message": "Deleted"}, lambda r: r is None),
    ("get_application_by_key", lambda c: c.get_application_by_key("k/1"), "GET", "/api/applications/key/k%2F1", "",
     None, APP, lambda r: r.id == "a1"),
    ("put_application_tags", lambda c: c.put_application_tags("a1", [Tag(key="team", value="x")]), "PUT",
     "/api/applications/a1/tags", "", [{"key": "team", "value": "x"}], None, lambda r: r is None),
    ("get_application_tags", lambda c: c.get_application_tags("a1"), "GET", "/api/applications/a1/tags", "", None,
     [{"key": "team", "value": "x"}], lambda r: r == [Tag(key="team", value="x")]),
    ("delete_application_tags", lambda c: c.delete_application_tags("a1", [Tag(key="team", value="x")]), "DELETE",
     "/api/applications/a1/tags", "", [{"key": "team", "value": "x"}], None, lambda r: r is None),
    ("add_role", lambda c: c.add_role("a1", "WORKER"), "POST", "/api/applications/a1/roles/WORKER", "", None, {},
     lambda r: r is None),
    ("remove_role", lambda c: c.remove_role("a1", "WORKER"), "DELETE", "/api/applications/a1/roles/WORKER", "", None,
     None, lambda r: r is None),
    ("list_keys", lambda c: c.list_keys("a1"), "GET", "/api/applications/a1/accessKeys", "", None,
     [{"id": "k1", "createdAt": 5, "status": "ACTIVE"}],
     lambda r: r == [AccessKey(id="k1", created_at=5, status="ACTIVE")]),
    ("create_key", lambda c: c.create_key("a1"), "POST", "/api/applications/a1/accessKeys", "", None,
     {"id": "k2", "secret": "new-secret"},
     lambda r: isinstance(r, CreatedKey) and r.secret.get_secret_value() == "new-secret"
     and "new-secret" not in repr(r)),
    ("toggle_key", lambda c: c.toggle_key("a1", "k1"), "POST", "/api/applications/a1/accessKeys/k1/status", "", None,
     {"id": "k1", "createdAt": 5, "status": "INACTIVE"}, lambda r: r.status == "INACTIVE"),
    ("delete_key", lambda c: c.delete_key("a1", "k1"), "DELETE", "/api/applications/a1/accessKeys/k1", "", None,
     {"message": "Deleted"}, lambda r: r is None),
    ("get_user", lambda c: c.get_user("app:a1"), "GET", "/api/users/app%3Aa1", "", None,
     {"id": "app:a1", "name": "w", "roles": [{"name": "WORKER", "permissions": []}], "applicationUser": True},
     lambda r: isinstance(r, AppUser) and r.role_names == {"WORKER"} and r.application_user),
    ("get_app_user", lambda c: c.get_app_user("a1"), "GET", "/api/users/app%3Aa1", "", None,
     {"id": "app:a1", "roles": []}, lambda r: r.role_names == set()),
    ("get_user_permissions", lambda c: c.get_user_permissions("app:a1"), "GET", "/api/users/app%3Aa1/permissions", "",
     None, {"grantedAccess": [{"target": {"type": "TASK_DEF", "id": "greetings"}, "access": ["EXECUTE"]}]},
     lambda r: r == [GrantedAccess(target=TARGET, access=["EXECUTE"])]),
    ("list_users", lambda c: c.list_users(), "GET", "/api/users", "apps=false", None,
     [{"id": "ada@x.io", "name": "Ada", "roles": [{"name": "USER"}], "groups": [{"id": "g", "roles": []}]}],
     lambda r: r == [User(id="ada@x.io", name="Ada", roles=[Role(name="USER")], groups=[Group(id="g")])]
     and r[0].group_ids == ["g"]),
    ("upsert_user", lambda c: c.upsert_user("ada@x.io", "Ada", ["USER", "USER"], ["g"]), "PUT", "/api/users/ada%40x.io",
     "", {"name": "Ada", "roles": ["USER"], "groups": ["g"]}, {"id": "ada@x.io", "name": "Ada"},
     lambda r: isinstance(r, User) and r.name == "Ada"),
    ("delete_user", lambda c: c.delete_user("ada@x.io"), "DELETE", "/api/users/ada%40x.io", "", None,
     {"message": "Deleted user 'ada@x.io'"}, lambda r: r is None),
    ("list_groups", lambda c: c.list_groups(), "GET", "/api/groups", "", None,
     [{"id": "g", "description": "d", "roles": [{"name": "WORKER"}], "defaultAccess": {"TASK_DEF": ["READ"]}}],
     lambda r: r[0].role_names == {"WORKER"} and r[0].default_access == {"TASK_DEF": ["READ"]}),
    ("upsert_group", lambda c: c.upsert_group("g/1", "d", ["USER"], {"TASK_DEF": ["READ"]}), "PUT", "/api/groups/g%2F1",
     "", {"description": "d", "roles": ["USER"], "defaultAccess": {"TASK_DEF": ["READ"]}}, {"id": "g/1"},
     lambda r: r.id == "g/1"),
    ("delete_group", lambda c: c.delete_group("g"), "DELETE", "/api/groups/g", "", None,
     {"message": "Deleted group 'g'"}, lambda r: r is None),
    ("get_group_users", lambda c: c.get_group_users("g"), "GET", "/api/groups/g/users", "", None,
     [{"id": "ada@x.io"}, {"id": "app:a1", "applicationUser": True}],
     lambda r: [u.id for u in r] == ["ada@x.io", "app:a1"] and r[1].application_user),
    ("add_users_to_group", lambda c: c.add_users_to_group("g", ["a@x.io", "b@x.io", "a@x.io"]), "POST",
     "/api/groups/g/users", "", ["a@x.io", "b@x.io"], {}, lambda r: r is None),
    ("remove_users_from_group", lambda c: c.remove_users_from_group("g", ["a@x.io"]), "DELETE", "/api/groups/g/users",
     "", ["a@x.io"], None, lambda r: r is None),
    ("get_group_permissions", lambda c: c.get_group_permissions("g"), "GET", "/api/groups/g/permissions", "", None,
     {"grantedAccess": [{"target": {"type": "TASK_DEF", "id": "greetings"}, "access": ["EXECUTE"]}]},
     lambda r: r == [GrantedAccess(target=TARGET, access=["EXECUTE"])]),
    ("grant", lambda c: c.grant(SUBJECT, TARGET, ["EXECUTE", "READ", "EXECUTE"]), "POST", "/api/auth/authorization",
     "", {"subject": {"type": "USER", "id": "app:a1"}, "target": {"type": "TASK_DEF", "id": "greetings"},
          "access": ["EXECUTE", "READ"]}, {"message": "Granted permission"}, lambda r: r is None),
    ("revoke", lambda c: c.revoke(SUBJECT, TARGET, ["EXECUTE"]), "DELETE", "/api/auth/authorization", "",
     {"subject": {"type": "USER", "id": "app:a1"}, "target": {"type": "TASK_DEF", "id": "greetings"},
      "access": ["EXECUTE"]}, {"message": "Removed permission"}, lambda r: r is None),
    ("get_permissions", lambda c: c.get_permissions(TARGET), "GET", "/api/auth/authorization/TASK_DEF/greetings", "",
     None, {"EXECUTE": [{"type": "USER", "id": "app:a1"}], "READ": []},
     lambda r: r == {"EXECUTE": [Subject(type="USER", id="app:a1")], "READ": []}),
    ("get_task_def", lambda c: c.get_task_def("greetings"), "GET", "/api/metadata/taskdefs/greetings", "", None,
     {"name": "greetings", "timeoutSeconds": 60, "customField": 1},
     lambda r: r.name == "greetings" and r.timeout_seconds == 60 and r.to_wire()["customField"] == 1),
    ("list_task_defs", lambda c: c.list_task_defs(), "GET", "/api/metadata/taskdefs", "", None, [{"name": "t"}],
     lambda r: [d.name for d in r] == ["t"]),
    ("register_task_defs", lambda c: c.register_task_defs([TaskDef(name="greetings")]), "POST",
     "/api/metadata/taskdefs", "", [TaskDef(name="greetings").to_wire()], {}, lambda r: r is None),
    ("update_task_def", lambda c: c.update_task_def(TaskDef(name="g", retry_count=0)), "PUT", "/api/metadata/taskdefs",
     "", TaskDef(name="g", retry_count=0).to_wire(), None, lambda r: r is None),
    ("delete_task_def", lambda c: c.delete_task_def("g"), "DELETE", "/api/metadata/taskdefs/g", "", None, None,
     lambda r: r is None),
    ("get_workflow_def", lambda c: c.get_workflow_def("wf", 2), "GET", "/api/metadata/workflow/wf", "version=2", None,
     {"name": "wf", "version": 2}, lambda r: r["version"] == 2),
    ("register_workflow_def", lambda c: c.register_workflow_def({"name": "wf", "tasks": []}), "POST",
     "/api/metadata/workflow", "overwrite=true", {"name": "wf", "tasks": []}, None, lambda r: r is None),
    ("get_workflow", lambda c: c.get_workflow("w-1"), "GET", "/api/workflow/w-1", "includeTasks=true", None,
     {"workflowId": "w-1", "status": "COMPLETED"}, lambda r: r["status"] == "COMPLETED"),
]


@pytest.mark.parametrize(("name", "call", "method", "path", "query", "body", "reply", "check"), CASES,
                         ids=[c[0] for c in CASES])
def test_each_method_speaks_the_documented_wire_format(name: str, call: Callable[[OrkesClient], Any], method: str,
                                                       path: str, query: str, body: Any, reply: Any,
                                                       check: Callable[[Any], bool]) -> None:
    fake = FakeOrkes()
    fake.route(method, path, httpx.Response(200, json=reply) if reply is not None else httpx.Response(200))
    with make_client(fake) as client:
        result = call(client)
    (sent,) = fake.non_token()
    assert (sent.method, sent.path, sent.query) == (method, path, query)
    assert sent.body == body
    assert check(result)


def test_start_workflow_posts_a_start_request_and_returns_the_plain_text_id() -> None:
    fake = FakeOrkes()
    fake.route("POST", "/api/workflow", httpx.Response(200, text="4a1e-wf", headers={"content-type": "text/plain"}))
    with make_client(fake) as client:
        workflow_id = client.start_workflow("greetings", {"name": "Ada"}, version=1, correlation_id="c-1")
    assert workflow_id == "4a1e-wf"
    (sent,) = fake.non_token()
    assert sent.body == {"name": "greetings", "input": {"name": "Ada"}, "version": 1, "correlationId": "c-1"}


def test_path_parameters_are_percent_encoded_with_nothing_safe() -> None:
    fake = FakeOrkes()
    fake.route("GET", "/api/metadata/taskdefs/a%2Fb%20c%3F%23", httpx.Response(200, json={"name": "a/b c?#"}))
    with make_client(fake) as client:
        assert client.get_task_def("a/b c?#").name == "a/b c?#"


def test_get_task_def_of_a_missing_task_is_not_found() -> None:
    fake = FakeOrkes()
    with make_client(fake) as client, pytest.raises(NotFound):
        client.get_task_def("missing")


def test_the_default_task_def_is_what_a_server_needs_to_accept_it() -> None:
    wire = TaskDef(name="greetings").to_wire()
    assert wire["name"] == "greetings"
    assert wire["timeoutSeconds"] >= wire["responseTimeoutSeconds"] > 0
    assert wire["totalTimeoutSeconds"] == 0
    assert "@" in wire["ownerEmail"]


def test_the_client_accepts_a_server_url_without_credentials_for_token_checks() -> None:
    fake = FakeOrkes()
    client = OrkesClient(server="https://orkes.example.com/", transport=httpx.MockTransport(fake))
    with client:
        assert client.server == "https://orkes.example.com/api"
        client.exchange_token("k", SecretStr("s"))
    assert fake.seen[0].path == "/api/token"


def test_models_parse_camel_case_and_accept_snake_case() -> None:
    key = AccessKey.model_validate({"id": "k", "createdAt": 3, "status": "ACTIVE", "extra": True})
    assert key.created_at == 3
    assert AccessKey(id="k", created_at=3, status="ACTIVE") == key
    assert key.model_dump(by_alias=True) == {"id": "k", "createdAt": 3, "status": "ACTIVE"}
