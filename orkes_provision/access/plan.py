"""The difference between the desired applications, users and groups and the server: pure functions.

A plan never holds a secret: keys appear as key ids and store descriptions only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orkes_provision.access.changes import (
    AddGroupRole,
    AddMember,
    AddRole,
    AddUserRole,
    Change,
    CreateApp,
    CreateGroup,
    CreateKey,
    CreateRole,
    CreateUser,
    DeleteApp,
    Grant,
    GrantTarget,
    GroupGrant,
    GroupRevoke,
    RegisterTask,
    RemoveGroupRole,
    RemoveMember,
    RemoveRole,
    RemoveUserRole,
    Revoke,
    TagApp,
    UpdateGroup,
    UpdateRole,
    UpdateUser,
)
from orkes_provision.access.spec import IMPLICIT_ROLE_PERMISSIONS, AppSpec, GrantSpec, GroupSpec, RoleSpec, UserSpec
from orkes_provision.access.state import PeopleState, ServerState
from orkes_provision.credentials.stores import StoredKey
from orkes_provision.errors import NotFound
from orkes_provision.orkes.models import Group, Role


@dataclass
class KeyStatus:
    """What the store holds for an application, checked against the server (no secret)."""

    key_id: str | None
    usable: bool
    reason: str = ""


def key_status(state: ServerState, spec: AppSpec, stored: StoredKey | None,
               authenticates: Callable[[], bool]) -> KeyStatus:
    """Is the stored key an ACTIVE key of this application that the server accepts?

    ``authenticates`` is asked only when the rest holds, so a token exchange is spent only then.
    """
    if stored is None:
        return KeyStatus(None, False, "no key stored")
    existing = state.resolve(spec.name, spec.app_id)
    app_state = state.apps.get(existing.id) if existing else None
    if app_state is None or stored.key_id not in app_state.active_key_ids:
        return KeyStatus(stored.key_id, False, f"stored key {stored.key_id} is not an ACTIVE key of {spec.name}")
    if not authenticates():
        return KeyStatus(stored.key_id, False, f"the server rejects the stored secret of key {stored.key_id}")
    return KeyStatus(stored.key_id, True)


@dataclass
class AppPlan:
    spec: AppSpec
    app_id: str | None
    known_key_ids: set[str]
    reused_key_id: str | None
    changes: list[Change] = field(default_factory=list)


@dataclass(frozen=True)
class UserUpsert:
    """The whole user record one ``PUT /api/users/{id}`` sends: what the user holds after it."""

    name: str
    roles: tuple[str, ...]
    groups: tuple[str, ...]


@dataclass(frozen=True)
class GroupUpsert:
    """The whole group record one ``PUT /api/groups/{id}`` sends (``defaultAccess`` kept as the server has it)."""

    description: str
    roles: tuple[str, ...]
    default_access: dict[str, list[str]] | None = field(default=None, hash=False, compare=False)


@dataclass
class Plan:
    server: str
    apps: list[AppPlan]
    task_changes: list[Change] = field(default_factory=list)
    prune_changes: list[Change] = field(default_factory=list)
    # Users' and groups' changes (additions and, with --prune, removals), after the applications'.
    people_changes: list[Change] = field(default_factory=list)
    user_upserts: dict[str, UserUpsert] = field(default_factory=dict)
    group_upserts: dict[str, GroupUpsert] = field(default_factory=dict)
    # Custom roles created or updated, before the users and groups that hold them; what each then holds.
    role_changes: list[Change] = field(default_factory=list)
    role_upserts: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def changes(self) -> list[Change]:
        ordered = list(self.task_changes)
        for app_plan in self.apps:
            ordered.extend(app_plan.changes)
        ordered.extend(self.role_changes)
        ordered.extend(self.people_changes)
        ordered.extend(self.prune_changes)
        return ordered

    @property
    def empty(self) -> bool:
        return not self.changes

    def counts(self) -> dict[str, int]:
        changes = self.changes
        return {"create": sum(1 for c in changes if c.symbol == "+"),
                "change": sum(1 for c in changes if c.symbol == "~"),
                "delete": sum(1 for c in changes if c.symbol == "-")}

    def to_dict(self) -> dict[str, Any]:
        return {"server": self.server, "changes": [c.to_dict() for c in self.changes], "summary": self.counts()}

    def render(self, marks: Mapping[Change, str] | None = None) -> str:
        """One line per change; a change in ``marks`` (e.g. a self-lockout) carries its mark after it."""
        if self.empty:
            return "No changes: the server already matches."
        marks = marks or {}
        lines = [c.describe() + (f"  [!] {marks[c]}" if c in marks else "") for c in self.changes]
        counts = self.counts()
        lines.append(f"Plan: {counts['create']} to add, {counts['change']} to change, {counts['delete']} to delete.")
        return "\n".join(lines)


def plan_apps(state: ServerState, specs: Sequence[AppSpec], *, server: str,
              key_status: Mapping[str, KeyStatus], store_names: Mapping[str, str],
              tasks_to_register: Iterable[str] = (), managed_tag: tuple[str, str] | None = None) -> Plan:
    """Compare ``specs`` with ``state``. ``key_status`` and ``store_names`` are keyed by app name."""
    registering = sorted(set(tasks_to_register) - state.task_names)
    known_tasks = state.task_names | set(registering)
    missing = sorted({t for spec in specs for t in spec.task_names} - known_tasks)
    if missing:
        raise NotFound(
            f"task definition{'s' if len(missing) > 1 else ''} not found on the server: {', '.join(missing)}",
            "register them first, or add --register-tasks to register a minimal definition")
    plan = Plan(server=server, apps=[],
                task_changes=[RegisterTask(name=name) for name in registering])
    for spec in specs:
        plan.apps.append(_plan_app(state, spec, key_status.get(spec.name), store_names.get(spec.name),
                                   managed_tag))
    return plan


def _plan_app(state: ServerState, spec: AppSpec, key: KeyStatus | None, store_name: str | None,
              managed_tag: tuple[str, str] | None) -> AppPlan:
    existing = state.resolve(spec.name, spec.app_id)
    current = state.apps.get(existing.id) if existing else None
    app_id = existing.id if existing else None
    changes: list[Change] = []
    if existing is None:
        changes.append(CreateApp(app=spec.name))
    elif managed_tag and spec.owned and not any((t.key, t.value) == managed_tag for t in existing.tags):
        changes.append(TagApp(app=spec.name, app_id=app_id, tag=managed_tag))
    have_roles = current.roles if current else set()
    changes.extend(AddRole(app=spec.name, app_id=app_id, role=role)
                   for role in spec.roles if role not in have_roles)
    reused: str | None = None
    if spec.store is not None:
        reason = _new_key_reason(spec, key, current.active_key_ids if current else None)
        if reason is None:
            reused = key.key_id if key else None
        else:
            changes.append(CreateKey(app=spec.name, app_id=app_id, store=store_name or spec.store, reason=reason))
    changes.extend(Grant(app=spec.name, app_id=app_id, on=on, access=access)
                   for on, access in _missing_access(spec.grants, current.grants if current else {}))
    return AppPlan(spec=spec, app_id=app_id, known_key_ids={k.id for k in current.keys} if current else set(),
                   reused_key_id=reused, changes=changes)


def _new_key_reason(spec: AppSpec, key: KeyStatus | None, active: set[str] | None) -> str | None:
    """Why the application needs a new key, or None when the stored one is kept (``active``: None when
    the application does not exist yet)."""
    if spec.new_key:
        return "--new-key"
    if key is None:
        return "no key stored"
    if active is not None and key.key_id and key.key_id not in active:
        return f"stored key {key.key_id} is not an ACTIVE key of this application"
    if key.usable and active is not None and key.key_id in active:
        return None
    return key.reason or "no key stored"


def _missing_access(grants: Iterable[GrantSpec],
                    have: Mapping[tuple[str, str], set[str]]) -> Iterator[tuple[GrantTarget, tuple[str, ...]]]:
    """The access each declared grant gives that the server does not show yet."""
    for grant in grants:
        missing = tuple(a for a in grant.access if a not in have.get(grant.key, set()))
        if missing:
            yield GrantTarget(grant.type, grant.id), missing


def _extra_access(have: Mapping[tuple[str, str], set[str]],
                  grants: Iterable[GrantSpec]) -> Iterator[tuple[GrantTarget, tuple[str, ...]]]:
    """The access the server shows that no declared grant gives (what --prune revokes)."""
    desired = {g.key: set(g.access) for g in grants}
    for (target_type, target_id), access in sorted(have.items()):
        extra = tuple(sorted(access - desired.get((target_type, target_id), set())))
        if extra:
            yield GrantTarget(target_type, target_id), extra


def plan_prune(state: ServerState, specs: Sequence[AppSpec], managed: Iterable[Any]) -> list[Change]:
    """Deletions for managed applications absent from ``specs``, and extra roles and grants of those present.

    ``managed`` are the applications carrying this environment's ownership tag: nothing else is touched.
    """
    wanted = {s.name for s in specs}
    changes: list[Change] = []
    for app in managed:
        if app.name not in wanted:
            changes.append(DeleteApp(app=app.name, app_id=app.id))
    by_name = {s.name: s for s in specs}
    for app_state in sorted(state.apps.values(), key=lambda a: a.app.name):
        spec = by_name.get(app_state.app.name)
        if spec is None or not spec.owned or app_state.app not in list(managed):
            continue
        for role in sorted(app_state.roles - set(spec.roles)):
            changes.append(RemoveRole(app=spec.name, app_id=app_state.app.id, role=role))
        changes.extend(Revoke(app=spec.name, app_id=app_state.app.id, on=on, access=extra)
                       for on, extra in _extra_access(app_state.grants, spec.grants))
    return changes


def plan_roles(server: dict[str, Role], specs: Sequence[RoleSpec], *,
               prune: bool = False) -> tuple[list[Change], dict[str, tuple[str, ...]]]:
    """Compare declared custom roles with the server's: the changes, and the permissions each role changed
    is sent (its whole list: ``PUT /api/roles/{name}`` replaces it).

    Without ``prune`` a role gains what it lacks and keeps the rest; with ``prune`` it also loses what the
    file does not give it. The permissions Orkes adds to every custom role are never a difference. Roles
    the file does not declare are never changed nor deleted, like users and groups: nothing on the server
    marks a role as this environment's own.
    """
    changes: list[Change] = []
    upserts: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        current = server.get(spec.name)
        want = set(spec.permissions)
        if current is None:
            changes.append(CreateRole(role=spec.name, permissions=tuple(sorted(want))))
            upserts[spec.name] = tuple(sorted(want))
            continue
        have = current.permission_names - IMPLICIT_ROLE_PERMISSIONS
        missing = sorted(want - have)
        extra = sorted(have - want) if prune else []
        if missing or extra:
            changes.append(UpdateRole(role=spec.name, added=tuple(missing), removed=tuple(extra)))
            upserts[spec.name] = tuple(sorted((have - set(extra)) | want))
    return changes, upserts


@dataclass
class PeoplePlan:
    """What ``plan_people`` found: additions in file order (users, then groups), removals (only with
    prune), and the upserts that carry out each user's and group's own changes."""

    changes: list[Change] = field(default_factory=list)
    removals: list[Change] = field(default_factory=list)
    user_upserts: dict[str, UserUpsert] = field(default_factory=dict)
    group_upserts: dict[str, GroupUpsert] = field(default_factory=dict)


def plan_people(people: PeopleState, users: Sequence[UserSpec], groups: Sequence[GroupSpec], *,
                prune: bool = False) -> PeoplePlan:
    """Compare declared users and groups with the server.

    Without ``prune`` only additions: missing users, groups, roles, members and grants (an upsert
    then sends the server's roles plus the declared ones). With ``prune`` the declared users and
    groups also lose the roles, members and grants the file does not give them. Users and groups
    the file does not declare are never changed: Orkes has no tags on them, so nothing marks them
    as this environment's own.
    """
    declared_users = {u.id for u in users}
    unknown = sorted({m for g in groups for m in g.members} - declared_users - set(people.users))
    if unknown:
        raise NotFound(f"group member{'s' if len(unknown) > 1 else ''} not found: {', '.join(unknown)} "
                          "(neither declared under [[users]] nor a user on the server)",
                          "declare them under [[users]], or fix the ids in members")
    out = PeoplePlan()
    for user in users:
        _plan_user(people, user, prune, out)
    for group in groups:
        _plan_group(people, group, prune, out)
    return out


def _plan_user(people: PeopleState, spec: UserSpec, prune: bool, out: PeoplePlan) -> None:
    current = people.users.get(spec.id)
    have = current.role_names if current else set()
    changes: list[Change] = []
    if current is None:
        changes.append(CreateUser(user=spec.id, reason=f"name {spec.name!r}" if spec.name else ""))
    elif spec.name is not None and spec.name != current.name:
        changes.append(UpdateUser(user=spec.id, reason=f"name: {current.name!r} -> {spec.name!r}"))
    changes.extend(AddUserRole(user=spec.id, role=role) for role in spec.roles if role not in have)
    extra = sorted(have - set(spec.roles)) if prune else []
    removals: list[Change] = [RemoveUserRole(user=spec.id, role=role) for role in extra]
    if changes or removals:
        name = spec.name or (current.name if current and current.name else spec.id)
        out.user_upserts[spec.id] = UserUpsert(name=name, roles=tuple(sorted((have - set(extra)) | set(spec.roles))),
                                               groups=tuple(current.group_ids) if current else ())
    out.changes.extend(changes)
    out.removals.extend(removals)


def _plan_group(people: PeopleState, spec: GroupSpec, prune: bool, out: PeoplePlan) -> None:
    state = people.groups.get(spec.id)
    changes, removals = _plan_group_record(state.group if state else None, spec, prune, out)
    members = state.members if state else set()
    changes.extend(AddMember(group=spec.id, member=m) for m in spec.members if m not in members)
    have_grants = state.grants if state else {}
    changes.extend(GroupGrant(group=spec.id, on=on, access=access)
                   for on, access in _missing_access(spec.grants, have_grants))
    if prune:
        removals.extend(RemoveMember(group=spec.id, member=m) for m in sorted(members - set(spec.members)))
        removals.extend(GroupRevoke(group=spec.id, on=on, access=extra)
                        for on, extra in _extra_access(have_grants, spec.grants))
    out.changes.extend(changes)
    out.removals.extend(removals)


def _plan_group_record(current: Group | None, spec: GroupSpec, prune: bool,
                       out: PeoplePlan) -> tuple[list[Change], list[Change]]:
    """The group's own changes (created, described, roles), carried out by one upsert."""
    have = current.role_names if current else set()
    changes: list[Change] = []
    if current is None:
        changes.append(CreateGroup(group=spec.id))
    elif spec.description is not None and spec.description != (current.description or ""):
        changes.append(UpdateGroup(group=spec.id,
                                   reason=f"description: {current.description!r} -> {spec.description!r}"))
    changes.extend(AddGroupRole(group=spec.id, role=role) for role in spec.roles if role not in have)
    extra = sorted(have - set(spec.roles)) if prune else []
    removals: list[Change] = [RemoveGroupRole(group=spec.id, role=role) for role in extra]
    if changes or removals:
        kept = (current.description or "") if current is not None else ""
        out.group_upserts[spec.id] = GroupUpsert(
            description=spec.description if spec.description is not None else kept,
            roles=tuple(sorted((have - set(extra)) | set(spec.roles))),
            default_access=current.default_access if current is not None else None)
    return changes, removals
