"""The changes a plan is made of: one type per kind of change.

What a change is about (its application, user or group, its target, its version) is held in fields,
so the executor never parses text back. Beside the fields, each type says how a plan shows it
(``symbol``), when it may run (``stage``, ``priority``), which changes go out in one request with it
(``bundle``), and what it waits for (``needs``) and unlocks (``provides``), from which
``access.jobs`` builds the dependency graph.

A plan never holds a secret: keys appear as key ids and store descriptions only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

ChangeKind = Literal[
    "register_task", "create_app", "tag_app", "add_role", "create_key", "grant",
    "revoke", "remove_role", "delete_app", "update_task", "register_workflow", "update_workflow",
    "create_user", "update_user", "add_user_role", "remove_user_role",
    "create_group", "update_group", "add_group_role", "remove_group_role", "add_member", "remove_member",
    "rotate_key", "create_role", "update_role",
]
Symbol = Literal["+", "~", "-"]
# Something a change makes true on the server and other changes may wait for, such as
# ("app", NAME): the application exists. Changes that need a fact no change of the plan provides
# do not wait (it holds already).
Fact = tuple[str, ...]
# What a change is about: ("app", NAME), ("user", ID), ("group", ID) or ("role", NAME). Its removals wait for
# its additions.
Owner = tuple[str, str]

# Stages, in the order they run (a change may start before a later stage's changes end, never before what it
# needs): task definitions, as one batched call; applications, workflows, users and groups; what applications
# and groups are given; what they lose and key rotations; deleted applications.
TASKS, CREATE, GIVE, TAKE, DELETE = range(5)
# Within what is ready, start first what unlocks the most (applications, workflows, users and groups); then
# the rest in plan order, application by application, so that the slow key creations (the server hashes
# each new secret) are spread over the run instead of taking every slot at once.
FIRST, WORKFLOWS, IN_ORDER, REMOVALS, LAST = 0, 1, 2, 5, 6


@dataclass(frozen=True)
class GrantTarget:
    """What a grant is on: a task definition, a workflow definition, ..."""

    type: str
    id: str

    def __str__(self) -> str:
        return f"{self.type} {self.id}"

    def facts(self) -> Iterator[Fact]:
        """What a grant on it waits for: the task definition or workflow definition the plan registers."""
        if self.type == "TASK_DEF":
            yield ("task", self.id)
        elif self.type == "WORKFLOW_DEF":
            yield ("workflow", self.id)


@dataclass(frozen=True, kw_only=True)
class Change:
    """One change to the server."""

    kind: ClassVar[ChangeKind]
    symbol: ClassVar[Symbol]
    stage: ClassVar[int]
    priority: ClassVar[int] = IN_ORDER

    reason: str = ""

    @property
    def target(self) -> str:
        """What the change acts on, as ``plan --json`` shows it (``target``)."""
        raise NotImplementedError

    @property
    def owner(self) -> Owner | None:
        return None

    def summary(self) -> str:
        """The change in words, without its symbol and reason."""
        raise NotImplementedError

    def describe(self, *, symbol: bool = True) -> str:
        text = self.summary() + (f" ({self.reason})" if self.reason else "")
        return f"{self.symbol} {text}" if symbol else text

    @property
    def audit_target(self) -> str:
        return self.target

    def bundle(self) -> tuple[str, str] | None:
        """Changes with the same bundle go to the server in one request (``Executor._run_bundle``)."""
        return None

    def needs(self) -> Iterator[Fact]:
        return iter(())

    def provides(self) -> Iterator[Fact]:
        owner = self.owner
        if owner is not None and self.stage <= GIVE:
            yield ("additions", *owner)
        yield ("not a deletion",)

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.kind, "app": None, "target": self.target} \
            | ({"reason": self.reason} if self.reason else {}) | self._details()

    def _details(self) -> dict[str, Any]:
        return {}


def _access_text(verb: str, access: tuple[str, ...], on: GrantTarget, to: str) -> str:
    return f"{verb} {'+'.join(access)} on {on} {'to' if verb == 'grant' else 'from'} {to}"


# ----- task and workflow definitions ---------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class _TaskChange(Change):
    name: str
    stage: ClassVar[int] = TASKS

    @property
    def target(self) -> str:
        return self.name

    def provides(self) -> Iterator[Fact]:
        yield ("task", self.name)
        yield ("tasks",)


@dataclass(frozen=True, kw_only=True)
class RegisterTask(_TaskChange):
    kind: ClassVar[ChangeKind] = "register_task"
    symbol: ClassVar[Symbol] = "+"

    def summary(self) -> str:
        return f"register task definition {self.name}"


@dataclass(frozen=True, kw_only=True)
class UpdateTask(_TaskChange):
    kind: ClassVar[ChangeKind] = "update_task"
    symbol: ClassVar[Symbol] = "~"

    def summary(self) -> str:
        return f"update task definition {self.name}"


@dataclass(frozen=True, kw_only=True)
class _WorkflowChange(Change):
    name: str
    version: int
    stage: ClassVar[int] = CREATE
    priority: ClassVar[int] = WORKFLOWS

    @property
    def target(self) -> str:
        return f"{self.name} v{self.version}"

    def needs(self) -> Iterator[Fact]:
        yield ("tasks",)  # the tasks a workflow uses are not read from it: all of the plan's first

    def provides(self) -> Iterator[Fact]:
        yield ("workflow", self.name)
        yield from super().provides()


@dataclass(frozen=True, kw_only=True)
class RegisterWorkflow(_WorkflowChange):
    kind: ClassVar[ChangeKind] = "register_workflow"
    symbol: ClassVar[Symbol] = "+"

    def summary(self) -> str:
        return f"register workflow definition {self.target}"


@dataclass(frozen=True, kw_only=True)
class UpdateWorkflow(_WorkflowChange):
    kind: ClassVar[ChangeKind] = "update_workflow"
    symbol: ClassVar[Symbol] = "~"

    def summary(self) -> str:
        return f"update workflow definition {self.target}"


# ----- applications --------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class AppChange(Change):
    """A change to one application; ``app_id`` is None until the plan's ``CreateApp`` made it."""

    app: str
    app_id: str | None = None

    @property
    def owner(self) -> Owner | None:
        return ("app", self.app)

    def needs(self) -> Iterator[Fact]:
        yield ("app", self.app)

    def to_dict(self) -> dict[str, Any]:
        return super().to_dict() | {"app": self.app} | ({"appId": self.app_id} if self.app_id else {})


