"""The environment file: a whole environment's access control, declared in TOML.

``provision plan``/``apply -f FILE`` read it; ``provision schema`` prints its JSON Schema; the user
documentation with a full example is ``docs/environment.md``. In short::

    name = "staging"                              # owns what it creates: tags environment=staging
    [[tasks]]                                     # task definitions (API field names, camelCase)
    name = "greetings"
    timeoutSeconds = 120
    [[workflows]]
    file = "workflows/greetings.json"             # a workflow definition, relative to this file
    [[applications]]
    name = "greetings-worker"
    roles = ["WORKER"]                            # default ["WORKER"]
    store = "env-file:secrets/greetings.env"      # or "keyring"; omit it and no key is managed
    keyMaxAge = "90d"                             # optional: apply rotates an older ACTIVE key
    [[applications.grants]]
    tasks = ["greetings"]                         # also workflows, tags ("key:value"), domains
    access = ["EXECUTE"]                          # the default
    [[users]]
    id = "ada@example.com"                        # people: id (an e-mail address), name, roles
    roles = ["USER"]
    [[groups]]
    id = "payments-team"                          # description, roles, members (user ids)
    members = ["ada@example.com"]
    [[groups.grants]]                             # as applications.grants; given to GROUP payments-team
    workflows = ["payments_flow"]
    [[roles]]
    name = "WORKFLOW_OPERATOR"                    # a custom role: users and groups may hold it by name
    permissions = ["READ_WORKFLOW_DEF", "EXECUTE_WORKFLOW_DEF"]

Every problem of the file is reported at once, each as one line naming the file and its line, with
"did you mean" for a near miss: ``env.toml:14: access: 'execute' is not one of CREATE, READ, UPDATE,
DELETE, EXECUTE; did you mean 'EXECUTE'?`` (``Problem``; the key path, ``applications[2].grants[0].access[1]``,
is in ``--json``). Values are read strictly: ``"30"`` is not a number. Task names the file grants are
checked against ``[[tasks]]`` and the server when planning (``unknown_tasks``). A TOML syntax error
names the line and column. The file holds no secrets.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from orkes_provision.access.spec import AppSpec, GrantSpec, GroupSpec, Name, RoleSpec, UserSpec, not_blank
from orkes_provision.access.workflow_tasks import Fetch, WorkflowTasks, local_first, workflow_tasks
from orkes_provision.durations import parse_duration
from orkes_provision.errors import ConfigError, Problem, UsageError, with_problems
from orkes_provision.names import closest, describe_character, forbidden_character
from orkes_provision.orkes.models import ACCESS_TYPES, KNOWN_ROLES
from orkes_provision.toml.read import first_lower, format_location, parse_toml, read_file, schema_problems
from orkes_provision.toml.write import FileLines

SCHEMA_URL = "https://json-schema.org/draft/2020-12/schema"
STORE_FORMS = "keyring, env-file:PATH"
# The environment name becomes a tag value and part of file names in messages: keep it plain.
_DOCS = "docs/environment.md documents every key ('provision schema' prints the JSON Schema)"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
ENVIRONMENT_NAME = _NAME
# A workflow file larger than this is not a workflow definition someone wrote by hand.
MAX_WORKFLOW_BYTES = 4 * 1024 * 1024

Access = Literal["CREATE", "READ", "UPDATE", "DELETE", "EXECUTE"]
Role = Literal[
    "ADMIN", "USER", "USER_READ_ONLY", "WORKER", "UNRESTRICTED_WORKER", "METADATA_API",
    "METADATA_MANAGER", "WORKFLOW_MANAGER", "APPLICATION_MANAGER", "APPLICATION_CREATOR", "PROMPT_MANAGER",
]
assert set(get_args(Access)) == set(ACCESS_TYPES)
assert set(get_args(Role)) == set(KNOWN_ROLES)
# A custom role's name, as Orkes wants it: "uppercase with underscores between words" (custom-roles.mdx).
CUSTOM_ROLE_NAME = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")
# A permission of a custom role, <ACTION>_<RESOURCE> (READ_WORKFLOW_DEF); the server's catalogue decides which exist.
_PERMISSION = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _role_of_people(value: str) -> str:
    if value in KNOWN_ROLES or CUSTOM_ROLE_NAME.match(value):
        return value
    raise ValueError(f"{value!r} is not a system role ({', '.join(KNOWN_ROLES)}) nor a custom role's name "
                     "(uppercase words joined by '_', declared under [[roles]] or on the server)")


def _custom_role_name(value: str) -> str:
    if value in KNOWN_ROLES:
        raise ValueError(f"{value!r} is a system role; a custom role needs a name of its own")
    if not CUSTOM_ROLE_NAME.match(value):
        raise ValueError(f"{value!r} is not a role name Orkes accepts: uppercase letters and digits, words joined "
                         "by '_' (e.g. WORKFLOW_OPERATOR)")
    return value


def _permission_form(value: str) -> str:
    if not _PERMISSION.match(value):
        raise ValueError(f"{value!r} is not a permission name: they read like READ_WORKFLOW_DEF (see "
                         "docs/environment.md)")
    return value


# What a user or a group may hold: a system role, or a custom role (declared under [[roles]] or on the server).
PeopleRole = Annotated[str, AfterValidator(_role_of_people)]


def _tag_form(value: str) -> str:
    key, sep, val = value.partition(":")
    if not sep or not key.strip() or not val.strip():
        raise ValueError(f"{value!r} is not of the form key:value (e.g. 'team:payments')")
    return f"{key.strip()}:{val.strip()}"


TagTarget = Annotated[str, AfterValidator(not_blank), AfterValidator(_tag_form)]


class TaskEntry(BaseModel):
    """``[[tasks]]``: a task definition to register, in the API's own field names (camelCase).

    Only the fields given here are compared with the server; the others keep the server's values
    (or, for a new definition, sensible defaults).
    """

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=False)

    name: Name = Field(min_length=1, description="Task type name, as workers poll for it.")
    description: str | None = None
    owner_email: str | None = None
    retry_count: int | None = Field(default=None, ge=0)
    retry_logic: Literal["FIXED", "EXPONENTIAL_BACKOFF", "LINEAR_BACKOFF"] | None = None
    retry_delay_seconds: int | None = Field(default=None, ge=0)
    backoff_scale_factor: int | None = Field(default=None, ge=1)
    timeout_seconds: int | None = Field(default=None, ge=0)
    total_timeout_seconds: int | None = Field(default=None, ge=0)
    response_timeout_seconds: int | None = Field(default=None, ge=1)
    poll_timeout_seconds: int | None = Field(default=None, ge=0)
    timeout_policy: Literal["RETRY", "TIME_OUT_WF", "ALERT_ONLY"] | None = None
    rate_limit_per_frequency: int | None = Field(default=None, ge=0)
    rate_limit_frequency_in_seconds: int | None = Field(default=None, ge=0)
    concurrent_exec_limit: int | None = Field(default=None, ge=0)
    input_keys: list[str] | None = None
    output_keys: list[str] | None = None
    input_template: dict[str, Any] | None = None
    isolation_group_id: str | None = None
    execution_name_space: str | None = None
    enforce_schema: bool | None = None

    @model_validator(mode="after")
    def _response_within_timeout(self) -> TaskEntry:
        # Conductor refuses such a definition; say so here rather than after half an apply.
        if self.timeout_seconds and self.response_timeout_seconds and \
                self.response_timeout_seconds > self.timeout_seconds:
            raise ValueError("responseTimeoutSeconds must not be larger than timeoutSeconds")
        return self

    def declared(self) -> dict[str, Any]:
        """The fields the file sets, as the API names them."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class WorkflowEntry(BaseModel):
    """``[[workflows]]``: a workflow definition (JSON, as exported from Orkes) to register."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(min_length=1, description="Path of the JSON workflow definition, relative to this file.")


class GrantEntry(BaseModel):
    """``[[applications.grants]]``: access on some targets; every list is optional, one is needed."""

    model_config = ConfigDict(extra="forbid")

    tasks: list[Name] = Field(default_factory=list, description="Task definition names (TASK_DEF targets).")
    workflows: list[Name] = Field(default_factory=list, description="Workflow names (WORKFLOW_DEF targets).")
    tags: list[TagTarget] = Field(default_factory=list, description="Tags as key:value (TAG targets).")
    domains: list[Name] = Field(default_factory=list, description="Task domains (DOMAIN targets).")
    access: list[Access] = Field(default_factory=lambda: list[Access](["EXECUTE"]), min_length=1,
                                 description="Access to grant on each target; default EXECUTE.")

    @field_validator("tasks", "workflows", "tags", "domains")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _some_target(self) -> GrantEntry:
        if not (self.tasks or self.workflows or self.tags or self.domains):
            raise ValueError("a grant needs at least one of tasks, workflows, tags, domains")
        return self

    def targets(self) -> list[tuple[str, str]]:
        return ([("TASK_DEF", t) for t in self.tasks] + [("WORKFLOW_DEF", w) for w in self.workflows]
                + [("TAG", t) for t in self.tags] + [("DOMAIN", d) for d in self.domains])


class ApplicationEntry(BaseModel):
    """``[[applications]]``: one application, its roles, grants and where its key goes."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(min_length=1, description="Application name; must be unique on the server.")
    roles: list[Role] = Field(default_factory=lambda: list[Role](["WORKER"]), description="Roles; default WORKER.")
    store: str | None = Field(default=None, description=f"Where the key goes ({STORE_FORMS}; env-file paths are "
                                                        "relative to this file). Omit it: no key is managed.")
    grants: list[GrantEntry] = Field(default_factory=list)
    workflow_tasks: list[Name] = Field(default_factory=list, alias="workflowTasks",
                                       description="Workflows whose worker (SIMPLE) tasks this application gets "
                                                   "EXECUTE on, through forks, switches, loops and sub-workflows; "
                                                   "definitions from [[workflows]], else the server.")
    owned: bool = Field(default=True, description="false: apply never tags it as this environment's and --prune "
                                                  "never touches it (what 'provision export' writes for "
                                                  "applications made by hand).")
    key_max_age: str | None = Field(default=None, alias="keyMaxAge",
                                    description="Longest an ACTIVE key may live, as a duration (90d, 12h): apply "
                                                "rotates an older one, doctor and drift report it. Needs store.")

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, value: list[Role]) -> list[Role]:
        return list(dict.fromkeys(value))

    @field_validator("store")
    @classmethod
    def _store_form(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        kind, sep, arg = value.partition(":")
        if value == "keyring" or (kind == "env-file" and sep and arg.strip()):
            return value
        if kind == "env-file":
            raise ValueError("env-file needs a path, e.g. 'env-file:secrets/worker.env'")
        raise ValueError(f"{value!r} is not one of {STORE_FORMS}")

    @field_validator("key_max_age")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            limit = parse_duration(value, unit_for_bare="d")
        except UsageError as err:
            if err.hint.startswith("did you mean"):
                raise ValueError(f"{value!r} has no unit: {err.hint}") from None
            raise ValueError(f"{value!r} is not a duration: write it like 90d, 30d or 12h") from None
        if limit <= timedelta(0):
            raise ValueError("must be longer than 0s (every apply would rotate the key)")
        return value.strip()

    @model_validator(mode="after")
    def _rotates_into_a_store(self) -> ApplicationEntry:
        # apply enforces keyMaxAge by rotating the key it manages, and it manages one only in a store.
        if self.key_max_age is not None and self.store is None:
            raise ValueError("keyMaxAge needs a store: apply rotates the key it keeps there")
        return self

    @property
    def key_max_age_limit(self) -> timedelta | None:
        return parse_duration(self.key_max_age) if self.key_max_age is not None else None


READ_ONLY_ROLE = "USER_READ_ONLY"
APP_USER_PREFIX = "app:"


def _unique_list(value: list[Any]) -> list[Any]:
    return list(dict.fromkeys(value))


def _read_only_alone(roles: list[str]) -> list[str]:
    # Orkes refuses USER_READ_ONLY next to any other role (the Java SDK checks it before sending).
    if READ_ONLY_ROLE in roles and len(roles) > 1:
        raise ValueError(f"{READ_ONLY_ROLE} cannot be combined with other roles")
    return roles


def _not_an_application(value: str) -> str:
    if value.startswith(APP_USER_PREFIX):
        raise ValueError(f"{value!r}: ids starting with 'app:' are applications' users; declare the application "
                         "under [[applications]] instead")
    return value


# A person's id: applications' users (``app:<id>``) are managed under [[applications]].
PersonId = Annotated[Name, AfterValidator(_not_an_application)]


class UserEntry(BaseModel):
    """``[[users]]``: a person. Orkes user ids are e-mail addresses; ``apply`` upserts the user."""

    model_config = ConfigDict(extra="forbid")

    id: PersonId = Field(description="User id, as people sign in (an e-mail address).")
    name: Name | None = Field(default=None, description="Display name; omitted: the server's (a new user: the id).")
    roles: list[PeopleRole] = Field(default_factory=list, description="Roles of the user itself (system roles, or "
                                                                      "custom roles); default none. Members also "
                                                                      "hold their groups' roles.")

    _unique_roles = field_validator("roles")(_unique_list)
    _read_only = field_validator("roles")(_read_only_alone)


class GroupEntry(BaseModel):
    """``[[groups]]``: a group, its roles, its members and grants that every member holds."""

    model_config = ConfigDict(extra="forbid")

    id: Name = Field(description="Group id (its name in the Orkes UI).")
    description: str | None = Field(default=None, description="Description; omitted: the server's (a new group: "
                                                              "empty).")
    roles: list[PeopleRole] = Field(default_factory=list, description="Roles every member holds (system roles, or "
                                                                      "custom roles); default none.")
    members: list[PersonId] = Field(default_factory=list, description="User ids: declared under [[users]] or "
                                                                     "already on the server.")
    grants: list[GrantEntry] = Field(default_factory=list, description="Given to the subject GROUP <id>.")

    _unique_roles = field_validator("roles")(_unique_list)
    _read_only = field_validator("roles")(_read_only_alone)
    _unique_members = field_validator("members")(_unique_list)


class RoleEntry(BaseModel):
    """``[[roles]]``: a custom role and its permissions, which users and groups may hold by name."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, AfterValidator(not_blank), AfterValidator(_custom_role_name)] = Field(
        description="Role name: uppercase words joined by '_' (WORKFLOW_OPERATOR); it cannot change later.")
    permissions: list[Annotated[str, AfterValidator(not_blank), AfterValidator(_permission_form)]] = Field(
        default_factory=list, description="Permissions, as the server names them (READ_WORKFLOW_DEF, "
                                          "EXECUTE_TASK_DEF, ...); 'provision apply' checks them against the "
                                          "server's list. Orkes adds CREATE_EVENT_HANDLER and "
                                          "CREATE_USER_FORM_TEMPLATE to every custom role.")

    _unique_permissions = field_validator("permissions")(_unique_list)


class Environment(BaseModel):
    """An environment file: definitions to register and applications to provision."""

    model_config = ConfigDict(extra="forbid", title="orkes-provision environment file")

    name: str = Field(description="Environment name; what apply creates is tagged environment=<name>, "
                                  "and --prune deletes only applications with that tag.")
    server: str | None = Field(default=None, description="Server URL; --server and CONDUCTOR_SERVER_URL win.")
    tasks: list[TaskEntry] = Field(default_factory=list)
    workflows: list[WorkflowEntry] = Field(default_factory=list)
    applications: list[ApplicationEntry] = Field(default_factory=list)
    users: list[UserEntry] = Field(default_factory=list)
    groups: list[GroupEntry] = Field(default_factory=list)
    roles: list[RoleEntry] = Field(default_factory=list)

    _path: Path | None = PrivateAttr(default=None)
    _text: str = PrivateAttr(default="")
    _shown: str = PrivateAttr(default="")
    _lines: FileLines = PrivateAttr(default_factory=lambda: FileLines(""))
    _workflow_defs: list[dict[str, Any]] = PrivateAttr(default_factory=list)
    # Application -> the tasks its workflowTasks use, once derived (derive_workflow_tasks).
    _derived: dict[str, tuple[str, ...]] | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return value

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def root(self) -> Path:
        return self._path.parent if self._path is not None else Path.cwd()

    @property
    def text(self) -> str:
        """The file as read (for locating lines in findings); empty when not read from a file."""
        return self._text

    @property
    def shown(self) -> str:
        """The file's name as the user would type it (relative to the cwd when below it)."""
        if self._shown:
            return self._shown
        return _display(self._path) if self._path is not None else "the environment file"

    def line(self, loc: tuple[str | int, ...], value: object = None) -> int | None:
        """The line of ``loc`` (``("applications", 2, "grants", 0, "tasks", 1)``) or of what holds it
        (``value``: the element of a list at ``loc``, found on its own line)."""
        return self._lines.line(loc, value)

    def problem(self, loc: tuple[str | int, ...], message: str, hint: str, value: object = None) -> Problem:
        """A problem at ``loc`` (about ``value``, an element of a list there), located at its line."""
        return Problem(file=self.shown, line=self.line(loc, value), path=format_location(loc), message=message,
                       hint=hint)

    def task_references(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Where the file names a task definition in a grant, and the name (``tasks`` of every ``grants``)."""
        found: list[tuple[tuple[str | int, ...], str]] = []
        holders: list[tuple[str, list[list[GrantEntry]]]] = [
            ("applications", [a.grants for a in self.applications]), ("groups", [g.grants for g in self.groups])]
        for section, grant_lists in holders:
            for index, grants in enumerate(grant_lists):
                for number, grant in enumerate(grants):
                    found += [((section, index, "grants", number, "tasks", at), task)
                              for at, task in enumerate(grant.tasks)]
        return found

    def unknown_tasks(self, registered: Iterable[str]) -> list[Problem]:
        """Each task a grant or a ``workflowTasks`` names that neither ``[[tasks]]`` declares nor ``registered``
        (the server's) holds, at its line, with the name it likely meant."""
        known = set(registered) | {t.name for t in self.tasks}
        where = "declared under [[tasks]] nor on the server"
        declare = f"declare it under [[tasks]] in {self.shown}, or register it first"
        problems = self.unknown_names(self.task_references(), known, what="task {!r}", where=where, fix=declare)
        for index, app in enumerate(self.applications):
            used = [(("applications", index, "workflowTasks"), name) for name in self.derived_tasks(app)]
            problems += self.unknown_names(used, known, what="task {!r}, which its workflows use,", where=where,
                                           fix=declare)
        return problems

    def unknown_members(self, users: Iterable[str]) -> list[Problem]:
        """Each group member that neither ``[[users]]`` declares nor ``users`` (the server's) holds."""
        members = [(("groups", index, "members", at), member) for index, group in enumerate(self.groups)
                   for at, member in enumerate(group.members)]
        return self.unknown_names(members, {u.id for u in self.users} | set(users), what="member {!r}",
                                  where="declared under [[users]] nor a user on the server",
                                  fix=f"declare it under [[users]] in {self.shown}, or fix the id")

    def unknown_names(self, references: Iterable[tuple[tuple[str | int, ...], str]], known: Iterable[str], *,
                      what: str, where: str, fix: str) -> list[Problem]:
        """A problem for each name of ``references`` (its place in the file, the name) not in ``known``, with
        the known name it likely meant (``shipp`` -> ``ship``, ``Pack`` -> ``pack``) and the edit that uses
        it; ``fix`` is the hint otherwise. ``what`` names the thing (``"task {!r}"``), ``where`` where it
        was looked for (``"declared under [[tasks]] nor on the server"``)."""
        names = set(known)
        problems = []
        for loc, name in references:
            if name in names:
                continue
            meant = closest(name, names, typos_only=True)
            message = f"{what.format(name)} is neither {where}"
            if meant is not None:
                problems.append(self.problem(loc, f"{message}; did you mean {meant!r}?",
                                             f"replace {name!r} with {meant!r}", name))
            else:
                problems.append(self.problem(loc, message, fix, name))
        return problems

    @property
    def workflow_defs(self) -> list[dict[str, Any]]:
        """The workflow definitions read from the ``[[workflows]]`` files, in file order."""
        return list(self._workflow_defs)

    def store_spec(self, app: ApplicationEntry) -> str | None:
        """The application's store with an env-file path made absolute (relative to this file)."""
        if app.store is None or app.store == "keyring":
            return app.store
        path = Path(app.store.partition(":")[2].strip()).expanduser()
        return f"env-file:{path if path.is_absolute() else (self.root / path)}"

    def derive_workflow_tasks(self, server: Fetch | None = None) -> list[WorkflowTasks]:
        """Walk each application's ``workflowTasks`` (the file's ``[[workflows]]`` first, then ``server``);
        ``app_specs`` then grants EXECUTE on what was found. ``ConfigError`` names a workflow found nowhere."""
        fetch = local_first(self._workflow_defs, server)
        derived: dict[str, tuple[str, ...]] = {}
        walks: list[WorkflowTasks] = []
        problems: list[Problem] = []
        declared = [str(d["name"]) for d in self._workflow_defs]
        where = "[[workflows]]" + (" or on the server" if server is not None else "")
        for index, app in enumerate(self.applications):
            tasks: set[str] = set()
            for name in app.workflow_tasks:
                walked = workflow_tasks(name, fetch)
                if walked is None:
                    meant = closest(name, declared)
                    problems.append(self.problem(
                        ("applications", index, "workflowTasks"),
                        f"workflowTasks: workflow {name!r} is not in {where}"
                        + (f"; did you mean {meant!r}?" if meant else ""),
                        f"replace {name!r} with {meant!r}" if meant else
                        "check the name, or declare its definition under [[workflows]]"))
                    continue
                tasks |= walked.tasks
                walks.append(walked)
            if app.workflow_tasks:
                derived[app.name] = tuple(sorted(tasks))
        if problems:
            raise with_problems(ConfigError, problems, docs=_DOCS)
        self._derived = derived
        return walks

    def derived_tasks(self, app: ApplicationEntry) -> tuple[str, ...]:
        """The tasks ``app``'s ``workflowTasks`` use (derived from the file alone if no server was asked)."""
        if not app.workflow_tasks:
            return ()
        if self._derived is None:
            self.derive_workflow_tasks()
        assert self._derived is not None
        return self._derived.get(app.name, ())

    def app_specs(self) -> list[AppSpec]:
        """The applications as the engine's ``AppSpec``; grants on the same target are merged."""
        return [AppSpec(name=app.name, roles=tuple(app.roles),
                        grants=_merged_grants(app.grants, self.derived_tasks(app)),
                        store=self.store_spec(app), owned=app.owned, key_max_age=app.key_max_age_limit)
                for app in self.applications]

    def task_entries(self) -> dict[str, TaskEntry]:
        return {t.name: t for t in self.tasks}

    def user_specs(self) -> list[UserSpec]:
        """The ``[[users]]`` as the engine's ``UserSpec``."""
        return [UserSpec(id=u.id, name=u.name, roles=tuple(u.roles)) for u in self.users]

    def group_specs(self) -> list[GroupSpec]:
        """The ``[[groups]]`` as the engine's ``GroupSpec``; grants on the same target are merged."""
        return [GroupSpec(id=g.id, description=g.description, roles=tuple(g.roles), members=tuple(g.members),
                          grants=_merged_grants(g.grants)) for g in self.groups]

    def role_specs(self) -> list[RoleSpec]:
        """The ``[[roles]]`` as the engine's ``RoleSpec``."""
        return [RoleSpec(name=r.name, permissions=tuple(r.permissions)) for r in self.roles]

    @property
    def declares_people(self) -> bool:
        return bool(self.users or self.groups)

    @property
    def uses_custom_roles(self) -> bool:
        """Whether the file declares custom roles or gives users or groups a role that is not a system role."""
        return bool(self.roles) or any(r not in KNOWN_ROLES for r in self._people_roles())

    def _people_roles(self) -> list[str]:
        return [r for u in self.users for r in u.roles] + [r for g in self.groups for r in g.roles]

    def unknown_roles(self, server_roles: Iterable[str]) -> list[Problem]:
        """Each role of a user or a group that is neither a system role, nor declared under ``[[roles]]``, nor
        among ``server_roles`` (the server's custom roles)."""
        held = [(("users", index, "roles", at), role) for index, user in enumerate(self.users)
                for at, role in enumerate(user.roles)]
        held += [(("groups", index, "roles", at), role) for index, group in enumerate(self.groups)
                 for at, role in enumerate(group.roles)]
        known = set(KNOWN_ROLES) | {r.name for r in self.roles} | set(server_roles)
        return self.unknown_names(held, known, what="role {!r}",
                                  where="a system role, nor declared under [[roles]], nor a custom role on the server",
                                  fix=f"declare it under [[roles]] in {self.shown} with its permissions, or fix the "
                                      "name")

    def unknown_permissions(self, catalogue: Iterable[str]) -> list[Problem]:
        """Each permission of a ``[[roles]]`` entry that the server's ``catalogue`` lacks, with the one it likely
        meant (``GET /api/roles/permissions``)."""
        allowed = set(catalogue)
        problems = []
        for index, role in enumerate(self.roles):
            for at, permission in enumerate(role.permissions):
                if permission in allowed:
                    continue
                meant = closest(permission, allowed)
                message = f"the server has no permission {permission!r} (role {role.name})"
                loc = ("roles", index, "permissions", at)
                if meant is not None:
                    problems.append(self.problem(loc, f"{message}; did you mean {meant!r}?",
                                                 f"replace {permission!r} with {meant!r}", permission))
                else:
                    problems.append(self.problem(loc, message, "use a name the server lists (GET /api/roles/"
                                                               "permissions); docs/environment.md shows the common "
                                                               "ones", permission))
        return problems

def _merged_grants(grants: list[GrantEntry], executes: tuple[str, ...] = ()) -> tuple[GrantSpec, ...]:
    merged: dict[tuple[str, str], set[str]] = {}
    for grant in grants:
        for target in grant.targets():
            merged.setdefault(target, set()).update(grant.access)
    for task in executes:
        merged.setdefault(("TASK_DEF", task), set()).add("EXECUTE")
    return tuple(GrantSpec(type=t, id=i, access=tuple(sorted(a))) for (t, i), a in merged.items())


def _same_file_key(store: str) -> str:
    from orkes_provision.credentials.delivery import normalize_store_spec

    return normalize_store_spec(store, base=Path("/"))


def environment_schema() -> dict[str, Any]:
    """The JSON Schema of the environment file (``provision schema``)."""
    schema = Environment.model_json_schema(by_alias=True)
    return {"$schema": SCHEMA_URL, **schema}


def load_environment(path: Path | str) -> Environment:
    """Read, parse and validate an environment file, and the workflow files it names.

    Raises ``ConfigError`` listing every problem, each at its line (``Problem``); a TOML syntax error
    is one line naming the line and column.
    """
    path = Path(path)
    shown = _display(path)
    raw = read_file(path, shown, "environment file", missing_hint="check the path given to -f",
                    directory_hint="give the .toml file to -f")
    data = parse_toml(raw, shown)
    return validate_environment(data, shown, text=raw.decode("utf-8"), root=path.resolve())


def validate_environment(data: Any, shown: str, *, text: str = "", root: Path | None = None) -> Environment:
    """Validate parsed data strictly (``"30"`` is not a number): ``ConfigError`` listing every problem, located
    in ``text`` (the file as read) when given. With ``root`` (the file's path), the workflow files it names
    are read too."""
    lines = FileLines(text)
    try:
        env = Environment.model_validate(data, strict=True)
    except ValidationError as err:
        raise with_problems(ConfigError, schema_problems(shown, lines, err, Environment, _DOCS), docs=_DOCS) \
            from None
    env._text, env._shown, env._lines = text, shown, lines
    problems = _cross_problems(env)
    if root is not None:
        env._path = root
        problems += _read_workflows(env)
    if problems:
        raise with_problems(ConfigError, problems, docs=_DOCS)
    return env


def _cross_problems(env: Environment) -> list[Problem]:
    """What no single entry shows: names used twice, a read-only member of a group, two keys in one file."""
    problems = []
    for section, key, names in (("applications", "name", [a.name for a in env.applications]),
                                ("tasks", "name", [t.name for t in env.tasks]),
                                ("users", "id", [u.id for u in env.users]),
                                ("groups", "id", [g.id for g in env.groups]),
                                ("roles", "name", [r.name for r in env.roles])):
        first: dict[str, int] = {}
        for index, name in enumerate(names):
            if name in first:
                problems.append(env.problem(
                    (section, index, key), f"two {section} are named {name!r} (the other at line "
                                           f"{env.line((section, first[name], key))}); "
                                           "names must be unique", "rename or remove one of them"))
            first.setdefault(name, index)
    read_only = {u.id for u in env.users if READ_ONLY_ROLE in u.roles}
    for index, group in enumerate(env.groups):
        for number, member in enumerate(group.members):
            if member in read_only:
                problems.append(env.problem(
                    ("groups", index, "members", number), f"user {member!r} has the role {READ_ONLY_ROLE}, which "
                                                          f"Orkes refuses to a member of a group (group {group.id!r})",
                    f"remove {member!r} from the members, or give the user another role"))
    # Compared normalised: env-file:dup.env and env-file:./dup.env are one file. All paths are relative to
    # the same directory (this file's), so any base gives the same answer.
    seen_stores: dict[str, str] = {}
    for index, app in enumerate(env.applications):
        if not (app.store and app.store.startswith("env-file:")):
            continue
        normal = _same_file_key(app.store)
        if normal in seen_stores:
            problems.append(env.problem(
                ("applications", index, "store"), f"two applications write their key to {seen_stores[normal]!r} "
                                                  f"and {app.store!r}, which are one file", "give each its own file"))
        seen_stores.setdefault(normal, app.store)
    return problems


def _read_workflows(env: Environment) -> list[Problem]:
    """Read the ``[[workflows]]`` files into ``env``; a problem for each that cannot be used."""
    problems: list[Problem] = []
    seen: dict[tuple[str, int], int] = {}
    for index, entry in enumerate(env.workflows):
        loc = ("workflows", index, "file")
        try:
            definition = _load_workflow(env, entry)
        except ConfigError as err:
            problems.append(env.problem(loc, f"file: {err.message}", err.hint))
            continue
        key = (definition["name"], definition.get("version", 1))
        if key in seen:
            problems.append(env.problem(loc, f"file: workflow {key[0]!r} version {key[1]} is also defined at line "
                                             f"{env.line(('workflows', seen[key], 'file'))}",
                                        "keep one definition per name and version"))
            continue
        seen[key] = index
        env._workflow_defs.append(definition)
    return problems


def _load_workflow(env: Environment, entry: WorkflowEntry) -> dict[str, Any]:
    path = Path(entry.file).expanduser()
    path = path if path.is_absolute() else env.root / path
    try:
        if path.stat().st_size > MAX_WORKFLOW_BYTES:
            raise ConfigError(f"{entry.file} is larger than {MAX_WORKFLOW_BYTES // 1024 // 1024} MiB",
                              "point it at a workflow definition (JSON)")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{entry.file}: no such file",
                          f"paths are relative to {_display(env.root)}") from None
    except IsADirectoryError:
        raise ConfigError(f"{entry.file} is a directory", "point it at a JSON workflow definition") from None
    except OSError as err:
        raise ConfigError(f"cannot read {entry.file}: {err.strerror}", "check the file's permissions") \
            from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{entry.file} is not UTF-8 text", "save it as UTF-8 JSON") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{entry.file}: line {err.lineno}, column {err.colno}: JSON syntax: "
                          f"{first_lower(err.msg)}", "fix the JSON at that place") from None
    except RecursionError:
        raise ConfigError(f"{entry.file}: JSON nested too deeply", "fix the JSON") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{entry.file} must hold one JSON object (a workflow definition)",
                          "export the definition from Orkes, or see docs/environment.md")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{entry.file}: 'name' is missing or not a string",
                          "a workflow definition needs a name")
    if (bad := forbidden_character(name)) is not None:
        raise ConfigError(f"{entry.file}: 'name' contains {describe_character(bad)}, a control or "
                          "line-separator character", "names are plain text on one line")
    if not isinstance(data.get("tasks"), list):
        raise ConfigError(f"{entry.file}: 'tasks' is missing or not a list",
                          "a workflow definition needs its list of tasks")
    version = data.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"{entry.file}: 'version' must be a whole number >= 1",
                          "leave it out for version 1")
    return data


def _display(path: Path) -> str:
    # As the user would type it: relative to the cwd when it is below it.
    try:
        absolute = path if path.is_absolute() else Path.cwd() / path
        return os.path.relpath(absolute) if Path.cwd() in absolute.parents else str(path)
    except (ValueError, OSError):
        return str(path)
