"""Wire scenarios: short, deterministic conversations that between them call every ``OrkesClient`` endpoint.

Each scenario is recorded into one cassette (``cassettes/<name>.yaml``) and replayed offline. It
asserts what the server answered (names, statuses, errors), so a replay proves the client still
sends exactly the recorded requests AND still understands the recorded answers. Names are fixed
(``orkes-provision-cassette-*``) so that request bodies match on replay; ids come from the answers.

Scenarios marked ``portable`` only use the documented Orkes API and can be recorded against a real
Orkes server (``provision probe --record DIR``); the others use the sandbox's fault plan. A portable
scenario cleans up what it created, even when it fails half-way (the workflow it starts is left
to time out after 60 s, and its workflow definition stays: the client has no call to delete one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from orkes_provision.errors import AuthenticationError, NotFound, PermissionDenied, ServerUnavailable, UsageError
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials, Tag, Target, TaskDef, app_subject, group_subject
from orkes_provision.orkes.retry import RetryPolicy
from orkes_provision.sandbox.client import SandboxClient

PREFIX = "orkes-provision-cassette"
WRONG_SECRET = SecretStr("wrong-secret-for-the-cassette-0000")

# Every OrkesClient method that talks to the server -> the operation it calls (method, OpenAPI path).
ENDPOINTS: dict[str, str] = {
    "exchange_token": "POST /api/token",
    "user_info": "GET /api/token/userInfo",
    "list_applications": "GET /api/applications",
    "get_application": "GET /api/applications/{id}",
    "create_application": "POST /api/applications",
    "update_application": "PUT /api/applications/{id}",
    "delete_application": "DELETE /api/applications/{id}",
    "get_application_by_key": "GET /api/applications/key/{accessKeyId}",
    "put_application_tags": "PUT /api/applications/{id}/tags",
    "get_application_tags": "GET /api/applications/{id}/tags",
    "delete_application_tags": "DELETE /api/applications/{id}/tags",
    "add_role": "POST /api/applications/{applicationId}/roles/{role}",
    "remove_role": "DELETE /api/applications/{applicationId}/roles/{role}",
    "list_keys": "GET /api/applications/{id}/accessKeys",
    "create_key": "POST /api/applications/{id}/accessKeys",
    "toggle_key": "POST /api/applications/{applicationId}/accessKeys/{keyId}/status",
    "delete_key": "DELETE /api/applications/{applicationId}/accessKeys/{keyId}",
    "get_user": "GET /api/users/{id}",
    "get_app_user": "GET /api/users/{id}",
    "get_user_permissions": "GET /api/users/{userId}/permissions",
    "list_users": "GET /api/users",
    "upsert_user": "PUT /api/users/{id}",
    "delete_user": "DELETE /api/users/{id}",
    "list_groups": "GET /api/groups",
    "upsert_group": "PUT /api/groups/{id}",
    "delete_group": "DELETE /api/groups/{id}",
    "get_group_users": "GET /api/groups/{id}/users",
    "add_users_to_group": "POST /api/groups/{groupId}/users",
    "remove_users_from_group": "DELETE /api/groups/{groupId}/users",
    "get_group_permissions": "GET /api/groups/{groupId}/permissions",
    "grant": "POST /api/auth/authorization",
    "revoke": "DELETE /api/auth/authorization",
    "get_permissions": "GET /api/auth/authorization/{type}/{id}",
    "get_task_def": "GET /api/metadata/taskdefs/{tasktype}",
    "list_task_defs": "GET /api/metadata/taskdefs",
    "register_task_defs": "POST /api/metadata/taskdefs",
    "update_task_def": "PUT /api/metadata/taskdefs",
    "delete_task_def": "DELETE /api/metadata/taskdefs/{tasktype}",
    "get_workflow_def": "GET /api/metadata/workflow/{name}",
    "register_workflow_def": "POST /api/metadata/workflow",
    "list_workflow_defs": "GET /api/metadata/workflow",
    "start_workflow": "POST /api/workflow",
    "get_workflow": "GET /api/workflow/{workflowId}",
    "search_tasks": "GET /api/tasks/search",
    "get_task": "GET /api/tasks/{taskId}",
    "return_task_to_queue": "POST /api/tasks",
    "get_poll_data": "GET /api/tasks/queue/polldata",
    "delete_workflow_def": "DELETE /api/metadata/workflow/{name}/{version}",
    "poll_tasks": "GET /api/tasks/poll/batch/{tasktype}",
    "complete_task": "POST /api/tasks",
    "token_answer": "POST /api/token",
    "list_custom_roles": "GET /api/roles/custom",
    "get_role": "GET /api/roles/{name}",
    "list_role_permissions": "GET /api/roles/permissions",
    "create_role": "POST /api/roles",
    "update_role": "PUT /api/roles/{name}",
    "delete_role": "DELETE /api/roles/{name}",
}
# Public OrkesClient attributes that are not calls to the server.
NOT_ENDPOINTS = frozenset({"close", "request_count", "key_id", "server", "credentials", "timeout", "retry_policy",
                           "rate_limited_answers"})
# Operations a scenario calls that the Orkes OpenAPI document does not describe: the sandbox's own
# test hooks (``SandboxClient``). Everything else the client sends must be in the document.
OUTSIDE_THE_SPEC = frozenset({"POST /api/sandbox/faults", "DELETE /api/sandbox/faults"})
# Operations the Orkes document lacks that an official SDK calls (conductor-python's RoleResourceApi): the
# checked subset adds them (``make_openapi_subset.SDK_PATHS``), so they are checked like the document's own.
FROM_AN_SDK = frozenset({"GET /api/roles/custom", "GET /api/roles/{name}", "GET /api/roles/permissions",
                         "POST /api/roles", "PUT /api/roles/{name}", "DELETE /api/roles/{name}"})
# Operations a scenario sends itself, as a worker would, to give the server something to report
# (``WireContext.http``), that no OrkesClient method sends. The batch poll was one until
# ``poll_tasks`` (``provision probe`` takes a task to see it handed back): none left.
WORKER_CALLS: frozenset[str] = frozenset()


@dataclass
class WireContext:
    """What a scenario needs: the recording (or replaying) account and a way to make clients."""

    admin: Credentials
    make_client: Callable[[Credentials, type[OrkesClient]], OrkesClient]
    make_http: Callable[[], httpx.Client] = httpx.Client

    def http(self) -> httpx.Client:
        """A plain HTTP client on the same wire as the scenario's clients, for ``WORKER_CALLS``."""
        return self.make_http()

    def client(self, credentials: Credentials | None = None) -> OrkesClient:
        return self.make_client(credentials or self.admin, OrkesClient)

    def sandbox_client(self) -> SandboxClient:
        made = self.make_client(self.admin, SandboxClient)
        assert isinstance(made, SandboxClient)
        return made

    def as_key(self, key_id: str, secret: SecretStr) -> Credentials:
        return Credentials(server=self.admin.server, key_id=key_id, secret=secret)


