"""The plan is a pure diff: these tests feed it server states and check the changes it proposes."""

from __future__ import annotations

import pytest

from orkes_provision.access.plan import KeyStatus, plan_apps, plan_prune
from orkes_provision.access.spec import AppSpec, GrantSpec, app_spec_from_flags
from orkes_provision.access.state import AppState, ServerState
from orkes_provision.errors import Conflict, NotFound, UsageError
from orkes_provision.orkes.models import AccessKey, Application, Tag

SERVER = "http://127.0.0.1:8080/api"
MANAGED = ("managed-by", "orkes-provision")


def _spec(**kw: object) -> AppSpec:
    base: dict[str, object] = {"name": "greetings-worker", "roles": ("WORKER",),
                               "grants": (GrantSpec(id="greetings"),), "store": "memory"}
    base.update(kw)
    return AppSpec(**base)  # type: ignore[arg-type]


def _state(app: Application | None = None, *, roles: set[str] | None = None,
           grants: dict[tuple[str, str], set[str]] | None = None, keys: list[AccessKey] | None = None,
           tasks: set[str] | None = None) -> ServerState:
    state = ServerState(by_name={app.name: [app]} if app else {}, task_names={"greetings"} if tasks is None else tasks)
    if app:
        state.apps[app.id] = AppState(app=app, roles=roles or set(), grants=grants or {}, keys=keys or [])
    return state


def _kinds(plan: object) -> list[tuple[str, str]]:
    return [(c.kind, c.target) for c in plan.changes]  # type: ignore[attr-defined]


def test_empty_server_plans_every_step_in_dependency_order() -> None:
    plan = plan_apps(_state(), [_spec()], server=SERVER, key_status={}, store_names={}, managed_tag=MANAGED)
    assert _kinds(plan) == [("create_app", "greetings-worker"), ("add_role", "WORKER"),
                            ("create_key", "memory"), ("grant", "TASK_DEF greetings")]
    assert plan.counts() == {"create": 4, "change": 0, "delete": 0}


def test_fully_provisioned_app_with_usable_key_plans_nothing() -> None:
    app = Application(id="a1", name="greetings-worker", tags=[Tag(key="managed-by", value="orkes-provision")])
    state = _state(app, roles={"WORKER"}, grants={("TASK_DEF", "greetings"): {"EXECUTE", "READ"}},
                   keys=[AccessKey(id="k1", status="ACTIVE")])
    plan = plan_apps(state, [_spec()], server=SERVER, key_status={"greetings-worker": KeyStatus("k1", True)},
                     store_names={}, managed_tag=MANAGED)
    assert plan.empty
    assert plan.apps[0].reused_key_id == "k1"
    assert plan.render() == "No changes: the server already matches."


def test_inactive_stored_key_is_replaced_and_the_reason_is_given() -> None:
    app = Application(id="a1", name="greetings-worker", tags=[Tag(key="managed-by", value="orkes-provision")])
    state = _state(app, roles={"WORKER"}, grants={("TASK_DEF", "greetings"): {"EXECUTE"}},
                   keys=[AccessKey(id="k1", status="INACTIVE")])
    plan = plan_apps(state, [_spec()], server=SERVER, key_status={"greetings-worker": KeyStatus("k1", True)},
                     store_names={}, managed_tag=MANAGED)
    assert _kinds(plan) == [("create_key", "memory")]
    assert "k1 is not an ACTIVE key" in plan.changes[0].reason
    assert plan.apps[0].known_key_ids == {"k1"}


def test_only_missing_access_is_granted() -> None:
    app = Application(id="a1", name="greetings-worker")
    state = _state(app, roles={"WORKER"}, grants={("TASK_DEF", "greetings"): {"READ"}})
    spec = _spec(grants=(GrantSpec(id="greetings", access=("READ", "EXECUTE")),), store=None)
    plan = plan_apps(state, [spec], server=SERVER, key_status={}, store_names={})
    assert [(c.kind, c.access) for c in plan.changes] == [("grant", ("EXECUTE",))]


def test_missing_task_definition_stops_the_plan_naming_the_fix() -> None:
    with pytest.raises(NotFound) as err:  # exit 6, as the table says for a missing definition
        plan_apps(_state(tasks=set()), [_spec()], server=SERVER, key_status={}, store_names={})
    assert "greetings" in err.value.message
    assert "--register-tasks" in err.value.hint


def test_register_tasks_adds_a_registration_before_everything_else() -> None:
    plan = plan_apps(_state(tasks=set()), [_spec()], server=SERVER, key_status={}, store_names={},
                     tasks_to_register=["greetings"])
    assert _kinds(plan)[0] == ("register_task", "greetings")


def test_duplicate_names_stop_before_any_write_and_list_the_ids() -> None:
    state = ServerState(by_name={"w": [Application(id="x", name="w"), Application(id="y", name="w")]},
                        task_names={"greetings"})
    with pytest.raises(Conflict) as err:
        plan_apps(state, [_spec(name="w")], server=SERVER, key_status={}, store_names={})
    assert "x, y" in err.value.message
    assert "--app-id" in err.value.hint


def test_untagged_existing_app_is_adopted_with_the_managed_tag() -> None:
    app = Application(id="a1", name="greetings-worker")
    state = _state(app, roles={"WORKER"}, grants={("TASK_DEF", "greetings"): {"EXECUTE"}})
    plan = plan_apps(state, [_spec(store=None)], server=SERVER, key_status={}, store_names={}, managed_tag=MANAGED)
    assert _kinds(plan) == [("tag_app", "managed-by=orkes-provision")]


def test_prune_touches_only_managed_apps() -> None:
    managed = Application(id="m", name="old", tags=[Tag(key="managed-by", value="orkes-provision")])
    kept = Application(id="k", name="greetings-worker", tags=[Tag(key="managed-by", value="orkes-provision")])
    state = _state(kept, roles={"WORKER", "METADATA_API"},
                   grants={("TASK_DEF", "greetings"): {"EXECUTE"}, ("TASK_DEF", "other"): {"EXECUTE"}})
    state.by_name["old"] = [managed]
    state.by_name["someone-elses"] = [Application(id="u", name="someone-elses")]
    changes = plan_prune(state, [_spec()], [managed, kept])
    assert [(c.kind, c.target) for c in changes] == [("delete_app", "old"), ("remove_role", "METADATA_API"),
                                                   ("revoke", "TASK_DEF other")]


def test_flags_with_an_unknown_role_give_a_usage_error_naming_the_allowed_roles() -> None:
    with pytest.raises(UsageError) as err:
        app_spec_from_flags("w", roles=("WROKER",))
    assert "unknown role WROKER" in err.value.message
    assert "WORKER" in err.value.message


def test_flags_with_an_empty_task_name_give_a_usage_error() -> None:
    with pytest.raises(UsageError) as err:
        app_spec_from_flags("w", tasks=("  ",))
    assert "must not be blank" in err.value.message


def test_plan_never_contains_a_secret_field() -> None:
    plan = plan_apps(_state(), [_spec()], server=SERVER, key_status={}, store_names={"greetings-worker": "env-file:/x"})
    text = repr(plan.to_dict()) + plan.render()
    assert "secret" not in text.lower()
