"""The typed changes: what ``plan --json`` shows of each, and the waits the job graph derives from their fields."""

from __future__ import annotations

import typing

from orkes_provision.access import changes as ch
from orkes_provision.access.jobs import job_graph


def _concrete() -> list[type[ch.Change]]:
    found: list[type[ch.Change]] = []
    pending: list[type[ch.Change]] = [ch.Change]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "kind" in vars(cls):
            found.append(cls)
    return found


def test_every_action_name_has_a_type_and_only_grants_and_revokes_have_two() -> None:
    kinds = [cls.kind for cls in _concrete()]
    assert sorted(set(kinds)) == sorted(typing.get_args(ch.ChangeKind))
    assert sorted(k for k in set(kinds) if kinds.count(k) > 1) == ["grant", "revoke"]  # to an application or a group


def test_json_of_an_application_grant_and_a_group_grant() -> None:
    on = ch.GrantTarget("WORKFLOW_DEF", "payments")
    app_grant = ch.Grant(app="billing", app_id="id-1", on=on, access=("EXECUTE", "READ"))
    group_grant = ch.GroupGrant(group="ops", on=on, access=("READ",), reason="declared")
    assert app_grant.to_dict() == {"action": "grant", "app": "billing", "target": "WORKFLOW_DEF payments",
                                   "access": ["EXECUTE", "READ"], "appId": "id-1"}
    assert group_grant.to_dict() == {"action": "grant", "app": None, "target": "WORKFLOW_DEF payments",
                                     "access": ["READ"], "group": "ops", "reason": "declared"}
    assert app_grant.describe() == "+ grant EXECUTE+READ on WORKFLOW_DEF payments to billing"
    assert group_grant.describe(symbol=False) == "grant READ on WORKFLOW_DEF payments to group ops (declared)"


def test_a_workflow_change_carries_name_and_version_and_shows_them_as_before() -> None:
    change = ch.UpdateWorkflow(name="payments", version=3, reason="differs in tasks")
    assert (change.target, change.describe()) == ("payments v3", "~ update workflow definition payments v3 "
                                                                 "(differs in tasks)")
    assert ch.RotateKey(app="billing", key_id="k-1").to_dict() == {"action": "rotate_key", "app": "billing",
                                                                   "target": "k-1"}


def test_a_grant_waits_for_the_definition_it_is_on_only_when_the_plan_registers_it() -> None:
    registered = ch.RegisterTask(name="new-task")
    workflow = ch.RegisterWorkflow(name="flow", version=2)
    on_new = ch.Grant(app="a", app_id="id-a", on=ch.GrantTarget("TASK_DEF", "new-task"), access=("EXECUTE",))
    on_old = ch.Grant(app="a", app_id="id-a", on=ch.GrantTarget("TASK_DEF", "old-task"), access=("EXECUTE",))
    on_flow = ch.GroupGrant(group="g", on=ch.GrantTarget("WORKFLOW_DEF", "flow"), access=("READ",))
    jobs = job_graph([registered, workflow, on_new, on_old, on_flow])
    job_of = {change: job for job in jobs for change in job.changes}
    assert job_of[on_new].needs == {job_of[registered]}
    assert job_of[on_old].needs == set()
    assert job_of[on_flow].needs == {job_of[workflow]}
    assert job_of[workflow].needs == {job_of[registered]}
    assert jobs[0].batch and jobs[0].changes == [registered]


def test_deletions_wait_for_every_job_but_the_task_batch_and_other_deletions() -> None:
    plan = [ch.RegisterTask(name="t"), ch.CreateUser(user="ada"), ch.AddUserRole(user="ada", role="USER"),
            ch.AddRole(app="b", app_id="id-b", role="WORKER"),
            ch.DeleteApp(app="x", app_id="id-x"), ch.DeleteApp(app="y", app_id="id-y")]
    jobs = job_graph(plan)
    job_of = {change: job for job in jobs for change in job.changes}
    assert job_of[plan[1]] is job_of[plan[2]]  # the user's changes are one upsert
    assert job_of[plan[4]].needs == {job_of[plan[1]], job_of[plan[3]]}
    assert [job.changes[0] for job in jobs][-2:] == [plan[4], plan[5]]
