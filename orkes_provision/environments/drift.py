"""``provision drift``: what differs between the server and an environment file, and how to settle it.

Where ``plan`` lists what ``apply`` would do, drift lists every difference on what the file declares
(definitions, applications, custom roles, users, groups), in both directions: what the file declares and the
server lacks (``-``), what the server holds on a declared object and the file does not say (``+``: a
role, a grant, a group member, a role's permission added by hand), and what both have but differently
(``~``). Each comes with the command that makes the server match the file and, where it makes sense, the change to the
file that makes the file match the server. Reads only; keys are not read from any store (drift runs
on machines that hold none), but an application whose file names a store must have an ACTIVE key on
the server.
"""

from __future__ import annotations

import functools
import json
import shlex
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from orkes_provision.access.keyage import format_age, oldest_active, policy_text
from orkes_provision.access.spec import IMPLICIT_ROLE_PERMISSIONS, AppSpec, GroupSpec, RoleSpec, UserSpec
from orkes_provision.access.state import AppState, PeopleState, RolesState, read_roles, read_state
from orkes_provision.environments.apply import (
    covers,
    custom_roles,
    get_workflow,
    owned_by,
    ownership_tags,
    workflow_key,
)
from orkes_provision.environments.environment import Environment
from orkes_provision.orkes.models import Application
from orkes_provision.toml.write import line_index

if TYPE_CHECKING:
    from orkes_provision.orkes.client import OrkesClient

_REVOKE_FLAG = {"TASK_DEF": "", "WORKFLOW_DEF": "--workflow", "TAG": "--tag", "DOMAIN": "--domain"}
_FILE_KEY = {"TASK_DEF": "tasks", "WORKFLOW_DEF": "workflows", "TAG": "tags", "DOMAIN": "domains"}


@dataclass(frozen=True)
class Difference:
    """One way the server and the file disagree."""

    kind: str
    symbol: str  # "-" the server lacks it, "+" only the server has it, "~" both, differently
    subject: str  # "application greetings-worker", "task definition greetings", ...
    detail: str
    fix: str  # the command that makes the server match the file
    file_change: str = ""  # the edit that makes the file match the server instead
    where: str = ""  # FILE:LINE of the declaration concerned

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "symbol": self.symbol, "subject": self.subject,
                                "detail": self.detail, "fix": self.fix}
        if self.file_change:
            data["fileChange"] = self.file_change
        if self.where:
            data["where"] = self.where
        return data

    def render(self) -> str:
        where = f" ({self.where})" if self.where else ""
        lines = [f"{self.symbol} {self.subject}: {self.detail}{where}", f"    fix the server: {self.fix}"]
        if self.file_change:
            lines.append(f"    or the file:    {self.file_change}")
        return "\n".join(lines)