def fast_policy() -> RetryPolicy:
    """Retries as the client does them, without the waiting (sleep is a no-op in these clients)."""
    return RetryPolicy(base=0.01, cap=0.02)


@contextlib.contextmanager
def _application(client: OrkesClient, name: str) -> Iterator[str]:
    app = client.create_application(name)
    assert app.name == name
    try:
        yield app.id
    finally:
        with contextlib.suppress(NotFound):
            client.delete_application(app.id)


@contextlib.contextmanager
def _task_def(client: OrkesClient, name: str) -> Iterator[str]:
    client.register_task_defs([TaskDef(name=name, description="orkes-provision cassette")])
    try:
        yield name
    finally:
        with contextlib.suppress(NotFound):
            client.delete_task_def(name)


def token(ctx: WireContext) -> None:
    """Token exchange: the account's key works, a wrong secret is refused with 401, userInfo names the caller."""
    with ctx.client() as client:
        info = client.user_info()  # mints the client's own token first
        assert info.get("id"), "userInfo names the caller"
        assert client.exchange_token(ctx.admin.key_id, ctx.admin.secret).get_secret_value()
        try:
            client.exchange_token(ctx.admin.key_id, WRONG_SECRET)
        except AuthenticationError as err:
            assert "rejected key" in err.message
        else:
            raise AssertionError("a wrong secret must be refused")


def applications(ctx: WireContext) -> None:
    """Applications: create, list, read, rename, tags, delete; an unknown id is 404."""
    name = f"{PREFIX}-apps"
    with ctx.client() as client, _application(client, name) as app_id:
        assert app_id in {a.id for a in client.list_applications() if a.name == name}
        assert client.get_application(app_id).name == name
        renamed = client.update_application(app_id, f"{name}-renamed")
        assert (renamed.id, renamed.name) == (app_id, f"{name}-renamed")
        tags = [Tag(key="managed-by", value="orkes-provision"), Tag(key="environment", value="cassette")]
        client.put_application_tags(app_id, tags)
        assert {(t.key, t.value) for t in client.get_application_tags(app_id)} >= {(t.key, t.value) for t in tags}
        client.delete_application_tags(app_id, tags[1:])
        assert ("environment", "cassette") not in {(t.key, t.value) for t in client.get_application_tags(app_id)}
        client.delete_application(app_id)
        try:
            client.get_application(app_id)
        except NotFound as err:
            assert "(GET /api/applications/" in err.message
        else:
            raise AssertionError("a deleted application must be 404")


