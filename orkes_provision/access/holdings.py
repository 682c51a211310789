"""How an application holds access on a task or workflow definition, decided as the server decides it.

The one resolver ``provision explain`` and ``provision doctor`` share. The server's rules (the
sandbox's ``sandbox/access.py``, which follows the Orkes docs) give an application access on a
definition through any of:

- a role, its own or one of its groups': ``ADMIN`` everywhere, ``UNRESTRICTED_WORKER`` for
  executing any task, ``WORKFLOW_MANAGER`` for starting any workflow;
- being the definition's creator (``createdBy`` is ``app:<appId>``);
- a grant on the definition to the application itself (``USER app:<appId>``), to one of its groups
  (``GROUP <id>``), or to one of its roles (``ROLE <name>``);
- a grant on a tag the definition carries (``TAG key:value``; the server lists it per resource with
  ``"tag": "key:value"``), to the application or to one of its groups;
- for executing a task, a grant on the ``DOMAIN`` the worker polls in: it covers every task, but only
  for polls in that domain, so it counts only for the domains named (``--domain``).

What the application holds is read once (``read_access``: its user record with its groups, its own
grants and each group's); grants to roles are looked up per definition (``GET
/api/auth/authorization/{type}/{id}``), and only for what nothing else covers. Polling a task
also needs the ``WORKER`` role (or ``UNRESTRICTED_WORKER``): ``worker_roles`` says where it comes from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orkes_provision.errors import NotFound, ProvisionError
from orkes_provision.orkes.models import GrantedAccess, Target, app_user_id

if TYPE_CHECKING:
    from orkes_provision.orkes.client import OrkesClient
    from orkes_provision.orkes.models import Application

# Roles that hold an access on every definition of a kind (the sandbox's rules, from the Orkes docs).
_COVERING_ROLES: dict[tuple[str, str], tuple[str, ...]] = {
    ("TASK_DEF", "EXECUTE"): ("ADMIN", "UNRESTRICTED_WORKER"),
    ("WORKFLOW_DEF", "EXECUTE"): ("ADMIN", "WORKFLOW_MANAGER"),
}
POLLING_ROLES = ("WORKER", "UNRESTRICTED_WORKER", "ADMIN")


@dataclass(frozen=True)
class Way:
    """One way an access is held: ``how`` is role, creator, direct, group, tag, domain or role-grant;
    ``name`` the role, group, tag (``key:value``) or domain; ``group`` the group it comes through."""

    how: str
    name: str | None = None
    group: str | None = None

    def describe(self) -> str:
        through = f" of group {self.group}" if self.group else ""
        return {
            "role": f"role {self.name}" + (f" (from group {self.group})" if self.group else ""),
            "creator": "being its creator",
            "direct": "a grant to the application",
            "group": f"group {self.name}",
            "tag": f"tag {self.name}" + (f" (granted to group {self.group})" if self.group else ""),
            "domain": f"domain {self.name}{through} (polls in that domain only)",
            "role-grant": f"a grant to role {self.name}",
        }.get(self.how, self.how)

    def to_dict(self) -> dict[str, Any]:
        return {"how": self.how, "name": self.name, "group": self.group}


@dataclass(frozen=True)
class Holding:
    """Whether and how the application holds ``access`` on definition ``target_type`` ``name``."""

    target_type: str  # TASK_DEF | WORKFLOW_DEF
    name: str
    access: str = "EXECUTE"
    ways: tuple[Way, ...] = ()
    exists: bool = True
    other_domains: tuple[str, ...] = ()  # domains it is held in, none of them named

    @property
    def held(self) -> bool:
        return bool(self.ways)

    @property
    def resource(self) -> str:
        return f"{'task' if self.target_type == 'TASK_DEF' else 'workflow'} {self.name}"

    def describe(self) -> str:
        if not self.exists:
            return f"{self.resource} does not exist"
        if self.held:
            return f"{self.access} on {self.resource} through {', '.join(w.describe() for w in self.ways)}"
        domains = f" (only when polled in domain {', '.join(self.other_domains)})" if self.other_domains else ""
        return f"no {self.access} on {self.resource}{domains}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.target_type, "name": self.name, "access": self.access, "held": self.held,
                "exists": self.exists, "via": [w.to_dict() for w in self.ways],
                "otherDomains": list(self.other_domains)}


@dataclass
class AccessView:
    """What one application holds: its roles (role -> where from: ``None`` its own, else a group id)
    and its grants (each with the group it comes through, ``None`` for its own)."""

    app_id: str
    roles: dict[str, list[str | None]] = field(default_factory=dict)
    grants: list[tuple[str | None, GrantedAccess]] = field(default_factory=list)

    @property
    def user_id(self) -> str:
        return app_user_id(self.app_id)

    def role_ways(self, roles: tuple[str, ...]) -> list[Way]:
        return [Way("role", role, group) for role in roles for group in self.roles.get(role, [])]

    def targets(self, target_type: str) -> list[str]:
        """The definitions of ``target_type`` it holds a grant on, itself or through a group, tags included."""
        return sorted({g.target.id for _, g in self.grants if g.target.type == target_type})


def read_access(client: OrkesClient, application: Application, *, grants: bool = True) -> AccessView:
    """Its roles and grants, and its groups' (``GET /api/users/app:<id>``, ``/permissions`` of each);
    without ``grants``, the roles alone (reading grants is for admins only)."""
    user = client.get_app_user(application.id)
    view = AccessView(application.id)
    for role in sorted(user.role_names):
        view.roles.setdefault(role, []).append(None)
    for group in user.groups:
        for role in sorted(group.role_names):
            view.roles.setdefault(role, []).append(group.id)
    if not grants:
        return view
    view.grants = [(None, g) for g in client.get_user_permissions(view.user_id)]
    for group in user.groups:
        view.grants += [(group.id, g) for g in client.get_group_permissions(group.id)]
    return view


def worker_roles(view: AccessView) -> list[Way]:
    """Where a role that lets the application poll comes from (empty: it may poll nothing)."""
    return view.role_ways(POLLING_ROLES)


def definition_of(client: OrkesClient, target_type: str, name: str) -> Mapping[str, Any] | None:
    """The task or workflow definition as the server gives it, or ``None`` when there is none."""
    try:
        if target_type == "TASK_DEF":
            return client.get_task_def(name).model_dump(by_alias=True)
        return client.get_workflow_def(name)
    except NotFound:
        return None


def resolve(client: OrkesClient, view: AccessView, target_type: str, name: str, *, access: str = "EXECUTE",
            domains: tuple[str, ...] = (), definition: Mapping[str, Any] | None = None) -> Holding:
    """How ``view``'s application holds ``access`` on ``name`` (``definition``: already fetched)."""
    definition = definition if definition is not None else definition_of(client, target_type, name)
    if definition is None:
        return Holding(target_type, name, access, exists=False)
    ways = view.role_ways(_COVERING_ROLES.get((target_type, access), ("ADMIN",)))
    if definition.get("createdBy") == view.user_id:
        ways.append(Way("creator"))
    tags = tag_ids(definition.get("tags"))
    elsewhere: list[str] = []
    for group, grant in view.grants:
        if access not in {a.upper() for a in grant.access}:
            continue
        way = _grant_way(grant, group, target_type, name, tags)
        if way is not None and way.how == "domain" and way.name not in domains:
            elsewhere.append(str(way.name))
        elif way is not None and way not in ways:
            ways.append(way)
    if not ways and view.roles:
        ways = _role_grants(client, view, [(target_type, name), *(("TAG", t) for t in sorted(tags))], access)
    return Holding(target_type, name, access, tuple(ways), other_domains=tuple(sorted(set(elsewhere))))


