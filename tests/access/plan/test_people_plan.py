"""Users and groups in the pure plan: what is added, what --prune removes, and what each upsert sends."""

from __future__ import annotations

import pytest

from orkes_provision.access.plan import GroupUpsert, UserUpsert, plan_people
from orkes_provision.access.spec import GrantSpec, GroupSpec, UserSpec
from orkes_provision.access.state import GroupState, PeopleState
from orkes_provision.errors import ConfigError
from orkes_provision.orkes.models import Group, Role, User

ADA, BOB = "ada@example.com", "bob@example.com"
FLOW = GrantSpec(type="WORKFLOW_DEF", id="payments_flow", access=("READ", "EXECUTE"))


def _user(user_id: str, name: str, *roles: str, groups: tuple[str, ...] = ()) -> User:
    return User(id=user_id, name=name, roles=[Role(name=r) for r in roles], groups=[Group(id=g) for g in groups])


def _group(group_id: str, description: str, *roles: str, members: set[str] | None = None,
           grants: dict[tuple[str, str], set[str]] | None = None,
           default_access: dict[str, list[str]] | None = None) -> GroupState:
    group = Group(id=group_id, description=description, roles=[Role(name=r) for r in roles],
                  default_access=default_access or {})
    return GroupState(group=group, members=members or set(), grants=grants or {})


def _people(users: list[User], groups: list[GroupState]) -> PeopleState:
    return PeopleState(users={u.id: u for u in users}, all_groups={g.group.id: g.group for g in groups},
                       groups={g.group.id: g for g in groups})


def _lines(changes: list[object]) -> list[str]:
    return [c.describe() for c in changes]  # type: ignore[attr-defined]


def test_an_empty_server_gets_each_user_and_group_with_roles_members_and_grants() -> None:
    planned = plan_people(PeopleState(), [UserSpec(id=ADA, name="Ada Lovelace", roles=("USER",))],
                          [GroupSpec(id="payments-team", description="Payments", roles=("USER",), members=(ADA,),
                                     grants=(FLOW,))])
    assert _lines(planned.changes) == [
        "+ create user ada@example.com (name 'Ada Lovelace')",
        "+ add role USER to user ada@example.com",
        "+ create group payments-team",
        "+ add role USER to group payments-team",
        "+ add member ada@example.com to group payments-team",
        "+ grant EXECUTE+READ on WORKFLOW_DEF payments_flow to group payments-team",
    ]
    assert planned.removals == []
    assert planned.user_upserts == {ADA: UserUpsert(name="Ada Lovelace", roles=("USER",), groups=())}
    assert planned.group_upserts == {"payments-team": GroupUpsert(description="Payments", roles=("USER",))}
    assert planned.changes[-1].to_dict() == {"action": "grant", "app": None, "target": "WORKFLOW_DEF payments_flow",
                                             "access": ["EXECUTE", "READ"], "group": "payments-team"}


def test_a_matching_server_plans_nothing_and_omitted_fields_keep_the_servers_values() -> None:
    people = _people([_user(ADA, "Ada King", "USER")],
                     [_group("payments-team", "Set in the UI", "USER", members={ADA},
                             grants={("WORKFLOW_DEF", "payments_flow"): {"READ", "EXECUTE", "UPDATE"}})])
    planned = plan_people(people, [UserSpec(id=ADA, roles=("USER",))],
                          [GroupSpec(id="payments-team", roles=("USER",), members=(ADA,), grants=(FLOW,))])
    assert (planned.changes, planned.removals, planned.user_upserts, planned.group_upserts) == ([], [], {}, {})


def test_without_prune_upserts_add_to_what_the_server_holds_and_keep_groups_and_default_access() -> None:
    people = _people([_user(ADA, "Ada", "ADMIN", groups=("ops",))],
                     [_group("payments-team", "Old", "WORKER", default_access={"TASK_DEF": ["READ"]})])
    planned = plan_people(people, [UserSpec(id=ADA, name="Ada Lovelace", roles=("USER",))],
                          [GroupSpec(id="payments-team", description="New", roles=("USER",))])
    assert _lines(planned.changes) == [
        "~ update user ada@example.com (name: 'Ada' -> 'Ada Lovelace')",
        "+ add role USER to user ada@example.com",
        "~ update group payments-team (description: 'Old' -> 'New')",
        "+ add role USER to group payments-team",
    ]
    assert planned.user_upserts[ADA] == UserUpsert(name="Ada Lovelace", roles=("ADMIN", "USER"), groups=("ops",))
    upsert = planned.group_upserts["payments-team"]
    assert (upsert.roles, upsert.default_access) == (("USER", "WORKER"), {"TASK_DEF": ["READ"]})


def test_prune_removes_from_declared_users_and_groups_what_the_file_does_not_give_them() -> None:
    people = _people([_user(ADA, "Ada", "ADMIN", "USER"), _user(BOB, "Bob"), _user("eve@example.com", "Eve", "ADMIN")],
                     [_group("payments-team", "Payments", "USER", "ADMIN", members={ADA, BOB},
                             grants={("WORKFLOW_DEF", "payments_flow"): {"READ", "EXECUTE", "DELETE"},
                                     ("TASK_DEF", "refund"): {"EXECUTE"}}),
                      _group("made-by-hand", "Not declared", "ADMIN", members={ADA})])
    users = [UserSpec(id=ADA, roles=("USER",))]
    groups = [GroupSpec(id="payments-team", roles=("USER",), members=(ADA,), grants=(FLOW,))]
    assert plan_people(people, users, groups).changes == []
    planned = plan_people(people, users, groups, prune=True)
    assert _lines(planned.removals) == [
        "- remove role ADMIN from user ada@example.com",
        "- remove role ADMIN from group payments-team",
        "- remove member bob@example.com from group payments-team",
        "- revoke EXECUTE on TASK_DEF refund from group payments-team",
        "- revoke DELETE on WORKFLOW_DEF payments_flow from group payments-team",
    ]
    # The user eve and the group made-by-hand are not declared: nothing marks them as this file's.
    assert all("eve" not in line and "made-by-hand" not in line for line in _lines(planned.removals))
    assert planned.user_upserts[ADA].roles == ("USER",)
    assert planned.group_upserts["payments-team"].roles == ("USER",)


def test_a_member_neither_declared_nor_on_the_server_stops_the_plan() -> None:
    people = _people([_user(BOB, "Bob")], [])
    with pytest.raises(ConfigError) as refused:
        plan_people(people, [UserSpec(id=ADA)], [GroupSpec(id="g", members=(ADA, BOB, "nobody@example.com"))])
    assert refused.value.message == ("group member not found: nobody@example.com (neither declared under [[users]] "
                                     "nor a user on the server)")


def test_a_new_user_without_a_name_is_named_by_its_id() -> None:
    planned = plan_people(PeopleState(), [UserSpec(id=BOB)], [])
    assert _lines(planned.changes) == ["+ create user bob@example.com"]
    assert planned.user_upserts[BOB] == UserUpsert(name=BOB, roles=(), groups=())