@dataclass(frozen=True, kw_only=True)
class CreateApp(AppChange):
    kind: ClassVar[ChangeKind] = "create_app"
    symbol: ClassVar[Symbol] = "+"
    stage: ClassVar[int] = CREATE
    priority: ClassVar[int] = FIRST

    @property
    def target(self) -> str:
        return self.app

    def summary(self) -> str:
        return f"create application {self.app}"

    def needs(self) -> Iterator[Fact]:
        return iter(())

    def provides(self) -> Iterator[Fact]:
        yield ("app", self.app)
        yield from super().provides()


@dataclass(frozen=True, kw_only=True)
class TagApp(AppChange):
    """The ownership tag on an application that exists without it."""

    tag: tuple[str, str]
    kind: ClassVar[ChangeKind] = "tag_app"
    symbol: ClassVar[Symbol] = "~"
    stage: ClassVar[int] = GIVE

    @property
    def target(self) -> str:
        return f"{self.tag[0]}={self.tag[1]}"

    def summary(self) -> str:
        return f"tag application {self.app} as {self.target}"


@dataclass(frozen=True, kw_only=True)
class AddRole(AppChange):
    role: str
    kind: ClassVar[ChangeKind] = "add_role"
    symbol: ClassVar[Symbol] = "+"
    stage: ClassVar[int] = GIVE

    @property
    def target(self) -> str:
        return self.role

    def summary(self) -> str:
        return f"add role {self.role} to {self.app}"


@dataclass(frozen=True, kw_only=True)
class CreateKey(AppChange):
    store: str  # its description: never a secret
    kind: ClassVar[ChangeKind] = "create_key"
    symbol: ClassVar[Symbol] = "+"
    stage: ClassVar[int] = GIVE

    @property
    def target(self) -> str:
        return self.store

    def summary(self) -> str:
        return f"create a key for {self.app} into {self.store}"