def roles(ctx: WireContext) -> None:
    """Roles live on the user app:<id>: add WORKER, read it back, remove it."""
    with ctx.client() as client, _application(client, f"{PREFIX}-roles") as app_id:
        client.add_role(app_id, "WORKER")
        user = client.get_app_user(app_id)
        assert user.id == f"app:{app_id}"
        assert "WORKER" in user.role_names
        client.remove_role(app_id, "WORKER")
        assert "WORKER" not in client.get_user(f"app:{app_id}").role_names


def custom_roles(ctx: WireContext) -> None:
    """Custom roles: the permission catalogue, create, read, list, update, a refused permission, delete."""
    name = PREFIX.upper().replace("-", "_") + "_ROLE"
    with ctx.client() as client:
        catalogue = client.list_role_permissions()
        assert "READ_WORKFLOW_DEF" in {p for names in catalogue.values() for p in names}
        try:
            created = client.create_role(name, ["READ_WORKFLOW_DEF"])
            assert (created.name, "READ_WORKFLOW_DEF" in created.permission_names) == (name, True)
            assert "READ_WORKFLOW_DEF" in client.get_role(name).permission_names
            updated = client.update_role(name, ["READ_WORKFLOW_DEF", "EXECUTE_WORKFLOW_DEF"])
            assert {"READ_WORKFLOW_DEF", "EXECUTE_WORKFLOW_DEF"} <= updated.permission_names
            assert name in {r.name for r in client.list_custom_roles()}
            try:
                client.update_role(name, ["workflow:read"])
            except UsageError:
                pass
            else:
                raise AssertionError("a permission the server does not know must be refused")
        finally:
            with contextlib.suppress(NotFound):
                client.delete_role(name)
        try:
            client.get_role(name)
        except NotFound:
            pass
        else:
            raise AssertionError("a deleted role must be 404")


def access_keys(ctx: WireContext) -> None:
    """Keys: create (the one answer with the secret), list, find the app by key, toggle twice, use, delete."""
    with ctx.client() as client, _application(client, f"{PREFIX}-keys") as app_id:
        created = client.create_key(app_id)
        assert created.secret.get_secret_value()
        listed = client.list_keys(app_id)
        assert [(k.id, k.status) for k in listed] == [(created.id, "ACTIVE")]
        assert client.get_application_by_key(created.id).id == app_id
        assert client.toggle_key(app_id, created.id).status == "INACTIVE"
        assert client.toggle_key(app_id, created.id).status == "ACTIVE"
        assert client.exchange_token(created.id, created.secret).get_secret_value()
        client.delete_key(app_id, created.id)
        assert client.list_keys(app_id) == []
        try:
            client.delete_key(app_id, created.id)
        except NotFound:
            pass
        else:
            raise AssertionError("deleting a deleted key must be 404")


def permissions(ctx: WireContext) -> None:
    """Grants: EXECUTE on a task definition to app:<id>, read from both sides, revoke."""
    task = f"{PREFIX}-task"
    with ctx.client() as client, _task_def(client, task), _application(client, f"{PREFIX}-grants") as app_id:
        subject, target = app_subject(app_id), Target(type="TASK_DEF", id=task)
        client.grant(subject, target, ["EXECUTE", "READ"])
        holders = client.get_permissions(target)
        assert subject.id in {s.id for s in holders.get("EXECUTE", [])}
        granted = {(g.target.type, g.target.id): set(g.access) for g in client.get_user_permissions(subject.id)}
        assert granted[("TASK_DEF", task)] >= {"EXECUTE", "READ"}
        client.revoke(subject, target, ["EXECUTE", "READ"])
        granted = {(g.target.type, g.target.id): set(g.access) for g in client.get_user_permissions(subject.id)}
        assert not granted.get(("TASK_DEF", task))


@contextlib.contextmanager
def _people(client: OrkesClient, user_id: str, group_id: str) -> Iterator[None]:
    try:
        yield
    finally:
        for delete, what in ((client.delete_group, group_id), (client.delete_user, user_id)):
            with contextlib.suppress(NotFound):
                delete(what)


