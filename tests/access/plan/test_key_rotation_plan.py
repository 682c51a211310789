"""``keyMaxAge`` in the pure plan: which key's age counts, when a rotation is planned, and what it waits for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orkes_provision.access.changes import Grant, GrantTarget, Revoke, RotateKey
from orkes_provision.access.jobs import job_graph
from orkes_provision.access.keyage import oldest_active, plan_key_rotations
from orkes_provision.access.plan import KeyStatus, plan_apps
from orkes_provision.access.spec import AppSpec, GrantSpec
from orkes_provision.access.state import AppState, ServerState
from orkes_provision.orkes.models import AccessKey, Application

NOW = datetime(2027, 1, 1, tzinfo=UTC)
APP = Application(id="app-1", name="aging")


def ms(days_ago: float) -> int:
    return int((NOW - timedelta(days=days_ago)).timestamp() * 1000)


def key(key_id: str, days_ago: float | None, status: str = "ACTIVE") -> AccessKey:
    return AccessKey(id=key_id, created_at=None if days_ago is None else ms(days_ago), status=status)  # type: ignore[arg-type]


def planned(keys: list[AccessKey], *, stored: str | None = "k-new", limit: timedelta | None = timedelta(days=90),
            new_key: bool = False) -> list[tuple[str, str, str]]:
    state = ServerState(by_name={APP.name: [APP]}, task_names={"t"})
    state.apps[APP.id] = AppState(app=APP, roles={"WORKER"}, grants={("TASK_DEF", "t"): {"EXECUTE"}}, keys=keys)
    spec = AppSpec(name=APP.name, roles=("WORKER",), grants=(GrantSpec(id="t"),), store="memory", key_max_age=limit,
                   new_key=new_key)
    status = KeyStatus(stored, stored is not None)
    plan = plan_apps(state, [spec], server="s", key_status={APP.name: status}, store_names={APP.name: "memory"})
    plan_key_rotations(plan, state, NOW)
    return [(c.kind, c.target, c.reason) for c in plan.changes]


def test_the_oldest_active_key_counts_and_inactive_ones_do_not() -> None:
    keys = [key("k-inactive", 400, "INACTIVE"), key("k-old", 95), key("k-new", 3)]
    assert planned(keys) == [("rotate_key", "k-old", "key k-old is 95 days old, keyMaxAge 90d")]
    assert planned([key("k-inactive", 400, "INACTIVE"), key("k-new", 89)]) == []


def test_a_key_without_a_creation_time_is_treated_as_old() -> None:
    assert oldest_active([key("k-new", 3), key("k-unknown", None)], NOW).key_id == "k-unknown"  # type: ignore[union-attr]
    assert planned([key("k-new", 3), key("k-unknown", None)]) == [
        ("rotate_key", "k-unknown", "key k-unknown has no creation time on the server, keyMaxAge 90d")]


def test_no_rotation_without_a_limit_nor_when_the_plan_makes_a_new_key() -> None:
    old = [key("k-new", 95)]
    assert planned(old, limit=None) == []
    assert [k for k, _, _ in planned(old, stored=None)] == ["create_key"]  # no usable key stored: a new one
    assert [k for k, _, _ in planned(old, new_key=True)] == ["create_key"]


def test_a_rotation_waits_for_its_applications_additions_and_removals_only() -> None:
    changes = [Grant(app="aging", on=GrantTarget("TASK_DEF", "t"), access=("EXECUTE",), app_id="app-1"),
               Grant(app="other", on=GrantTarget("TASK_DEF", "t"), access=("EXECUTE",), app_id="app-2"),
               Revoke(app="aging", on=GrantTarget("TASK_DEF", "u"), access=("EXECUTE",), app_id="app-1"),
               RotateKey(app="aging", key_id="k-old", app_id="app-1")]
    jobs = job_graph(changes)
    job_of = {job.changes[0]: job for job in jobs}
    rotation = job_of[changes[3]]
    assert rotation.needs == {job_of[changes[0]], job_of[changes[2]]}  # its verification reads what these settle
    assert jobs.index(rotation) > jobs.index(job_of[changes[0]])