@dataclass(frozen=True, kw_only=True)
class Grant(AppChange):
    on: GrantTarget
    access: tuple[str, ...]
    kind: ClassVar[ChangeKind] = "grant"
    symbol: ClassVar[Symbol] = "+"
    stage: ClassVar[int] = GIVE

    @property
    def target(self) -> str:
        return str(self.on)

    def summary(self) -> str:
        return _access_text("grant", self.access, self.on, self.app)

    def needs(self) -> Iterator[Fact]:
        yield from super().needs()
        yield from self.on.facts()

    def _details(self) -> dict[str, Any]:
        return {"access": list(self.access)}


@dataclass(frozen=True, kw_only=True)
class _AppRemoval(AppChange):
    symbol: ClassVar[Symbol] = "-"
    stage: ClassVar[int] = TAKE
    priority: ClassVar[int] = REMOVALS

    def needs(self) -> Iterator[Fact]:
        yield from super().needs()
        yield ("additions", "app", self.app)

    def provides(self) -> Iterator[Fact]:
        yield ("removals", "app", self.app)
        yield from super().provides()


@dataclass(frozen=True, kw_only=True)
class Revoke(_AppRemoval):
    on: GrantTarget
    access: tuple[str, ...]
    kind: ClassVar[ChangeKind] = "revoke"

    @property
    def target(self) -> str:
        return str(self.on)

    def summary(self) -> str:
        return _access_text("revoke", self.access, self.on, self.app)

    def _details(self) -> dict[str, Any]:
        return {"access": list(self.access)}


@dataclass(frozen=True, kw_only=True)
class RemoveRole(_AppRemoval):
    role: str
    kind: ClassVar[ChangeKind] = "remove_role"

    @property
    def target(self) -> str:
        return self.role

    def summary(self) -> str:
        return f"remove role {self.role} from {self.app}"


@dataclass(frozen=True, kw_only=True)
class RotateKey(AppChange):
    """A key older than the application's ``keyMaxAge``: its verification reads the roles and grants
    the application's other changes settle, so it waits for them."""

    key_id: str
    kind: ClassVar[ChangeKind] = "rotate_key"
    symbol: ClassVar[Symbol] = "~"
    stage: ClassVar[int] = TAKE
    priority: ClassVar[int] = REMOVALS

    @property
    def target(self) -> str:
        return self.key_id

    def summary(self) -> str:
        return f"rotate key of {self.app}"

    def needs(self) -> Iterator[Fact]:
        yield from super().needs()
        yield ("additions", "app", self.app)
        yield ("removals", "app", self.app)


@dataclass(frozen=True, kw_only=True)
class DeleteApp(AppChange):
    """Deletions run last: after every other change but the task definitions' batch."""

    kind: ClassVar[ChangeKind] = "delete_app"
    symbol: ClassVar[Symbol] = "-"
    stage: ClassVar[int] = DELETE
    priority: ClassVar[int] = LAST

    @property
    def target(self) -> str:
        return self.app

    def summary(self) -> str:
        return f"delete application {self.app} ({self.app_id})"

    def needs(self) -> Iterator[Fact]:
        yield ("not a deletion",)

    def provides(self) -> Iterator[Fact]:
        return iter(())


# ----- custom roles --------------------------------------------------------------------------------
# A role is created or updated in one request that sends its whole list of permissions
# (``Plan.role_upserts``); users and groups that are given it wait for it.

@dataclass(frozen=True, kw_only=True)
class RoleChange(Change):
    role: str
    stage: ClassVar[int] = CREATE
    priority: ClassVar[int] = FIRST

    @property
    def owner(self) -> Owner | None:
        return ("role", self.role)

    @property
    def target(self) -> str:
        return self.role

    @property
    def audit_target(self) -> str:
        return self.describe(symbol=False)

    def bundle(self) -> tuple[str, str] | None:
        return ("role", self.role)

    def provides(self) -> Iterator[Fact]:
        yield ("role", self.role)
        yield from super().provides()

    def _details(self) -> dict[str, Any]:
        return {"role": self.role}


@dataclass(frozen=True, kw_only=True)
class CreateRole(RoleChange):
    permissions: tuple[str, ...] = ()
    kind: ClassVar[ChangeKind] = "create_role"
    symbol: ClassVar[Symbol] = "+"

    def summary(self) -> str:
        return f"create role {self.role} ({', '.join(self.permissions) or 'no permissions'})"

    def _details(self) -> dict[str, Any]:
        return super()._details() | {"permissions": list(self.permissions)}


