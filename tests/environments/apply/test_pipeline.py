"""The executor keeps the dependency order of the plan's stages, against a recording fake client."""

from __future__ import annotations

import threading
from typing import Any

from orkes_provision.access.changes import (
    AddGroupRole,
    AddMember,
    AddRole,
    AddUserRole,
    CreateApp,
    CreateGroup,
    CreateUser,
    DeleteApp,
    Grant,
    GrantTarget,
    GroupGrant,
    GroupRevoke,
    RegisterTask,
    RegisterWorkflow,
    RemoveMember,
    RemoveUserRole,
    Revoke,
    UpdateTask,
    UpdateUser,
)
from orkes_provision.access.execute import Executor
from orkes_provision.access.plan import Plan
from orkes_provision.errors import ServerUnavailable
from orkes_provision.orkes.models import Application, Subject, Tag, Target, TaskDef
from orkes_provision.orkes.ratelimit import AdaptiveLimiter

SERVER = "http://127.0.0.1:8080/api"


class RecordingClient:
    """Just the calls the executor makes; ``fail`` names calls that raise."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail = fail or set()
        self._lock = threading.Lock()

    def _record(self, call: str, what: str) -> None:
        with self._lock:
            self.calls.append((call, what))
        if f"{call} {what}" in self.fail:
            raise ServerUnavailable(f"{call} {what} failed")

    def register_task_defs(self, defs: list[TaskDef]) -> None:
        self._record("register_task_defs", ",".join(sorted(d.name for d in defs)))

    def register_workflow_def(self, definition: dict[str, Any], overwrite: bool = True) -> None:
        self._record("register_workflow_def", str(definition["name"]))

    def create_application(self, name: str) -> Application:
        self._record("create_application", name)
        return Application(id=f"id-{name}", name=name)

    def put_application_tags(self, app_id: str, tags: list[Tag]) -> None:
        self._record("put_application_tags", app_id)

    def add_role(self, app_id: str, role: str) -> None:
        self._record("add_role", f"{app_id} {role}")

    def remove_role(self, app_id: str, role: str) -> None:
        self._record("remove_role", f"{app_id} {role}")

    def grant(self, subject: Subject, target: Target, access: list[str]) -> None:
        self._record("grant", f"{subject.id} {target.id}")

    def revoke(self, subject: Subject, target: Target, access: list[str]) -> None:
        self._record("revoke", f"{subject.id} {target.id}")

    def delete_application(self, app_id: str) -> None:
        self._record("delete_application", app_id)

    def upsert_user(self, user_id: str, name: str, roles: list[str], groups: list[str]) -> None:
        self._record("upsert_user", f"{user_id} {','.join(roles)}")

    def upsert_group(self, group_id: str, description: str, roles: list[str],
                     default_access: dict[str, list[str]] | None = None) -> None:
        self._record("upsert_group", f"{group_id} {','.join(roles)}")

    def add_users_to_group(self, group_id: str, user_ids: list[str]) -> None:
        self._record("add_users_to_group", f"{group_id} {','.join(user_ids)}")

    def remove_users_from_group(self, group_id: str, user_ids: list[str]) -> None:
        self._record("remove_users_from_group", f"{group_id} {','.join(user_ids)}")


def _plan() -> Plan:
    plan = Plan(server=SERVER, apps=[])
    plan.task_changes = [RegisterTask(name="t1"), UpdateTask(name="t2"), RegisterWorkflow(name="flow", version=1)]
    plan.prune_changes = [Revoke(app="old-grants", on=GrantTarget("TASK_DEF", "gone"), access=("EXECUTE",),
                                 app_id="id-old-grants"),
                          DeleteApp(app="retired", app_id="id-retired")]
    from orkes_provision.access.plan import AppPlan
    from orkes_provision.access.spec import AppSpec

    for name in ("a", "b"):
        spec = AppSpec(name=name)
        plan.apps.append(AppPlan(spec=spec, app_id=None, known_key_ids=set(), reused_key_id=None, changes=[
            CreateApp(app=name), AddRole(app=name, role="WORKER"),
            Grant(app=name, on=GrantTarget("TASK_DEF", "t1"), access=("EXECUTE",)),
            Grant(app=name, on=GrantTarget("WORKFLOW_DEF", "flow"), access=("READ",)),
        ]))
    plan.apps.append(AppPlan(spec=AppSpec(name="old-grants"), app_id="id-old-grants", known_key_ids=set(),
                             reused_key_id=None, changes=[Grant(app="old-grants", on=GrantTarget("TASK_DEF", "t2"),
                                                                access=("EXECUTE",), app_id="id-old-grants")]))
    return plan


def _executor(client: RecordingClient) -> Executor:
    return Executor(client=client, server=SERVER, stores={}, parallelism=4,  # type: ignore[arg-type]
                    managed_tags=(Tag(key="managed-by", value="orkes-provision"),),
                    task_defs={"t2": TaskDef(name="t2", timeout_seconds=5)},
                    workflow_defs={("flow", 1): {"name": "flow", "version": 1, "tasks": []}},
                    limiter=AdaptiveLimiter(4))


def _index(calls: list[tuple[str, str]], call: str, what: str) -> int:
    return calls.index((call, what))


def test_pipeline_keeps_dependency_order_and_batches_task_definitions() -> None:
    client = RecordingClient()
    result = _executor(client).run(_plan())
    calls = client.calls
    assert [c for c in calls if c[0] == "register_task_defs"] == [("register_task_defs", "t1,t2")]
    batch = _index(calls, "register_task_defs", "t1,t2")
    assert batch < _index(calls, "register_workflow_def", "flow")
    for app in ("a", "b"):
        created = _index(calls, "create_application", app)
        assert created < _index(calls, "put_application_tags", f"id-{app}")
        assert created < _index(calls, "add_role", f"id-{app} WORKER")
        assert max(created, batch) < _index(calls, "grant", f"app:id-{app} t1")
        assert _index(calls, "register_workflow_def", "flow") < _index(calls, "grant", f"app:id-{app} flow")
    assert _index(calls, "grant", "app:id-old-grants t2") < _index(calls, "revoke", "app:id-old-grants gone")
    assert calls[-1] == ("delete_application", "id-retired")
    assert len(result.done) == len(_plan().changes)
    assert result.app_ids["a"] == "id-a"


def test_failed_application_skips_its_dependents_and_deletions_but_not_the_others() -> None:
    client = RecordingClient(fail={"create_application a"})
    result = _executor(client).run(_plan())
    failed = [(o.change.kind, o.change.target) for o in result.failed]
    skipped = sorted((o.change.kind, o.change.target) for o in result.skipped)
    assert failed == [("create_app", "a")]
    # Deletions wait for everything else, so a half-converged apply never prunes.
    assert skipped == [("add_role", "WORKER"), ("delete_app", "retired"), ("grant", "TASK_DEF t1"),
                       ("grant", "WORKFLOW_DEF flow")]
    assert ("add_role", "id-b WORKER") in client.calls
    assert ("revoke", "app:id-old-grants gone") in client.calls
    assert not any(what.startswith("app:id-a") or what == "id-a" for _, what in client.calls)


def test_failed_task_batch_skips_grants_on_tasks_and_the_workflow_but_not_applications() -> None:
    client = RecordingClient(fail={"register_task_defs t1,t2"})
    result = _executor(client).run(_plan())
    assert sorted(o.change.target for o in result.failed) == ["t1", "t2"]
    skipped = {(o.change.kind, o.change.to_dict()["app"], o.change.target) for o in result.skipped}
    assert ("register_workflow", None, "flow v1") in skipped
    assert ("grant", "a", "TASK_DEF t1") in skipped
    assert ("grant", "b", "WORKFLOW_DEF flow") in skipped
    assert ("create_application", "a") in client.calls
    assert ("add_role", "id-b WORKER") in client.calls


def _people_plan() -> Plan:
    from orkes_provision.access.plan import GroupUpsert, UserUpsert

    plan = Plan(server=SERVER, apps=[])
    plan.task_changes = [RegisterTask(name="charge")]
    plan.people_changes = [
        CreateUser(user="ada"), AddUserRole(user="ada", role="USER"), UpdateUser(user="bob", reason="name"),
        CreateGroup(group="team"), AddGroupRole(group="team", role="USER"),
        AddMember(group="team", member="ada"), AddMember(group="team", member="bob"),
        GroupGrant(group="team", on=GrantTarget("TASK_DEF", "charge"), access=("EXECUTE",)),
    ]
    plan.prune_changes = [RemoveUserRole(user="bob", role="ADMIN"), RemoveMember(group="team", member="eve"),
                          GroupRevoke(group="team", on=GrantTarget("TASK_DEF", "refund"), access=("EXECUTE",))]
    plan.user_upserts = {"ada": UserUpsert(name="Ada", roles=("USER",), groups=()),
                         "bob": UserUpsert(name="Bob", roles=(), groups=("team",))}
    plan.group_upserts = {"team": GroupUpsert(description="", roles=("USER",))}
    return plan


def test_each_user_and_group_is_one_upsert_and_members_wait_for_both() -> None:
    client = RecordingClient()
    result = _executor(client).run(_people_plan())
    calls = client.calls
    # One request per user (its role removal included) and per group, one for the members it gains.
    assert sorted(c for c in calls if c[0].startswith("upsert")) == [
        ("upsert_group", "team USER"), ("upsert_user", "ada USER"), ("upsert_user", "bob ")]
    added = _index(calls, "add_users_to_group", "team ada,bob")
    for before in (("upsert_user", "ada USER"), ("upsert_user", "bob "), ("upsert_group", "team USER")):
        # A user's upsert carries the groups read before the apply: it must not undo a member change.
        assert _index(calls, *before) < added
    # A group's grant waits for the group and the task definition, not for its members (they run at once).
    assert max(_index(calls, "register_task_defs", "charge"),
               _index(calls, "upsert_group", "team USER")) < _index(calls, "grant", "team charge")
    assert added < _index(calls, "remove_users_from_group", "team eve")
    assert _index(calls, "grant", "team charge") < _index(calls, "revoke", "team refund")
    assert len(result.done) == len(_people_plan().changes) and not result.failed


def test_a_failed_group_upsert_fails_its_changes_together_and_skips_its_members_and_grants() -> None:
    client = RecordingClient(fail={"upsert_group team USER"})
    result = _executor(client).run(_people_plan())
    assert sorted(o.change.kind for o in result.failed) == ["add_group_role", "create_group"]
    assert sorted(o.change.kind for o in result.skipped) == ["add_member", "add_member", "grant", "remove_member",
                                                            "revoke"]
    assert ("upsert_user", "ada USER") in client.calls  # users do not depend on the group
    assert not any(call.startswith(("add_users", "remove_users", "grant", "revoke")) for call, _ in client.calls)
