"""The difference between the desired applications and the server: a pure function.

A plan never holds a secret: keys appear as key ids and store descriptions only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from orkes_provision.access.spec import AppSpec
from orkes_provision.access.state import ServerState
from orkes_provision.credentials.stores import StoredKey
from orkes_provision.errors import ConfigError

ChangeKind = Literal[
    "register_task", "create_app", "tag_app", "add_role", "create_key", "grant",
    "revoke", "remove_role", "delete_app", "update_task", "register_workflow", "update_workflow",
]

_SYMBOL = {"register_task": "+", "create_app": "+", "tag_app": "~", "add_role": "+", "create_key": "+",
           "grant": "+", "revoke": "-", "remove_role": "-", "delete_app": "-", "update_task": "~",
           "register_workflow": "+", "update_workflow": "~"}
# Execution stages: everything in a stage may run in parallel; stages run in this order.
# Task definitions (new and changed) go to the server in one batched call, before workflows use them.
STAGE = {"register_task": 0, "update_task": 0, "create_app": 1, "register_workflow": 1, "update_workflow": 1,
         "tag_app": 2, "add_role": 2, "create_key": 2, "grant": 2, "revoke": 3, "remove_role": 3, "delete_app": 4}


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    app: str | None
    what: str
    access: tuple[str, ...] = ()
    app_id: str | None = None
    reason: str = ""

    def describe(self) -> str:
        text = {
            "register_task": f"register task definition {self.what}",
            "update_task": f"update task definition {self.what}",
            "register_workflow": f"register workflow definition {self.what}",
            "update_workflow": f"update workflow definition {self.what}",
            "create_app": f"create application {self.what}",
            "tag_app": f"tag application {self.app} as {self.what}",
            "add_role": f"add role {self.what} to {self.app}",
            "create_key": f"create a key for {self.app} into {self.what}",
            "grant": f"grant {'+'.join(self.access)} on {self.what} to {self.app}",
            "revoke": f"revoke {'+'.join(self.access)} on {self.what} from {self.app}",
            "remove_role": f"remove role {self.what} from {self.app}",
            "delete_app": f"delete application {self.app} ({self.app_id})",
        }[self.kind]
        return f"{_SYMBOL[self.kind]} {text}" + (f" ({self.reason})" if self.reason else "")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"action": self.kind, "app": self.app, "target": self.what}
        if self.access:
            data["access"] = list(self.access)
        if self.app_id:
            data["appId"] = self.app_id
        if self.reason:
            data["reason"] = self.reason
        return data


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


@dataclass
class Plan:
    server: str
    apps: list[AppPlan]
    task_changes: list[Change] = field(default_factory=list)
    prune_changes: list[Change] = field(default_factory=list)

    @property
    def changes(self) -> list[Change]:
        ordered = list(self.task_changes)
        for app_plan in self.apps:
            ordered.extend(app_plan.changes)
        ordered.extend(self.prune_changes)
        return ordered

    @property
    def empty(self) -> bool:
        return not self.changes

    def counts(self) -> dict[str, int]:
        changes = self.changes
        return {"create": sum(1 for c in changes if _SYMBOL[c.kind] == "+"),
                "change": sum(1 for c in changes if _SYMBOL[c.kind] == "~"),
                "delete": sum(1 for c in changes if _SYMBOL[c.kind] == "-")}

    def to_dict(self) -> dict[str, Any]:
        return {"server": self.server, "changes": [c.to_dict() for c in self.changes], "summary": self.counts()}

    def render(self) -> str:
        if self.empty:
            return "No changes: the server already matches."
        lines = [c.describe() for c in self.changes]
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
        raise ConfigError(
            f"task definition{'s' if len(missing) > 1 else ''} not found on the server: {', '.join(missing)}",
            "register them first, or add --register-tasks to register a minimal definition")
    plan = Plan(server=server, apps=[],
                task_changes=[Change("register_task", None, name) for name in registering])
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
        changes.append(Change("create_app", spec.name, spec.name))
    elif managed_tag and spec.owned and not any((t.key, t.value) == managed_tag for t in existing.tags):
        changes.append(Change("tag_app", spec.name, f"{managed_tag[0]}={managed_tag[1]}", app_id=app_id))
    have_roles = current.roles if current else set()
    changes.extend(Change("add_role", spec.name, role, app_id=app_id)
                   for role in spec.roles if role not in have_roles)
    reused: str | None = None
    if spec.store is not None:
        if spec.new_key:
            changes.append(Change("create_key", spec.name, store_name or spec.store, app_id=app_id,
                                  reason="--new-key"))
        elif key is not None and key.usable and current is not None and key.key_id in current.active_key_ids:
            reused = key.key_id
        else:
            reason = key.reason if key is not None and key.reason else "no key stored"
            if key is not None and key.key_id and current is not None and key.key_id not in current.active_key_ids:
                reason = f"stored key {key.key_id} is not an ACTIVE key of this application"
            changes.append(Change("create_key", spec.name, store_name or spec.store, app_id=app_id, reason=reason))
    have_grants = current.grants if current else {}
    for grant in spec.grants:
        missing_access = tuple(a for a in grant.access if a not in have_grants.get(grant.key, set()))
        if missing_access:
            changes.append(Change("grant", spec.name, f"{grant.type} {grant.id}", missing_access, app_id=app_id))
    return AppPlan(spec=spec, app_id=app_id, known_key_ids={k.id for k in current.keys} if current else set(),
                   reused_key_id=reused, changes=changes)


def plan_prune(state: ServerState, specs: Sequence[AppSpec], managed: Iterable[Any]) -> list[Change]:
    """Deletions for managed applications absent from ``specs``, and extra roles and grants of those present.

    ``managed`` are the applications carrying this environment's ownership tag: nothing else is touched.
    """
    wanted = {s.name for s in specs}
    changes: list[Change] = []
    for app in managed:
        if app.name not in wanted:
            changes.append(Change("delete_app", app.name, app.name, app_id=app.id))
    by_name = {s.name: s for s in specs}
    for app_state in sorted(state.apps.values(), key=lambda a: a.app.name):
        spec = by_name.get(app_state.app.name)
        if spec is None or not spec.owned or app_state.app not in list(managed):
            continue
        for role in sorted(app_state.roles - set(spec.roles)):
            changes.append(Change("remove_role", spec.name, role, app_id=app_state.app.id))
        desired = {g.key: set(g.access) for g in spec.grants}
        for (ttype, tid), access in sorted(app_state.grants.items()):
            extra = tuple(sorted(access - desired.get((ttype, tid), set())))
            if extra:
                changes.append(Change("revoke", spec.name, f"{ttype} {tid}", extra, app_id=app_state.app.id))
    return changes