@dataclass(frozen=True, kw_only=True)
class UpdateRole(RoleChange):
    """Every holder of the role gains ``added`` and loses ``removed``."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    kind: ClassVar[ChangeKind] = "update_role"
    symbol: ClassVar[Symbol] = "~"

    def summary(self) -> str:
        parts = [f"add {', '.join(self.added)}" if self.added else "",
                 f"remove {', '.join(self.removed)}" if self.removed else ""]
        return f"update role {self.role} ({'; '.join(p for p in parts if p)})"

    def _details(self) -> dict[str, Any]:
        return super()._details() | {"added": list(self.added), "removed": list(self.removed)}


# ----- users and groups ----------------------------------------------------------------------------
# A user's or a group's own changes (created, renamed, roles) are carried out together, in one upsert of
# the whole record (``Plan.user_upserts``/``group_upserts``); the plan still shows each of them.

@dataclass(frozen=True, kw_only=True)
class UserChange(Change):
    user: str
    stage: ClassVar[int] = CREATE
    priority: ClassVar[int] = FIRST

    @property
    def owner(self) -> Owner | None:
        return ("user", self.user)

    @property
    def target(self) -> str:
        return self.user

    @property
    def audit_target(self) -> str:  # names the user ("add role USER to user ada@...")
        return self.describe(symbol=False)

    def bundle(self) -> tuple[str, str] | None:
        return ("user", self.user)

    def provides(self) -> Iterator[Fact]:
        yield ("user", self.user)
        yield from super().provides()

    def _details(self) -> dict[str, Any]:
        return {"user": self.user}


@dataclass(frozen=True, kw_only=True)
class CreateUser(UserChange):
    kind: ClassVar[ChangeKind] = "create_user"
    symbol: ClassVar[Symbol] = "+"

    def summary(self) -> str:
        return f"create user {self.user}"


@dataclass(frozen=True, kw_only=True)
class UpdateUser(UserChange):
    kind: ClassVar[ChangeKind] = "update_user"
    symbol: ClassVar[Symbol] = "~"

    def summary(self) -> str:
        return f"update user {self.user}"


@dataclass(frozen=True, kw_only=True)
class AddUserRole(UserChange):
    role: str
    kind: ClassVar[ChangeKind] = "add_user_role"
    symbol: ClassVar[Symbol] = "+"

    @property
    def target(self) -> str:
        return self.role

    def summary(self) -> str:
        return f"add role {self.role} to user {self.user}"

    def needs(self) -> Iterator[Fact]:
        yield from super().needs()
        yield ("role", self.role)  # a custom role the plan creates


@dataclass(frozen=True, kw_only=True)
class RemoveUserRole(UserChange):
    role: str
    kind: ClassVar[ChangeKind] = "remove_user_role"
    symbol: ClassVar[Symbol] = "-"

    @property
    def target(self) -> str:
        return self.role

    def summary(self) -> str:
        return f"remove role {self.role} from user {self.user}"


@dataclass(frozen=True, kw_only=True)
class GroupChange(Change):
    """A change to one group; a grant to a group is given to ``GROUP <id>``."""

    group: str

    @property
    def owner(self) -> Owner | None:
        return ("group", self.group)

    @property
    def audit_target(self) -> str:  # names the group
        return self.describe(symbol=False)

    def needs(self) -> Iterator[Fact]:
        yield ("group", self.group)

    def _details(self) -> dict[str, Any]:
        return {"group": self.group}


@dataclass(frozen=True, kw_only=True)
class GroupRecordChange(GroupChange):
    """Carried out by the group's upsert."""

    stage: ClassVar[int] = CREATE
    priority: ClassVar[int] = FIRST

    @property
    def target(self) -> str:
        return self.group

    def bundle(self) -> tuple[str, str] | None:
        return ("group", self.group)

    def needs(self) -> Iterator[Fact]:
        return iter(())

    def provides(self) -> Iterator[Fact]:
        yield ("group", self.group)
        yield from super().provides()