def _grant_way(grant: GrantedAccess, group: str | None, target_type: str, name: str, tags: set[str]) -> Way | None:
    target = (grant.target.type.upper(), grant.target.id)
    if target == (target_type, name):
        if grant.tag:
            return Way("tag", grant.tag, group)
        return Way("group", group) if group else Way("direct")
    if target[0] == "TAG" and target[1] in tags:
        return Way("tag", target[1], group)
    if target[0] == "DOMAIN" and target_type == "TASK_DEF":
        return Way("domain", target[1], group)
    return None


def _role_grants(client: OrkesClient, view: AccessView, targets: list[tuple[str, str]], access: str) -> list[Way]:
    """Grants to ``ROLE <name>`` subjects on ``targets``, for the roles the application holds."""
    ways: list[Way] = []
    for target_type, target_id in targets:
        try:
            subjects = client.get_permissions(Target(type=target_type, id=target_id)).get(access, [])
        except ProvisionError:  # not readable with these credentials: the other ways still stand
            continue
        ways += [Way("role-grant", s.id) for s in subjects
                 if s.type.upper() == "ROLE" and s.id in view.roles and Way("role-grant", s.id) not in ways]
    return ways


def tag_ids(raw: object) -> set[str]:
    """A definition's tags as TAG target ids (``key:value``); they arrive as plain JSON objects."""
    if not isinstance(raw, list):
        return set()
    return {f"{t.get('key')}:{t.get('value', '')}" for t in raw if isinstance(t, dict) and "key" in t}