@dataclass
class DriftReport:
    environment: str
    file: str
    server: str
    differences: list[Difference] = field(default_factory=list)
    read_requests: int = 0

    @property
    def in_sync(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {"environment": self.environment, "file": self.file, "server": self.server, "inSync": self.in_sync,
                "count": len(self.differences), "differences": [d.to_dict() for d in self.differences]}

    def render(self) -> str:
        head = f"Environment {self.environment} on {self.server}"
        if self.in_sync:
            return f"{head}\nNo drift: the server matches {self.file}."
        body = "\n".join(d.render() for d in self.differences)
        count = len(self.differences)
        return f"{head}\n{body}\n{count} difference{'s' if count != 1 else ''} between the server and {self.file}."


@dataclass
class _Server:
    by_name: dict[str, list[Application]]
    apps: dict[str, AppState]
    task_defs: dict[str, dict[str, Any]]
    workflows: dict[str, dict[str, Any] | None]
    people: PeopleState = field(default_factory=PeopleState)
    roles: RolesState = field(default_factory=RolesState)


def drift_environment(client: OrkesClient, env: Environment, *, server: str, parallelism: int = 16,
                      global_args: Sequence[str] = (), now: Callable[[], datetime] | None = None) -> DriftReport:
    """Compare the server with ``env``; ``global_args`` (``--profile P``...) go into every fix command.
    ``now`` is the clock keys' ages (``keyMaxAge``) are measured with."""
    before = client.request_count
    state = _read(client, env, parallelism)
    ctx = _Context(env=env, global_args=tuple(global_args), now=(now or (lambda: datetime.now(UTC)))())
    differences: list[Difference] = []
    differences += _tasks(ctx, state)
    differences += _workflows(ctx, state)
    for index, spec in enumerate(env.app_specs()):
        differences += _application(ctx, state, index, spec)
    differences += _undeclared(ctx, state)
    for index, role in enumerate(env.role_specs()):
        differences += _role(ctx, state.roles, index, role)
    for index, user in enumerate(env.user_specs()):
        differences += _user(ctx, state.people, index, user)
    for index, group in enumerate(env.group_specs()):
        differences += _group(ctx, state.people, index, group)
    return DriftReport(environment=env.name, file=env.shown, server=server, differences=differences,
                       read_requests=client.request_count - before)


def _read(client: OrkesClient, env: Environment, parallelism: int) -> _Server:
    # Users and groups only when the file declares some: files without them read what they always did.
    groups = [g.id for g in env.groups] if env.declares_people else None
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        workflows = {workflow_key(d): pool.submit(get_workflow, client, d) for d in env.workflow_defs}
        roles = pool.submit(read_roles, client) if env.uses_custom_roles else None
        # A name several applications share is reported as a duplicate, not read.
        state = read_state(client, [a.name for a in env.applications], parallelism=parallelism, groups=groups,
                           skip_ambiguous=True)
        task_defs = {name: t.model_dump(mode="json", by_alias=True) for name, t in state.task_defs.items()}
        return _Server(by_name=state.by_name, apps=state.apps, task_defs=task_defs, people=state.people,
                       workflows={k: f.result() for k, f in workflows.items()},
                       roles=custom_roles(env, roles.result) if roles is not None else RolesState())


@dataclass
class _Context:
    env: Environment
    global_args: tuple[str, ...]
    now: datetime

    @functools.cached_property
    def lines(self) -> dict[str, int]:
        # Indexed only when a difference needs a line: in sync, a large file is never indexed.
        return line_index(self.env.text)

    def where(self, *paths: str) -> str:
        """FILE:LINE of the first of ``paths`` found in the file."""
        for path in paths:
            if path in self.lines:
                return f"{self.env.shown}:{self.lines[path]}"
        return ""

    def command(self, *args: str) -> str:
        return shlex.join(["provision", *args, *self.global_args])

    def apply(self, *, prune: bool = False) -> str:
        return self.command("apply", "-f", self.env.shown, *(["--prune"] if prune else []))


def _tasks(ctx: _Context, state: _Server) -> list[Difference]:
    out: list[Difference] = []
    for index, entry in enumerate(ctx.env.tasks):
        subject = f"task definition {entry.name}"
        have = state.task_defs.get(entry.name)
        if have is None:
            out.append(Difference("task_missing", "-", subject, "not on the server", ctx.apply(),
                                  f"remove [[tasks]] {entry.name}", ctx.where(f"tasks[{index}]")))
            continue
        differing = [(k, have.get(k), v) for k, v in entry.declared().items() if k != "name" and have.get(k) != v]
        if differing:
            detail = "; ".join(f"{k} is {_short(old)} on the server, {_short(new)} in the file"
                               for k, old, new in differing)
            edit = ", ".join(f"{k} = {json.dumps(old)}" for k, old, _ in differing)
            out.append(Difference("task_differs", "~", subject, detail, ctx.apply(),
                                  f"set {edit} under [[tasks]] {entry.name}",
                                  ctx.where(f"tasks[{index}].{differing[0][0]}", f"tasks[{index}]")))
    declared = {t.name for t in ctx.env.tasks}
    granted = sorted({g.id for s in ctx.env.app_specs() for g in s.grants if g.type == "TASK_DEF"})
    for name in granted:
        if name not in declared and name not in state.task_defs:
            out.append(Difference("task_unknown", "-", f"task definition {name}",
                                  "granted in the file, but neither declared under [[tasks]] nor on the server",
                                  f"declare it under [[tasks]], then {ctx.apply()}",
                                  f"remove {name} from the grants that name it"))
    return out


def _workflows(ctx: _Context, state: _Server) -> list[Difference]:
    out: list[Difference] = []
    for index, (entry, definition) in enumerate(zip(ctx.env.workflows, ctx.env.workflow_defs, strict=True)):
        key = workflow_key(definition)
        current = state.workflows.get(key)
        where = ctx.where(f"workflows[{index}].file", f"workflows[{index}]")
        subject = f"workflow definition {key}"
        if current is None:
            out.append(Difference("workflow_missing", "-", subject, "not on the server", ctx.apply(),
                                  f"remove the [[workflows]] entry for {entry.file}", where))
            continue
        differing = sorted(k for k, v in definition.items() if not covers(current.get(k), v))
        if differing:
            out.append(Difference("workflow_differs", "~", subject,
                                  f"the server's definition differs in {', '.join(differing)}", ctx.apply(),
                                  f"update {entry.file} to the server's definition ('provision export' writes it)",
                                  where))
    return out


def _role_differences(ctx: _Context, spec: AppSpec, current: AppState, subject: str, at: str) -> list[Difference]:
    out: list[Difference] = []
    roles_at = ctx.where(f"{at}.roles", at)
    for role in spec.roles:
        if role not in current.roles:
            out.append(Difference("role_missing", "-", subject, f"lacks role {role}", ctx.apply(),
                                  f"remove {json.dumps(role)} from roles", roles_at))
    for role in sorted(current.roles - set(spec.roles)):
        fix = ctx.apply(prune=True) if spec.owned else \
            f"remove role {role} from {spec.name} in the Orkes UI (the file does not own this application)"
        out.append(Difference("role_extra", "+", subject, f"holds role {role}, which the file does not declare",
                              fix, f"add {json.dumps(role)} to roles", roles_at))
    return out


def _grant_differences(ctx: _Context, spec: AppSpec, current: AppState, subject: str, at: str,
                       entry: Any) -> list[Difference]:
    out: list[Difference] = []
    desired = {g.key: set(g.access) for g in spec.grants}
    for (target_type, target_id), access in desired.items():
        missing = sorted(access - current.grants.get((target_type, target_id), set()))
        if missing:
            out.append(Difference("grant_missing", "-", subject,
                                  f"lacks {'+'.join(missing)} on {target_type} {target_id}", ctx.apply(),
                                  f"remove {'+'.join(missing)} on {target_id} from its grants",
                                  ctx.where(*_grant_paths(entry, at, target_type, target_id))))
    for (target_type, target_id), access in sorted(current.grants.items()):
        extra = sorted(access - desired.get((target_type, target_id), set()))
        if not extra:
            continue
        out.append(Difference("grant_extra", "+", subject,
                              f"holds {'+'.join(extra)} on {target_type} {target_id}, which the file does not declare",
                              _revoke(ctx, spec.name, target_type, target_id, extra),
                              _grant_edit(target_type, target_id, extra),
                              ctx.where(*_grant_paths(entry, at, target_type, target_id))))
    return out


def _application(ctx: _Context, state: _Server, index: int, spec: AppSpec) -> list[Difference]:
    subject = f"application {spec.name}"
    at = f"applications[{index}]"
    matches = state.by_name.get(spec.name, [])
    if not matches:
        return [Difference("app_missing", "-", subject, "not on the server", ctx.apply(),
                           f"remove the [[applications]] entry {spec.name}", ctx.where(at))]
    if len(matches) > 1:
        ids = ", ".join(sorted(a.id for a in matches))
        return [Difference("app_duplicate", "+", subject, f"{len(matches)} applications have this name (ids {ids})",
                           ctx.command("apps", "delete", "ID") + "   (for each extra id)", "", ctx.where(at))]
    current = state.apps[matches[0].id]
    out: list[Difference] = []
    env_tag = ownership_tags(ctx.env.name)[1]
    if spec.owned and not owned_by(current.app, ctx.env.name):
        out.append(Difference("app_untagged", "-", subject,
                              f"not tagged as this environment's ({env_tag.key}={env_tag.value}), so --prune "
                              "would not manage it", ctx.apply(),
                              "add owned = false to the application", ctx.where(at)))
    out.extend(_role_differences(ctx, spec, current, subject, at))
    out.extend(_grant_differences(ctx, spec, current, subject, at, ctx.env.applications[index]))
    if spec.store is not None and not current.active_key_ids:
        out.append(Difference("key_missing", "-", subject, "has no ACTIVE key, though the file gives it a store",
                              ctx.apply(), "remove store", ctx.where(f"{at}.store", at)))
    oldest = oldest_active(current.keys, ctx.now) if spec.key_max_age is not None else None
    if oldest is not None and spec.key_max_age is not None and oldest.older_than(spec.key_max_age):
        out.append(Difference("key_too_old", "~", subject,
                              f"ACTIVE {oldest.describe()}, older than keyMaxAge {policy_text(spec.key_max_age)}",
                              ctx.command("keys", "rotate", spec.name),
                              f"raise keyMaxAge above {format_age(oldest.age)}",
                              ctx.where(f"{at}.keyMaxAge", at)))
    return out


def _grant_paths(entry: Any, at: str, target_type: str, target_id: str) -> list[str]:
    key = _FILE_KEY.get(target_type)
    paths = [f"{at}.grants[{i}].{key}" for i, g in enumerate(entry.grants)
             if key and target_id in getattr(g, key, [])]
    return [*paths, at]


def _revoke(ctx: _Context, app: str, target_type: str, target_id: str, access: list[str]) -> str:
    flag = _REVOKE_FLAG.get(target_type)
    if flag is None:
        return f"revoke it in the Orkes UI (the environment file has no key for {target_type} targets)"
    target = [target_id] if not flag else [flag, target_id]
    return ctx.command("revoke", app, *target, *(a for acc in access for a in ("--access", acc)))


def _grant_edit(target_type: str, target_id: str, access: list[str]) -> str:
    key = _FILE_KEY.get(target_type)
    if key is None:
        return ""
    return f"add a grant: {key} = {json.dumps([target_id])}, access = {json.dumps(access)}"


def _undeclared(ctx: _Context, state: _Server) -> list[Difference]:
    declared = {a.name for a in ctx.env.applications}
    out: list[Difference] = []
    for name in sorted(state.by_name):
        if name in declared:
            continue
        for app in state.by_name[name]:
            if owned_by(app, ctx.env.name):
                out.append(Difference("app_undeclared", "+", f"application {name}",
                                      f"tagged as this environment's ({app.id}) but not in the file",
                                      ctx.apply(prune=True) + "   (deletes it)",
                                      f"declare it ('provision export --application {name}' shows it)"))
    return out


def _role(ctx: _Context, roles: RolesState, index: int, spec: RoleSpec) -> list[Difference]:
    """A declared custom role: missing, or a permission missing or extra (--prune trims it; Orkes's own
    two are never a difference)."""
    at, subject = f"roles[{index}]", f"role {spec.name}"
    current = roles.custom.get(spec.name)
    if current is None:
        return [Difference("custom_role_missing", "-", subject, "not on the server", ctx.apply(),
                           f"remove the [[roles]] entry {spec.name}", ctx.where(at))]
    have, declared = current.permission_names - IMPLICIT_ROLE_PERMISSIONS, set(spec.permissions)
    return _listed(ctx, subject, declared, have, ctx.where(f"{at}.permissions", at), what="permission",
                   key="permissions")


def _user(ctx: _Context, people: PeopleState, index: int, spec: UserSpec) -> list[Difference]:
    at = f"users[{index}]"
    subject = f"user {spec.id}"
    current = people.users.get(spec.id)
    if current is None:
        return [Difference("user_missing", "-", subject, "not on the server", ctx.apply(),
                           f"remove the [[users]] entry {spec.id}", ctx.where(at))]
    out: list[Difference] = []
    if spec.name is not None and spec.name != current.name:
        out.append(Difference("user_differs", "~", subject,
                              f"name is {json.dumps(current.name)} on the server, {json.dumps(spec.name)} in the file",
                              ctx.apply(), f"set name = {json.dumps(current.name or spec.id)}",
                              ctx.where(f"{at}.name", at)))
    out += _roles(ctx, subject, set(spec.roles), current.role_names, ctx.where(f"{at}.roles", at))
    return out


def _group(ctx: _Context, people: PeopleState, index: int, spec: GroupSpec) -> list[Difference]:
    at = f"groups[{index}]"
    subject = f"group {spec.id}"
    state = people.groups.get(spec.id)
    if state is None:
        return [Difference("group_missing", "-", subject, "not on the server", ctx.apply(),
                           f"remove the [[groups]] entry {spec.id}", ctx.where(at))]
    out: list[Difference] = []
    have_description = state.group.description or ""
    if spec.description is not None and spec.description != have_description:
        out.append(Difference("group_differs", "~", subject,
                              f"description is {json.dumps(have_description)} on the server, "
                              f"{json.dumps(spec.description)} in the file", ctx.apply(),
                              f"set description = {json.dumps(have_description)}",
                              ctx.where(f"{at}.description", at)))
    out += _roles(ctx, subject, set(spec.roles), state.group.role_names, ctx.where(f"{at}.roles", at))
    members_at = ctx.where(f"{at}.members", at)
    for member in spec.members:
        if member not in state.members:
            known = member in people.users or any(u.id == member for u in ctx.env.users)
            fix = ctx.apply() if known else f"create user {member} (declare it under [[users]]), then {ctx.apply()}"
            out.append(Difference("member_missing", "-", subject, f"lacks member {member}", fix,
                                  f"remove {json.dumps(member)} from members", members_at))
    for member in sorted(state.members - set(spec.members)):
        out.append(Difference("member_extra", "+", subject,
                              f"has member {member}, whom the file does not declare", ctx.apply(prune=True),
                              f"add {json.dumps(member)} to members" if not member.startswith("app:") else "",
                              members_at))
    entry = ctx.env.groups[index]
    desired = {g.key: set(g.access) for g in spec.grants}
    for (target_type, target_id), access in desired.items():
        missing = sorted(access - state.grants.get((target_type, target_id), set()))
        if missing:
            out.append(Difference("grant_missing", "-", subject,
                                  f"lacks {'+'.join(missing)} on {target_type} {target_id}", ctx.apply(),
                                  f"remove {'+'.join(missing)} on {target_id} from its grants",
                                  ctx.where(*_grant_paths(entry, at, target_type, target_id))))
    for (target_type, target_id), access in sorted(state.grants.items()):
        extra = sorted(access - desired.get((target_type, target_id), set()))
        if extra:
            out.append(Difference("grant_extra", "+", subject,
                                  f"holds {'+'.join(extra)} on {target_type} {target_id}, which the file does not "
                                  "declare", ctx.apply(prune=True), _grant_edit(target_type, target_id, extra),
                                  ctx.where(*_grant_paths(entry, at, target_type, target_id))))
    return out


def _roles(ctx: _Context, subject: str, declared: set[str], have: set[str], where: str) -> list[Difference]:
    """Roles of a declared user or group: --prune trims what the file does not give (no ownership tags here)."""
    return _listed(ctx, subject, declared, have, where, what="role", key="roles")


def _listed(ctx: _Context, subject: str, declared: set[str], have: set[str], where: str, *, what: str,
            key: str) -> list[Difference]:
    """What one list of a declared object (its ``key``: roles, permissions) lacks on the server (``<what>_missing``)
    and holds besides (``<what>_extra``, which --prune trims)."""
    out = [Difference(f"{what}_missing", "-", subject, f"lacks {what} {name}", ctx.apply(),
                      f"remove {json.dumps(name)} from {key}", where) for name in sorted(declared - have)]
    out += [Difference(f"{what}_extra", "+", subject, f"holds {what} {name}, which the file does not declare",
                       ctx.apply(prune=True), f"add {json.dumps(name)} to {key}", where)
            for name in sorted(have - declared)]
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