@dataclass(frozen=True, kw_only=True)
class CreateGroup(GroupRecordChange):
    kind: ClassVar[ChangeKind] = "create_group"
    symbol: ClassVar[Symbol] = "+"

    def summary(self) -> str:
        return f"create group {self.group}"


@dataclass(frozen=True, kw_only=True)
class UpdateGroup(GroupRecordChange):
    kind: ClassVar[ChangeKind] = "update_group"
    symbol: ClassVar[Symbol] = "~"

    def summary(self) -> str:
        return f"update group {self.group}"


@dataclass(frozen=True, kw_only=True)
class AddGroupRole(GroupRecordChange):
    role: str
    kind: ClassVar[ChangeKind] = "add_group_role"
    symbol: ClassVar[Symbol] = "+"

    @property
    def target(self) -> str:
        return self.role

    def summary(self) -> str:
        return f"add role {self.role} to group {self.group}"

    def needs(self) -> Iterator[Fact]:
        yield from super().needs()
        yield ("role", self.role)  # a custom role the plan creates


@dataclass(frozen=True, kw_only=True)
class RemoveGroupRole(GroupRecordChange):
    role: str
    kind: ClassVar[ChangeKind] = "remove_group_role"
    symbol: ClassVar[Symbol] = "-"

    @property
    def target(self) -> str:
        return self.role

    def summary(self) -> str:
        return f"remove role {self.role} from group {self.group}"


@dataclass(frozen=True, kw_only=True)
class _MemberChange(GroupChange):
    """The members a group gains (or loses) go out in one request."""

    member: str

    @property
    def target(self) -> str:
        return self.member

    def bundle(self) -> tuple[str, str] | None:
        return (self.kind, self.group)

    def needs(self) -> Iterator[Fact]:
        yield from super().needs()
        # A user's upsert sends the groups it is in as read before the apply: it must not undo a member change.
        yield ("user", self.member)


@dataclass(frozen=True, kw_only=True)
class AddMember(_MemberChange):
    kind: ClassVar[ChangeKind] = "add_member"
    symbol: ClassVar[Symbol] = "+"
    stage: ClassVar[int] = GIVE

    def summary(self) -> str:
        return f"add member {self.member} to group {self.group}"

    def provides(self) -> Iterator[Fact]:
        yield ("members added", self.group)
        yield from super().provides()


@dataclass(frozen=True, kw_only=True)
class RemoveMember(_MemberChange):
    kind: ClassVar[ChangeKind] = "remove_member"
    symbol: ClassVar[Symbol] = "-"
    stage: ClassVar[int] = TAKE
    priority: ClassVar[int] = REMOVALS

    def summary(self) -> str:
        return f"remove member {self.member} from group {self.group}"

    def needs(self) -> Iterator[Fact]:
        yield from super().needs()
        yield ("members added", self.group)


@dataclass(frozen=True, kw_only=True)
class GroupGrant(GroupChange):
    on: GrantTarget
    access: tuple[str, ...]
    kind: ClassVar[ChangeKind] = "grant"
    symbol: ClassVar[Symbol] = "+"
    stage: ClassVar[int] = GIVE

    @property
    def target(self) -> str:
        return str(self.on)

    def summary(self) -> str:
        return _access_text("grant", self.access, self.on, f"group {self.group}")

    def needs(self) -> Iterator[Fact]:
        yield from super().needs()
        yield from self.on.facts()

    def _details(self) -> dict[str, Any]:
        return {"access": list(self.access)} | super()._details()


@dataclass(frozen=True, kw_only=True)
class GroupRevoke(GroupChange):
    on: GrantTarget
    access: tuple[str, ...]
    kind: ClassVar[ChangeKind] = "revoke"
    symbol: ClassVar[Symbol] = "-"
    stage: ClassVar[int] = TAKE
    priority: ClassVar[int] = REMOVALS

    @property
    def target(self) -> str:
        return str(self.on)

    def summary(self) -> str:
        return _access_text("revoke", self.access, self.on, f"group {self.group}")

    def needs(self) -> Iterator[Fact]:
        yield ("additions", "group", self.group)

    def provides(self) -> Iterator[Fact]:
        yield ("removals", "group", self.group)
        yield from super().provides()

    def _details(self) -> dict[str, Any]:
        return {"access": list(self.access)} | super()._details()
