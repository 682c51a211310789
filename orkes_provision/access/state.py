"""Reading the server's current state for a set of applications (and users and groups), in parallel.

Only reads happen here; ``plan.py`` compares the result with the desired state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orkes_provision.errors import Conflict
from orkes_provision.orkes.models import (
    AccessKey,
    Application,
    GrantedAccess,
    Group,
    Role,
    TaskDef,
    User,
    app_subject,
)

if TYPE_CHECKING:
    from orkes_provision.orkes.client import OrkesClient



@dataclass
class AppState:
    """What the server holds for one existing application."""

    app: Application
    roles: set[str]
    grants: dict[tuple[str, str], set[str]]
    keys: list[AccessKey]

    @property
    def active_key_ids(self) -> set[str]:
        return {k.id for k in self.keys if k.status == "ACTIVE"}


@dataclass
class GroupState:
    """What the server holds for one existing group: the group (description, roles), its members'
    ids and the grants given to ``GROUP <id>``."""

    group: Group
    members: set[str]
    grants: dict[tuple[str, str], set[str]]


@dataclass
class PeopleState:
    """Every user (people, not applications) and group on the server by id, and the members and
    grants of the groups we care about (``groups``: only those that exist)."""

    users: dict[str, User] = field(default_factory=dict)
    all_groups: dict[str, Group] = field(default_factory=dict)
    groups: dict[str, GroupState] = field(default_factory=dict)


@dataclass
class RolesState:
    """The custom roles on the server by name, with their permissions, and (when asked for) the permissions
    a custom role may hold (``catalogue``; None when not read)."""

    custom: dict[str, Role] = field(default_factory=dict)
    catalogue: frozenset[str] | None = None


def read_roles(client: OrkesClient, *, catalogue: bool = False) -> RolesState:
    """The custom roles (one request) and, with ``catalogue``, the permission catalogue (one more)."""
    custom = {r.name: r for r in client.list_custom_roles()}
    if not catalogue:
        return RolesState(custom=custom)
    names = frozenset(p for permissions in client.list_role_permissions().values() for p in permissions)
    return RolesState(custom=custom, catalogue=names)


@dataclass
class ServerState:
    """The applications by name, the details of the ones we care about, and task names."""

    by_name: dict[str, list[Application]]
    apps: dict[str, AppState] = field(default_factory=dict)
    task_names: set[str] = field(default_factory=set)
    # The task definitions themselves (by name), for comparing declared fields with the server's.
    task_defs: dict[str, TaskDef] = field(default_factory=dict)
    # Users and groups; read only when asked for (``read_state(groups=...)``).
    people: PeopleState = field(default_factory=PeopleState)

    def resolve(self, name: str, app_id: str | None = None) -> Application | None:
        """The one application called ``name`` (or with ``app_id``); Conflict when ambiguous."""
        matches = self.by_name.get(name, [])
        if app_id is not None:
            chosen = [a for a in matches if a.id == app_id]
            if not chosen:
                raise Conflict(f"no application '{name}' has id {app_id}",
                               f"ids of '{name}': {', '.join(a.id for a in matches) or 'none'}")
            return chosen[0]
        if len(matches) > 1:
            ids = ", ".join(sorted(a.id for a in matches))
            raise Conflict(f"{len(matches)} applications are named '{name}' (ids: {ids}); nothing was changed",
                           "pick one with --app-id ID, or delete the extras with 'provision apps delete ID'")
        return matches[0] if matches else None


def read_app_state(client: OrkesClient, app: Application) -> AppState:
    user = client.get_app_user(app.id)
    granted = client.get_user_permissions(app_subject(app.id).id)
    keys = client.list_keys(app.id)
    return AppState(app=app, roles=user.role_names, grants=grants_by_target(granted), keys=keys)


def grants_by_target(granted: Iterable[GrantedAccess]) -> dict[tuple[str, str], set[str]]:
    """Access held per target, as it was granted.

    Orkes lists a grant on a ``TAG`` as one entry per resource carrying the tag, each with
    ``"tag": "key:value"`` (its docs' permission listings): such entries are the ``("TAG", key:value)``
    grant, not grants on those resources, so granting the tag again, drift and ``--prune`` see what
    was declared. A server that lists the raw ``TAG`` target is read the same way.
    """
    grants: dict[tuple[str, str], set[str]] = {}
    for entry in granted:
        target = ("TAG", entry.tag) if entry.tag else (entry.target.type, entry.target.id)
        grants.setdefault(target, set()).update(a.upper() for a in entry.access)
    return grants


def read_state(client: OrkesClient, names: Iterable[str], *, app_ids: dict[str, str | None] | None = None,
               parallelism: int = 16, with_tasks: bool = True, groups: Iterable[str] | None = None,
               skip_ambiguous: bool = False) -> ServerState:
    """Read the applications called ``names`` with their roles, grants and keys; with ``groups``
    (ids, possibly none) also every user and group, and the members and grants of those groups.

    A name several applications share raises ``Conflict``, or with ``skip_ambiguous`` is not read
    (``by_name`` still lists them, for a report that names them)."""
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        # The task list does not depend on the applications: fetch both at once.
        tasks = pool.submit(client.list_task_defs) if with_tasks else None
        # Every user, the applications' own users with their roles included (``apps=true``).
        users = pool.submit(client.list_users, True) if groups is not None else None
        all_groups = pool.submit(client.list_groups) if groups is not None else None
        applications = client.list_applications()
        by_name: dict[str, list[Application]] = {}
        for application in applications:
            by_name.setdefault(application.name, []).append(application)
        state = ServerState(by_name=by_name)
        wanted = _wanted(state, names, app_ids or {}, skip_ambiguous=skip_ambiguous)
        # Each application's reads are independent: submit them all, so that N applications take
        # ceil(2N / parallelism) round trips rather than 2 * ceil(N / parallelism).
        perms = [pool.submit(client.get_user_permissions, app_subject(a.id).id) for a in wanted]
        keys = [pool.submit(client.list_keys, a.id) for a in wanted]
        if users is None and len(wanted) > parallelism:
            users = pool.submit(client.list_users, True)
        roles = app_roles(client, pool, wanted, users.result() if users is not None else None)
        if users is not None and all_groups is not None:
            state.people = read_people(client, pool, users.result(), all_groups.result(), groups or ())
        for app, granted, app_keys in zip(wanted, perms, keys, strict=True):
            state.apps[app.id] = AppState(app=app, roles=roles[app.id], grants=grants_by_target(granted.result()),
                                          keys=app_keys.result())
        if tasks is not None:
            task_defs = tasks.result()
            state.task_names = {t.name for t in task_defs}
            state.task_defs = {t.name: t for t in task_defs}
    return state



def _wanted(state: ServerState, names: Iterable[str], app_ids: Mapping[str, str | None], *,
            skip_ambiguous: bool) -> list[Application]:
    """The applications ``names`` resolve to (``Conflict`` for a shared name, unless skipped)."""
    wanted: list[Application] = []
    for name in dict.fromkeys(names):
        if skip_ambiguous and len(state.by_name.get(name, [])) > 1:
            continue
        found = state.resolve(name, app_ids.get(name))
        if found is not None:
            wanted.append(found)
    return wanted


def app_roles(client: OrkesClient, pool: ThreadPoolExecutor, apps: list[Application],
              users: list[User] | None) -> dict[str, set[str]]:
    """Each application's roles (by id): from ``users`` (a list with the applications' users) where
    it has them, else from one read of each application's user.

    A list replaces one read per application when there are more applications than reads in flight;
    with fewer, the reads take one round trip anyway and the list, which holds every person too,
    is not worth reading.
    """
    listed = {u.id: u.role_names for u in users or [] if u.application_user}
    missing = [a for a in apps if app_subject(a.id).id not in listed]
    read = dict(zip([a.id for a in missing], pool.map(client.get_app_user, [a.id for a in missing]), strict=True))
    return {a.id: read[a.id].role_names if a.id in read else listed[app_subject(a.id).id] for a in apps}


def read_people(client: OrkesClient, pool: ThreadPoolExecutor, users: list[User], all_groups: list[Group],
                 wanted: Iterable[str]) -> PeopleState:
    """The members and grants of the ``wanted`` groups that exist, two reads each, all at once."""
    people = PeopleState(users={u.id: u for u in users if not u.application_user},
                         all_groups={g.id: g for g in all_groups})
    existing = [people.all_groups[g] for g in dict.fromkeys(wanted) if g in people.all_groups]
    members = [pool.submit(client.get_group_users, g.id) for g in existing]
    granted = [pool.submit(client.get_group_permissions, g.id) for g in existing]
    for group, group_members, group_grants in zip(existing, members, granted, strict=True):
        people.groups[group.id] = GroupState(group=group, members={u.id for u in group_members.result()},
                                             grants=grants_by_target(group_grants.result()))
    return people


def find_application(client: OrkesClient, ref: str) -> Application:
    """The application named ``ref``, else the one whose id is ``ref``."""
    from orkes_provision.errors import NotFound

    named = [a for a in client.list_applications() if a.name == ref]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        ids = ", ".join(sorted(a.id for a in named))
        raise Conflict(f"{len(named)} applications are named '{ref}' (ids: {ids})", "pass the id instead of the name")
    try:
        return client.get_application(ref)
    except NotFound:
        raise NotFound(f"no application is named '{ref}' or has that id",
                       "'provision apps list' shows the applications") from None
