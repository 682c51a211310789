"""``provision export``: the server's current environment, written as an environment file.

Reads task definitions, workflow definitions (latest version of each), applications with their
roles and grants, users and groups (roles, members, grants), and writes what
``provision plan -f FILE`` then finds nothing to do for:
every declared field is the server's own value, workflows are the server's JSON (minus the fields
the server stamps on every write), and applications not tagged as this environment's are written
``owned = false`` so that planning does not want to tag them. Keys and secrets are never read.

What the file cannot hold is left out and listed in ``Export.skipped`` with the reason (a grant
on a target type the file has no key for, two applications with one name, a role the file does
not know, a field TOML cannot carry), never dropped silently.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from pydantic import BaseModel, ValidationError

from orkes_provision import trust
from orkes_provision.access.spec import GRANT_TARGET_TYPES, IMPLICIT_ROLE_PERMISSIONS, parse_tag_target
from orkes_provision.access.state import PeopleState, grants_by_target, read_people, read_roles
from orkes_provision.environments.environment import (
    APP_USER_PREFIX,
    ENVIRONMENT_NAME,
    READ_ONLY_ROLE,
    GroupEntry,
    RoleEntry,
    TaskEntry,
    UserEntry,
    validate_environment,
)
from orkes_provision.environments.written import not_ours, remember
from orkes_provision.errors import ConfigError, Conflict, NotFound, PermissionDenied, ProvisionError, UsageError
from orkes_provision.fileio import write_private_file
from orkes_provision.orkes.models import (
    ACCESS_TYPES,
    KNOWN_ROLES,
    MANAGED_TAG,
    Application,
    Role,
    TaskDef,
    app_subject,
)
from orkes_provision.toml.read import parse_toml
from orkes_provision.toml.write import NotRepresentable, dumps

if TYPE_CHECKING:
    from orkes_provision.environments.environment import Environment
    from orkes_provision.orkes.client import OrkesClient

HEADER = ("# Written by 'provision export': the server's task and workflow definitions, applications (roles,\n"
          "# grants), users and groups. No keys: give an application a store (store = \"keyring\") for apply to\n"
          "# make one.\n")
WORKFLOW_DIR = "workflows"
# Fields the server stamps on every write: they would differ on every server the file is applied to.
SERVER_STAMPS = frozenset({"createTime", "updateTime", "createdBy", "updatedBy", "ownerApp"})
ENVIRONMENT_TAG_KEY = "environment"
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
# file key -> grant target type, in the order a grant table lists them
_GRANT_KEYS = (("tasks", "TASK_DEF"), ("workflows", "WORKFLOW_DEF"), ("tags", "TAG"), ("domains", "DOMAIN"))


@dataclass(frozen=True)
class Skipped:
    """Something on the server the file does not carry, and why."""

    what: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"what": self.what, "reason": self.reason}


@dataclass
class Export:
    """An exported environment: the TOML document and the workflow files it names."""

    name: str
    server: str
    document: dict[str, Any]
    workflow_files: dict[str, dict[str, Any]]  # path relative to the environment file -> definition
    skipped: list[Skipped] = field(default_factory=list)
    read_requests: int = 0

    def toml(self) -> str:
        return HEADER + "\n" + dumps(self.document)

    def counts(self) -> dict[str, int]:
        return {key: len(self.document.get(key) or []) for key in ("tasks", "workflows", "applications", "roles",
                                                                    "users", "groups")}

    def write(self, path: Path, *, force: bool = False) -> list[Path]:
        """Write the workflow files, then the environment file (so it never names a missing file).

        The environment file was named by the user (``-o``) and is replaced; a workflow file export
        did not write is not, unless ``force`` (``Conflict`` names them, before anything is written).
        """
        with _output_directory(path.parent) as dir_fd:
            written = self._write_workflows_in(dir_fd, path.parent, force)
            text = self.toml()
            _write(path, text, dir_fd)
        remember([(path, text.encode("utf-8"))])
        return [*written, path]

    def write_workflows(self, directory: Path, *, force: bool = False) -> list[Path]:
        """The workflow files, relative to ``directory`` (where the environment file is or will be)."""
        with _output_directory(directory) as dir_fd:
            return self._write_workflows_in(dir_fd, directory, force)

    def _write_workflows_in(self, dir_fd: int, directory: Path, force: bool) -> list[Path]:
        if not self.workflow_files:
            return []
        targets = {directory / relative: workflow_json(definition)
                   for relative, definition in sorted(self.workflow_files.items())}
        with _workflow_directory(dir_fd, directory / WORKFLOW_DIR) as workflows_fd:
            if not force:
                foreign = not_ours({t: (_read_at(workflows_fd, t.name), text.encode("utf-8"))
                                    for t, text in targets.items()})
                if foreign:
                    raise Conflict(f"export would replace {len(foreign)} file{'s' if len(foreign) > 1 else ''} it "
                                   f"did not write: {', '.join(str(p) for p in foreign)}; nothing was written",
                                   "move them away, or add --force to replace them")
            for target, text in targets.items():
                _write(target, text, workflows_fd)
        remember((t, text.encode("utf-8")) for t, text in targets.items())
        return list(targets)

    def summary(self, *, narrowed: bool) -> str:
        """One line for the user; ``narrowed`` to some applications, the export read no users or groups."""
        counts = self.counts()
        parts = [_count(counts["tasks"], "task definition"), _count(counts["workflows"], "workflow"),
                 _count(counts["applications"], "application")]
        if not narrowed:
            parts += [_count(counts["users"], "user"), _count(counts["groups"], "group")]
            if counts["roles"]:
                parts.append(_count(counts["roles"], "custom role"))
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        return f"Exported environment {self.name} from {self.server}: {', '.join(parts)}."

    def to_dict(self) -> dict[str, Any]:
        return {"environment": self.name, "server": self.server, "counts": self.counts(),
                "workflowFiles": sorted(self.workflow_files), "skipped": [s.to_dict() for s in self.skipped]}


@dataclass(frozen=True)
class Previous:
    """What exporting over an existing environment file keeps of it: the server knows nothing of
    stores and keyMaxAge (policies of the file), and the file's name is the environment's."""

    name: str | None = None
    stores: dict[str, str] = field(default_factory=dict)
    key_max_ages: dict[str, str] = field(default_factory=dict)
    # What exporting over the file replaces, said before it is gone (None: no file, or one that did not load).
    replaces: str | None = None


def export_target(output: str | None) -> Path | None:
    """Where ``-o`` writes (``None``: to stdout); a directory is refused."""
    target = Path(output) if output else None
    if target is not None and target.is_dir():
        raise UsageError(f"-o {output}: is a directory", "give a file name, e.g. -o staging.toml")
    return target


def previous_export(target: Path | None, *, on_replaced: Callable[[ConfigError], None]) -> Previous:
    """What ``target``, when it is an environment file already, keeps; one that does not load is replaced
    whole (``on_replaced`` is told why)."""
    if target is None or not target.is_file():
        return Previous()
    from orkes_provision.environments.environment import load_environment

    try:
        previous = load_environment(target)
    except ConfigError as err:
        on_replaced(err)
        return Previous()
    return Previous(name=previous.name, stores={a.name: a.store for a in previous.applications if a.store},
                    key_max_ages={a.name: a.key_max_age for a in previous.applications if a.key_max_age},
                    replaces=_replaces(target, previous))


def _replaces(path: Path, previous: Environment) -> str:
    """What exporting over ``path`` replaces."""
    from orkes_provision.environments.written import written_by_export

    counts = {"applications": len(previous.applications), "tasks": len(previous.tasks),
              "workflows": len(previous.workflows)}
    held = ", ".join(f"{n} {what if n != 1 else what[:-1]}" for what, n in counts.items())
    origin = "as export last wrote it" if written_by_export(path) else \
        "which export did not write (or it was edited since): its comments and layout are not kept"
    return f"replaced {path}, environment {previous.name} with {held}, {origin}; its stores and keyMaxAge are kept"


def workflow_json(definition: Mapping[str, Any]) -> str:
    # Sorted keys: two servers list a definition's fields in different orders, the file must not care.
    return json.dumps(definition, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _read_at(dir_fd: int, name: str) -> bytes | None:
    """What file ``name`` in ``dir_fd`` holds (``None``: no such file), read without following a link."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError:
        return b""  # a link or something unreadable: not what export wrote
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def _write(path: Path, text: str, dir_fd: int) -> None:
    try:
        write_private_file(path, text.encode("utf-8"), mode=0o644, dir_fd=dir_fd)
    except OSError as err:
        raise ConfigError(f"cannot write {path}: {err.strerror}", "check the directory exists and is writable") \
            from None