def users_and_groups(ctx: WireContext) -> None:
    """Users and groups: upserts, members, a GROUP grant read back from the group, removal, deletes."""
    user_id, group_id, flow = f"{PREFIX}-user@example.com", f"{PREFIX}-group", f"{PREFIX}-group-flow"
    with ctx.client() as client, _people(client, user_id, group_id):
        created = client.upsert_user(user_id, "Cassette User", ["USER"], [])
        assert (created.id, created.name, created.role_names, created.group_ids) == \
            (user_id, "Cassette User", {"USER"}, [])
        updated = client.upsert_user(user_id, "Cassette User", ["WORKER"], [])
        assert updated.role_names == {"WORKER"}
        assert user_id in {u.id for u in client.list_users()}
        group = client.upsert_group(group_id, "orkes-provision cassette", ["USER"])
        assert (group.id, group.role_names) == (group_id, {"USER"})
        client.add_users_to_group(group_id, [user_id])
        assert [u.id for u in client.get_group_users(group_id)] == [user_id]
        assert group_id in client.get_user(user_id).group_ids
        subject, target = group_subject(group_id), Target(type="WORKFLOW_DEF", id=flow)
        client.grant(subject, target, ["READ", "EXECUTE"])
        granted = {(g.target.type, g.target.id): set(g.access) for g in client.get_group_permissions(group_id)}
        assert granted[("WORKFLOW_DEF", flow)] == {"READ", "EXECUTE"}
        client.revoke(subject, target, ["READ", "EXECUTE"])
        client.remove_users_from_group(group_id, [user_id])
        assert client.get_group_users(group_id) == []
        assert group_id in {g.id for g in client.list_groups()}
        client.delete_group(group_id)
        client.delete_user(user_id)
        try:
            client.get_user(user_id)
        except NotFound:
            pass
        else:
            raise AssertionError("a deleted user must be 404")


def task_defs(ctx: WireContext) -> None:
    """Task definitions: register (array), read, list, update (single object), delete; a missing one is 404."""
    name = f"{PREFIX}-taskdef"
    with ctx.client() as client, _task_def(client, name):
        assert client.get_task_def(name).name == name
        assert name in {d.name for d in client.list_task_defs()}
        client.update_task_def(TaskDef(name=name, description="updated", timeout_seconds=120,
                                       response_timeout_seconds=60))
        assert client.get_task_def(name).timeout_seconds == 120
        client.delete_task_def(name)
        try:
            client.get_task_def(name)
        except NotFound:
            pass
        else:
            raise AssertionError("a deleted task definition must be 404")


def workflows(ctx: WireContext) -> None:
    """Workflow definitions and executions: register (overwrite), read, start, read the execution."""
    task, flow = f"{PREFIX}-wf-task", f"{PREFIX}-flow"
    definition = {"name": flow, "version": 1, "timeoutSeconds": 60, "timeoutPolicy": "TIME_OUT_WF",
                  "ownerEmail": "orkes-provision@example.com", "schemaVersion": 2,
                  "tasks": [{"name": task, "taskReferenceName": "step", "type": "SIMPLE"}]}
    with ctx.client() as client, _task_def(client, task):
        client.register_workflow_def(definition, overwrite=True)
        assert client.get_workflow_def(flow, 1)["name"] == flow
        workflow_id = client.start_workflow(flow, {"who": "cassette"}, version=1, correlation_id="cassette")
        execution = client.get_workflow(workflow_id)
        assert execution["workflowId"] == workflow_id
        assert execution["status"] == "RUNNING"


def task_requeue(ctx: WireContext) -> None:
    """Tasks: find a workflow's task by search, read it, hand it to the next poll (what a supervisor does
    for the tasks of a stopped worker); it stays SCHEDULED, held by no worker."""
    task, flow = f"{PREFIX}-rq-task", f"{PREFIX}-rq-flow"
    definition = {"name": flow, "version": 1, "timeoutSeconds": 60, "timeoutPolicy": "TIME_OUT_WF",
                  "ownerEmail": "orkes-provision@example.com", "schemaVersion": 2,
                  "tasks": [{"name": task, "taskReferenceName": "step", "type": "SIMPLE"}]}
    with ctx.client() as client, _task_def(client, task):
        client.register_workflow_def(definition, overwrite=True)
        workflow_id = client.start_workflow(flow, {}, version=1)
        # A search index may lag behind the start (Orkes indexes asynchronously); a few tries, no sleep
        # needed against the sandbox, whose answer replays from the cassette.
        found: list[dict[str, object]] = []
        for _ in range(5):
            _, found = client.search_tasks(f"workflowId = {workflow_id} AND taskType = {task}", size=10)
            if found:
                break
        [summary] = found
        assert summary["status"] == "SCHEDULED"
        task_id = str(summary["taskId"])
        client.return_task_to_queue(workflow_id, task_id)
        assert client.get_task(task_id)["status"] == "SCHEDULED"


def poll_data(ctx: WireContext) -> None:
    """Poll data: none for a task nobody polled; after one poll (sent as an SDK worker sends it), that worker."""
    task = f"{PREFIX}-polled"
    with ctx.client() as client, _task_def(client, task), ctx.http() as http:
        assert client.get_poll_data(task) == []
        token = client.exchange_token(ctx.admin.key_id, ctx.admin.secret)
        polled = http.get(f"{client.server}/tasks/poll/batch/{task}",
                          params={"workerid": f"{PREFIX}-worker", "count": 1, "timeout": 100},
                          headers={"X-Authorization": token.get_secret_value()})
        assert polled.status_code == 200, polled.status_code
        [poll] = client.get_poll_data(task)
        assert (poll.queue_name, poll.worker_id, poll.domain) == (task, f"{PREFIX}-worker", None)
        assert poll.last_poll_time > 0


def workflow_defs(ctx: WireContext) -> None:
    """Listing workflow definitions (what 'provision export' reads): every version of a registered one is there."""
    task, flow = f"{PREFIX}-list-task", f"{PREFIX}-list-flow"
    with ctx.client() as client, _task_def(client, task):
        for version in (1, 2):
            client.register_workflow_def({"name": flow, "version": version, "timeoutSeconds": 60,
                                          "ownerEmail": "orkes-provision@example.com", "schemaVersion": 2,
                                          "tasks": [{"name": task, "taskReferenceName": "step", "type": "SIMPLE"}]})
        listed = [d for d in client.list_workflow_defs() if d.get("name") == flow]
        assert sorted(int(d.get("version") or 0) for d in listed) == [1, 2]
        assert all(d["tasks"][0]["taskReferenceName"] == "step" for d in listed)


def permission_denied(ctx: WireContext) -> None:
    """A key without roles: its token works, admin calls are 403 (sandbox: the Orkes answer is unconfirmed)."""
    with ctx.client() as admin, _application(admin, f"{PREFIX}-no-roles") as app_id:
        created = admin.create_key(app_id)
        with ctx.client(ctx.as_key(created.id, created.secret)) as plain:
            try:
                plain.list_applications()
            except PermissionDenied as err:
                assert "ADMIN" in err.hint
            else:
                raise AssertionError("a key without roles must not list applications")


def sandbox_faults(ctx: WireContext) -> None:
    """The sandbox fault plan: a 503 and a 429 are retried, a 500 on a create is reported as maybe applied."""
    with ctx.sandbox_client() as client:
        client.add_fault("GET", r"^/api/applications$", status=503)
        assert any(a.name == "sandbox-admin" for a in client.list_applications())
        client.add_faults([{"method": "GET", "path": r"^/api/applications$", "status": 429, "retryAfter": 1}])
        assert client.list_applications()
        client.add_fault("POST", r"^/api/applications$", status=500)
        try:
            client.create_application(f"{PREFIX}-never")
        except ServerUnavailable as err:
            assert "may have been applied" in err.hint
        else:
            raise AssertionError("an injected 500 must fail the create")
        client.clear_faults()


def probe(ctx: WireContext) -> None:
    """``provision probe``: every behaviour observed (none an error), and no probe object left behind."""
    from orkes_provision.probe import run_probe

    report = run_probe(ctx.admin, lambda credentials: ctx.client(credentials))
    errors = [o.line() for o in report.observations if o.observed == "error"]
    assert not errors, errors
    assert len(report.observations) >= 12
    assert report.left == []


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[WireContext], None]
    portable: bool


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("token", token, portable=True),
    Scenario("applications", applications, portable=True),
    Scenario("roles", roles, portable=True),
    Scenario("custom_roles", custom_roles, portable=True),
    Scenario("access_keys", access_keys, portable=True),
    Scenario("permissions", permissions, portable=True),
    Scenario("users_and_groups", users_and_groups, portable=True),
    Scenario("task_defs", task_defs, portable=True),
    Scenario("workflows", workflows, portable=True),
    Scenario("task_requeue", task_requeue, portable=True),
    Scenario("poll_data", poll_data, portable=True),
    Scenario("workflow_defs", workflow_defs, portable=True),
    Scenario("probe", probe, portable=True),
    Scenario("permission_denied", permission_denied, portable=False),
    Scenario("sandbox_faults", sandbox_faults, portable=False),
)