@contextlib.contextmanager
def _output_directory(directory: Path) -> Iterator[int]:
    """The directory the export writes into, open, once no other user could redirect or swap what it writes."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with trust.opened_directory(directory) as (dir_fd, info):
            if trust.new_file_problem(info) is not None:
                raise trust.directory_refusal(directory, info, trust.directory_problem(info) or "", could="replace "
                                              "what export writes", hint="write the export into a directory only "
                                              "you can write")
            yield dir_fd
    except OSError as err:
        raise ConfigError(f"cannot write into {directory}: {err.strerror}",
                          "check the directory exists and is writable") from None


@contextlib.contextmanager
def _workflow_directory(dir_fd: int, shown: Path) -> Iterator[int]:
    """``workflows/`` beside the file: made if missing; a link, or a directory another user owns or can
    write, is refused (what 'plan' reads from it must be what export wrote)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(WORKFLOW_DIR, 0o777, dir_fd=dir_fd)
    try:
        fd = os.open(WORKFLOW_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        try:
            link = stat.S_ISLNK(os.lstat(WORKFLOW_DIR, dir_fd=dir_fd).st_mode)
        except OSError:
            link = False
        what = "a symbolic link" if link else "not a directory"
        raise ConfigError(f"refusing to write into {shown}: it is {what}",
                          f"remove or rename {shown}, then export again") from None
    try:
        info = os.fstat(fd)
        problem = trust.directory_problem(info)
        if problem is not None:
            raise trust.directory_refusal(shown, info, problem, could="change the workflows it holds",
                                          hint=f"remove or rename {shown}, then export again")
        yield fd
    finally:
        os.close(fd)


def export_environment(client: OrkesClient, *, server: str, name: str | None = None,
                       applications: Sequence[str] = (), tags: Sequence[str] = (),
                       self_key_id: str | None = None, stores: Mapping[str, str] | None = None,
                       parallelism: int = 16, key_max_ages: Mapping[str, str] | None = None) -> Export:
    """Read the server and build the environment file that describes it.

    ``applications`` and ``tags`` (``key:value``, all must match) narrow the applications; then
    only the task and workflow definitions their grants name (and the tasks those workflows use)
    are written. The application whose key makes the requests (``self_key_id``) is left out
    unless named in ``applications``: it is how the server is reached, not part of the environment.
    ``stores`` (application name -> store) are written as they are: the server knows nothing of
    them, so re-exporting over a file keeps the ones it had; so are ``key_max_ages`` (application
    name -> ``keyMaxAge``), a policy of the file. Users and groups are written only when
    the applications are not narrowed: they carry no tags, and no application names them.
    """
    _check_name(name)
    before = client.request_count
    skipped: list[Skipped] = []
    filtered = bool(applications or tags)
    read = _read_server(client, applications=applications, tags=[_tag_pair(t) for t in tags],
                        self_key_id=self_key_id, with_people=not filtered, parallelism=parallelism, skipped=skipped)
    env_name = name or _default_name(read.apps, server)
    app_entries = [_app_entry(app, read.roles[app.id], read.grants[app.id], env_name, (stores or {}).get(app.name),
                              skipped, (key_max_ages or {}).get(app.name)) for app in read.apps]
    wanted_workflows = sorted(_granted(app_entries, "workflows") & set(read.workflow_defs) if filtered
                              else read.workflow_defs)
    workflows = {n: _strip_stamps(read.workflow_defs[n]) for n in wanted_workflows}
    workflow_entries, workflow_files = _workflow_entries(workflows, skipped)
    # Narrowed to some applications: only the tasks their grants and their workflows name.
    used = _granted(app_entries, "tasks") | {t for d in workflows.values() for t in tasks_used(d)} if filtered \
        else read.task_defs
    task_entries = [entry for n in sorted(set(used) & set(read.task_defs))
                    if (entry := task_entry(read.task_defs[n], skipped)) is not None]
    custom = read.custom_roles or {}
    role_entries = _role_entries(custom, skipped)
    user_entries, group_entries = _people_entries(read.people, skipped, {r["name"] for r in role_entries}) \
        if read.people is not None else ([], [])
    document = {"name": env_name} | {key: entries for key, entries in (
        ("tasks", task_entries), ("workflows", workflow_entries), ("applications", app_entries),
        ("roles", role_entries), ("users", user_entries), ("groups", group_entries)) if entries}
    result = Export(name=env_name, server=server, document=document, workflow_files=workflow_files,
                    skipped=skipped, read_requests=client.request_count - before)
    _check_loads(result)
    return result


def _check_name(name: str | None) -> None:
    if name is not None and not ENVIRONMENT_NAME.match(name):
        raise UsageError(f"--name {name!r} is not a valid environment name",
                         "use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")


def _granted(app_entries: Iterable[Mapping[str, Any]], key: str) -> set[str]:
    """The task (``key="tasks"``) or workflow definitions the applications' grants name."""
    return {name for entry in app_entries for grant in entry.get("grants", []) for name in grant.get(key, [])}


@dataclass
class _ServerRead:
    """What export reads: the chosen applications with their roles and grants, the definitions, the people."""

    apps: list[Application]
    roles: dict[str, set[str]]
    grants: dict[str, dict[tuple[str, str], set[str]]]
    task_defs: dict[str, TaskDef]
    workflow_defs: dict[str, dict[str, Any]]
    people: PeopleState | None
    custom_roles: dict[str, Role] | None = None


def _read_server(client: OrkesClient, *, applications: Sequence[str], tags: Sequence[tuple[str, str]],
                 self_key_id: str | None, with_people: bool, parallelism: int,
                 skipped: list[Skipped]) -> _ServerRead:
    """Every read at once: the lists first, then each chosen application's roles and grants."""
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        task_future = pool.submit(client.list_task_defs)
        workflow_future = pool.submit(client.list_workflow_defs)
        people_futures = (pool.submit(client.list_users), pool.submit(client.list_groups)) if with_people else None
        roles_future = pool.submit(_custom_roles, client, skipped) if with_people else None
        self_future = pool.submit(_own_app_id, client, self_key_id) if self_key_id else None
        all_apps = client.list_applications()
        own_id = self_future.result() if self_future is not None else None
        chosen = _choose_apps(all_apps, applications, tags, own_id, skipped)
        users = [pool.submit(client.get_app_user, a.id) for a in chosen]
        perms = [pool.submit(client.get_user_permissions, app_subject(a.id).id) for a in chosen]
        people = None
        if people_futures is not None:
            all_groups = people_futures[1].result()
            people = read_people(client, pool, people_futures[0].result(), all_groups, [g.id for g in all_groups])
        return _ServerRead(apps=chosen, roles={a.id: u.result().role_names for a, u in zip(chosen, users, strict=True)},
                           grants={a.id: grants_by_target(p.result()) for a, p in zip(chosen, perms, strict=True)},
                           task_defs={t.name: t for t in task_future.result()},
                           workflow_defs=_latest_versions(workflow_future.result()), people=people,
                           custom_roles=roles_future.result() if roles_future is not None else None)


def _custom_roles(client: OrkesClient, skipped: list[Skipped]) -> dict[str, Role] | None:
    """The custom roles; None (and said) on a server without ``/api/roles``."""
    try:
        return read_roles(client).custom
    except NotFound:
        skipped.append(Skipped("custom roles", "the server has no /api/roles (404)"))
        return None


def _own_app_id(client: OrkesClient, key_id: str) -> str | None:
    try:
        return client.get_application_by_key(key_id).id
    except (NotFound, PermissionDenied):
        return None  # not an application key (or not ours to read): nothing to leave out


def _tag_pair(text: str) -> tuple[str, str]:
    key, _, value = parse_tag_target(text).partition(":")
    return key, value


def _choose_apps(apps: list[Application], names: Sequence[str], tags: Sequence[tuple[str, str]], own_id: str | None,
                 skipped: list[Skipped]) -> list[Application]:
    by_name: dict[str, list[Application]] = {}
    for app in apps:
        by_name.setdefault(app.name, []).append(app)
    if names:
        missing = [n for n in dict.fromkeys(names) if n not in by_name]
        if missing:
            raise NotFound(f"no application is named {', '.join(repr(n) for n in missing)}",
                           "'provision apps list' shows the applications")
        candidates = [a for n in dict.fromkeys(names) for a in by_name[n]]
    else:
        candidates = [a for a in apps if a.id != own_id]
    candidates = [a for a in candidates if _has_tags(a, tags)]
    chosen: list[Application] = []
    for name in sorted({a.name for a in candidates}):
        same = [a for a in candidates if a.name == name]
        reason = unwritable_name(name)
        if reason:
            skipped.append(Skipped(f"application {name!r}", f"its {reason}; rename it"))
            continue
        if len(by_name[name]) > 1:
            ids = ", ".join(sorted(a.id for a in by_name[name]))
            skipped.append(Skipped(f"application {name}",
                                   f"{len(by_name[name])} applications have this name (ids {ids}); an environment "
                                   "file needs unique names: delete or rename the extras, then export again"))
            continue
        chosen.extend(same)
    return chosen


def _has_tags(app: Application, tags: Sequence[tuple[str, str]]) -> bool:
    have = {(t.key, t.value) for t in app.tags}
    return all(tag in have for tag in tags)


def _default_name(apps: Iterable[Application], server: str) -> str:
    """The one environment the applications are tagged with by apply, else the server's host name."""
    environments = {t.value for a in apps for t in a.tags if t.key == ENVIRONMENT_TAG_KEY
                    and any((m.key, m.value) == (MANAGED_TAG.key, MANAGED_TAG.value) for m in a.tags)}
    if len(environments) == 1:
        candidate = _NAME_CHARS.sub("-", environments.pop()).strip("-._")[:63]
        if candidate:
            return candidate
    host = urlparse(server).hostname or ""
    return _NAME_CHARS.sub("-", host).strip("-._")[:63] or "exported"


def _owned(app: Application, env_name: str) -> bool:
    have = {(t.key, t.value) for t in app.tags}
    return (MANAGED_TAG.key, MANAGED_TAG.value) in have and (ENVIRONMENT_TAG_KEY, env_name) in have


def _role_entries(custom: Mapping[str, Role], skipped: list[Skipped]) -> list[dict[str, Any]]:
    """``[[roles]]``: every custom role, without the permissions Orkes adds to each by itself."""
    entries: list[dict[str, Any]] = []
    for name in sorted(custom):
        entry = {"name": name, "permissions": sorted(custom[name].permission_names - IMPLICIT_ROLE_PERMISSIONS)}
        if _valid(RoleEntry, entry, f"role {name}", skipped):
            entries.append(entry)
    return entries


def _people_entries(people: PeopleState, skipped: list[Skipped],
                    custom: set[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``[[users]]`` and ``[[groups]]``: every person and group, with roles (``custom`` ones included),
    members and grants."""
    users: list[dict[str, Any]] = []
    read_only: set[str] = set()
    for user_id in sorted(people.users):
        user = people.users[user_id]
        reason = unwritable_name(user_id) or ("its id starts with 'app:', which the file keeps for applications"
                                             if user_id.startswith(APP_USER_PREFIX) else "")
        if reason:
            skipped.append(Skipped(f"user {user_id!r}", reason))
            continue
        entry: dict[str, Any] = {"id": user_id}
        if user.name and user.name.strip() == user.name:
            entry["name"] = user.name
        entry["roles"] = _known_roles(user.role_names, f"user {user_id}", skipped, custom)
        if not _valid(UserEntry, entry, f"user {user_id}", skipped):
            continue
        if READ_ONLY_ROLE in entry["roles"]:
            read_only.add(user_id)
        users.append(entry)
    exported_users = {u["id"] for u in users}
    groups: list[dict[str, Any]] = []
    for group_id in sorted(people.groups):
        state = people.groups[group_id]
        reason = unwritable_name(group_id)
        if reason:
            skipped.append(Skipped(f"group {group_id!r}", f"its {reason}"))
            continue
        entry = {"id": group_id}
        if state.group.description:
            entry["description"] = state.group.description
        entry["roles"] = _known_roles(state.group.role_names, f"group {group_id}", skipped, custom)
        members: list[str] = []
        for member in sorted(state.members):
            if member in exported_users and member not in read_only:
                members.append(member)
            else:
                why = ("an application's user: the file declares only people as members"
                       if member.startswith(APP_USER_PREFIX) else "the user is not in the file (see above)")
                skipped.append(Skipped(f"member {member} of group {group_id}", why))
        entry["members"] = members
        if state.group.default_access:
            skipped.append(Skipped(f"defaultAccess of group {group_id}",
                                   "the environment file has no key for it; it stays as it is on the server"))
        grant_entries = _grant_entries(state.grants, f"group {group_id}", skipped)
        if grant_entries:
            entry["grants"] = grant_entries
        if _valid(GroupEntry, entry, f"group {group_id}", skipped):
            groups.append(entry)
    return users, groups


def _known_roles(roles: set[str], owner: str, skipped: list[Skipped],
                 custom: AbstractSet[str] = frozenset()) -> list[str]:
    """System roles first (in their order), then the ``custom`` roles written under ``[[roles]]``."""
    for role in sorted(roles - set(KNOWN_ROLES) - custom):
        skipped.append(Skipped(f"role {role} of {owner}", "not a role the environment file knows (a custom role?)"))
    return [r for r in KNOWN_ROLES if r in roles] + sorted(roles & custom)


def _valid(model: type[BaseModel], entry: dict[str, Any], what: str, skipped: list[Skipped]) -> bool:
    try:
        model.model_validate(entry)
        dumps(entry)
    except ValidationError as err:
        skipped.append(Skipped(what, _first_message(err)))
        return False
    except NotRepresentable as err:
        skipped.append(Skipped(what, str(err)))
        return False
    return True


def _app_entry(app: Application, roles: set[str], grants: Mapping[tuple[str, str], set[str]], env_name: str,
               store: str | None, skipped: list[Skipped], key_max_age: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": app.name, "roles": _known_roles(roles, f"application {app.name}", skipped)}
    if store:
        entry["store"] = store
        if key_max_age:  # a policy about the key kept in the store: without one, it means nothing
            entry["keyMaxAge"] = key_max_age
    if not _owned(app, env_name):
        entry["owned"] = False
    grant_entries = _grant_entries(grants, f"application {app.name}", skipped)
    if grant_entries:
        entry["grants"] = grant_entries
    return entry


def _grant_entries(grants: Mapping[tuple[str, str], set[str]], owner: str,
                   skipped: list[Skipped]) -> list[dict[str, Any]]:
    """Grant tables, one per distinct set of access (EXECUTE alone first), targets sorted."""
    by_access: dict[tuple[str, ...], dict[str, list[str]]] = {}
    for (target_type, target_id), held in sorted(grants.items()):
        known = tuple(a for a in ACCESS_TYPES if a in held)
        reason = _unexportable_grant(target_type, target_id)
        if reason or not known:
            skipped.append(Skipped(f"grant {'+'.join(sorted(held))} on {target_type} {target_id} to {owner}",
                                   reason or "no access type the file knows"))
            continue
        key = next(k for k, t in _GRANT_KEYS if t == target_type)
        by_access.setdefault(known, {}).setdefault(key, []).append(target_id)
    entries: list[dict[str, Any]] = []
    for access in sorted(by_access, key=lambda acc: (acc != ("EXECUTE",), len(acc),
                                                     [ACCESS_TYPES.index(a) for a in acc])):
        targets = by_access[access]
        grant: dict[str, Any] = {key: sorted(set(targets[key])) for key, _ in _GRANT_KEYS if key in targets}
        grant["access"] = list(access)
        entries.append(grant)
    return entries


def _unexportable_grant(target_type: str, target_id: str) -> str:
    if target_type not in GRANT_TARGET_TYPES:
        return f"the environment file has no key for {target_type} targets; manage it in the Orkes UI"
    reason = unwritable_name(target_id)
    if reason:
        return f"the target {reason}"
    if target_type == "TAG":
        key, sep, value = target_id.partition(":")
        if not sep or not key.strip() or not value.strip() or f"{key.strip()}:{value.strip()}" != target_id:
            return "a TAG target must be key:value, without spaces around ':'"
    return ""


def unwritable_name(name: str) -> str:
    """Why the file cannot carry ``name`` as it is (it strips names), or ``""``."""
    if not name.strip():
        return "has a blank name"
    if name != name.strip():
        return f"name {name!r} has white space around it, which the environment file strips"
    return ""


def task_entry(task_def: TaskDef, skipped: list[Skipped]) -> dict[str, Any] | None:
    """The ``[[tasks]]`` table for a server's task definition: every field the file knows, as the server has it."""
    reason = unwritable_name(task_def.name)
    if reason:
        skipped.append(Skipped(f"task definition {task_def.name!r}", f"its {reason}"))
        return None
    data = task_def.model_dump(mode="json", by_alias=True)
    entry: dict[str, Any] = {"name": task_def.name}
    for name, info in TaskEntry.model_fields.items():
        alias = info.alias or name
        if alias == "name":
            continue
        value = data.get(alias)
        if value is None or value == [] or value == {}:
            continue
        entry[alias] = value
    # Drop what the file would refuse (a value out of its range), one field at a time, saying which.
    for _ in range(len(entry)):
        try:
            TaskEntry.model_validate(entry)
            break
        except ValidationError as err:
            locs = {str(e["loc"][0]) for e in err.errors() if e.get("loc")}
            bad = [k for k in entry if k in locs and k != "name"]
            if not bad:  # the whole entry is refused (a cross-field rule, or the name itself)
                skipped.append(Skipped(f"task definition {task_def.name}", _first_message(err)))
                return None
            for key in bad:
                skipped.append(Skipped(f"field {key} of task definition {task_def.name}",
                                       f"{entry.pop(key)!r} is not a value the environment file accepts"))
    try:
        dumps(entry)
    except NotRepresentable as err:
        skipped.append(Skipped(f"task definition {task_def.name}", str(err)))
        return None
    return entry


def _first_message(err: ValidationError) -> str:
    return str(err.errors()[0].get("msg", "not valid")).removeprefix("Value error, ")


def _latest_versions(definitions: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for definition in definitions:
        name = definition.get("name")
        if not isinstance(name, str) or not name.strip():
            continue
        if name not in latest or _version(definition) > _version(latest[name]):
            latest[name] = definition
    return latest


def _version(definition: Mapping[str, Any]) -> int:
    version = definition.get("version", 1)
    return version if isinstance(version, int) and not isinstance(version, bool) else 0


def _strip_stamps(definition: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in definition.items() if k not in SERVER_STAMPS}


def _workflow_entries(workflows: Mapping[str, dict[str, Any]],
                      skipped: list[Skipped]) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    entries: list[dict[str, Any]] = []
    files: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    for name in sorted(workflows):
        definition = workflows[name]
        version = definition.get("version", 1)
        reason = unwritable_name(name)
        if reason:
            skipped.append(Skipped(f"workflow definition {name!r}", f"its {reason}"))
            continue
        if isinstance(version, bool) or not isinstance(version, int) or version < 1 \
                or not isinstance(definition.get("tasks"), list):
            skipped.append(Skipped(f"workflow definition {name}",
                                   "the environment file needs a version >= 1 and a list of tasks"))
            continue
        stem = _FILE_CHARS.sub("_", name).strip("._") or "workflow"
        candidate, n = stem, 1
        while candidate.lower() in used:  # case-insensitive file systems: Flow and flow must not collide
            n += 1
            candidate = f"{stem}-{n}"
        used.add(candidate.lower())
        relative = f"{WORKFLOW_DIR}/{candidate}.json"
        files[relative] = definition
        entries.append({"file": relative})
    return entries, files


def tasks_used(definition: Mapping[str, Any]) -> set[str]:
    """Names of the tasks a workflow definition runs, nested ones (forks, switches, loops) included."""
    found: set[str] = set()
    stack: list[Any] = [definition.get("tasks")]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if isinstance(node.get("name"), str) and "taskReferenceName" in node:
                found.add(node["name"])
            stack.extend(v for v in node.values() if isinstance(v, (list, dict)))
    return found


def _check_loads(result: Export) -> None:
    """The file must load as an environment file; a failure here is a bug in export, said plainly."""
    try:
        validate_environment(parse_toml(result.toml().encode("utf-8"), "exported file"), "exported file")
    except ProvisionError as err:
        raise ProvisionError(f"internal error: export built a file it cannot read back: {err.message}",
                             "report this; --application or --tag can leave the offending part out") from None
