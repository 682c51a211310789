"""``provision lint``: least-privilege findings in environment and project files.

Pure checks on what the files declare; nothing is read from a server. Each finding names its
rule, the place (``FILE:LINE``, and the key path), what is wrong, and the narrower alternative.
The rules:

- ``admin-role``: an application holds an admin-level role (``ADMIN``, ``UNRESTRICTED_WORKER``,
  any ``*_MANAGER``), or a group gives one to every member. A user holding one is not reported:
  naming the people who administer an environment is what the file is for.
- ``worker-without-execute``: an application has the ``WORKER`` role and no EXECUTE grant, so it
  can poll nothing (or relies on something the file does not show).
- ``wide-grant``: a ``WORKER`` application's EXECUTE on a ``TAG`` or ``DOMAIN`` reaches more than
  the tasks its workers declare: a domain covers every task polled in it, a tag every task
  definition that carries it, now or later. When the server's tags are known (``plan``/``apply``
  pass them), a tag that reaches only declared tasks is not reported.
- ``shared-application``: one application's key serves workers that poll different tasks, so
  each worker can execute the others' tasks (within a project file, or across project files that
  name the same application).
- ``key-without-access``: an application has a key store but neither a role nor a grant: a live
  credential that does nothing.
- ``execute-unused``: a ``WORKER`` application has EXECUTE on a task that no workflow the file
  declares (``[[workflows]]``) uses, walked through forks, switches, loops and sub-workflows. Only
  when the file declares workflows, and none of them has a dynamic task or an unknown sub-workflow
  (which could use any task).
- ``workflow-unexecutable``: a declared workflow uses a worker task that no application of the file
  may execute (an EXECUTE grant on it, its workflowTasks, a TAG or DOMAIN grant that may reach it,
  or UNRESTRICTED_WORKER): its workers would get 403 and the workflow would stay SCHEDULED.

"The tasks its workers declare" are the ``tasks`` of the project files' workers for that
application when project files are given, else its EXECUTE grants on task definitions.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orkes_provision.access.workflow_tasks import WorkflowTasks, local_first, workflow_tasks
from orkes_provision.environments.environment import ApplicationEntry, Environment, GrantEntry
from orkes_provision.errors import ConfigError
from orkes_provision.toml.write import line_index

RULES: dict[str, str] = {
    "admin-role": "an application holds an admin-level role, or a group gives one to every member",
    "worker-without-execute": "a WORKER application has no EXECUTE grant",
    "wide-grant": "a TAG or DOMAIN grant reaches more than the tasks its workers declare",
    "shared-application": "one application is shared by workers that poll different tasks",
    "key-without-access": "an application has a key store but neither a role nor a grant",
    "execute-unused": "a WORKER application has EXECUTE on a task no declared workflow uses",
    "workflow-unexecutable": "a declared workflow uses a worker task no application may execute",
}
ADMIN_ROLES = ("ADMIN", "UNRESTRICTED_WORKER")
_NARROWER_ROLE = {
    "ADMIN": "only the roles its work needs: WORKER with EXECUTE grants to run tasks, METADATA_API to register "
             "definitions, APPLICATION_CREATOR to create applications; EXECUTE on the workflows it starts",
    "UNRESTRICTED_WORKER": "WORKER plus EXECUTE on the tasks its workers poll",
    "METADATA_MANAGER": "METADATA_API (it may register definitions and change the ones it registered) plus "
                        "UPDATE grants on the other definitions it must change",
    "WORKFLOW_MANAGER": "EXECUTE and READ grants on the workflows it starts and inspects",
    "APPLICATION_MANAGER": "APPLICATION_CREATOR: an application manages the applications it creates",
    "PROMPT_MANAGER": "grants on the prompts it uses",
}


def is_admin_level(role: str) -> bool:
    return role in ADMIN_ROLES or role.endswith("_MANAGER")


@dataclass(frozen=True)
class Finding:
    rule: str
    file: str
    path: str  # the key path in the file, e.g. applications[0].roles
    message: str
    alternative: str
    line: int | None = None

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line else f"{self.file} ({self.path})"

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "file": self.file, "line": self.line, "path": self.path,
                "message": self.message, "alternative": self.alternative}

    def render(self) -> str:
        return f"{self.location}: [{self.rule}] {self.message}\n    narrower: {self.alternative}"

    def warning(self) -> str:
        """One line, for ``plan`` and ``apply``."""
        return f"{self.location}: [{self.rule}] {self.message}; narrower: {self.alternative}"


@dataclass(frozen=True)
class WorkerDecl:
    name: str
    tasks: tuple[str, ...]


@dataclass(frozen=True)
class ProjectDecl:
    """What a project file declares, as the checks need it (``workers.lint`` builds it from a project file)."""

    file: str
    text: str
    app_name: str | None
    roles: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    store: str | None = None
    workers: tuple[WorkerDecl, ...] = ()


@dataclass
class _Located:
    file: str
    text: str = ""

    @functools.cached_property
    def lines(self) -> dict[str, int]:
        # Indexing a large file costs more than linting it: only done once a finding needs a line.
        return line_index(self.text)

    def finding(self, rule: str, path: str, message: str, alternative: str, *fallbacks: str) -> Finding:
        line = next((self.lines[p] for p in (path, *fallbacks) if p in self.lines), None)
        return Finding(rule=rule, file=self.file, path=path, message=message, alternative=alternative, line=line)


def lint(environments: Sequence[Environment] = (), projects: Sequence[ProjectDecl] = (), *,
         tagged_tasks: Mapping[str, set[str]] | None = None) -> list[Finding]:
    """Every finding in ``environments`` and ``projects``, by file and line.

    ``tagged_tasks`` maps ``key:value`` to the task definitions carrying that tag on the server,
    when the server says (``None``: unknown, and a TAG grant counts as reaching more).
    """
    worker_tasks: dict[str, set[str]] = {}
    for project in projects:
        if project.app_name:
            for worker in project.workers:
                worker_tasks.setdefault(project.app_name, set()).update(worker.tasks)
    findings: list[Finding] = []
    for env in environments:
        findings += lint_environment(env, worker_tasks=worker_tasks, tagged_tasks=tagged_tasks)
    for project in projects:
        findings += _lint_project(project)
    findings += _shared_across(projects)
    return sorted(findings, key=lambda f: (f.file, f.line or 0, f.rule, f.path))


def lint_environment(env: Environment, *, worker_tasks: Mapping[str, set[str]] | None = None,
                     tagged_tasks: Mapping[str, set[str]] | None = None) -> list[Finding]:
    """The findings of one environment file (``plan`` and ``apply`` print them as warnings)."""
    where = _Located(env.shown, env.text)
    findings: list[Finding] = []
    for index, app in enumerate(env.applications):
        at = f"applications[{index}]"
        declared = _declared_tasks(app, (worker_tasks or {}).get(app.name))
        findings += _role_findings(where, at, app.name, list(app.roles), declared)
        executes = [g for g in app.grants if "EXECUTE" in g.access]
        if "WORKER" in app.roles and not executes and not app.workflow_tasks:
            findings.append(where.finding(
                "worker-without-execute", f"{at}.roles",
                f"application {app.name} has the WORKER role but no EXECUTE grant: it can poll no task",
                _execute_on(declared) + ", or drop WORKER if it runs no worker", at))
        if "WORKER" in app.roles:
            findings += _wide_grants(where, at, app, declared, tagged_tasks)
        if app.store is not None and not app.roles and not app.grants and not app.workflow_tasks:
            findings.append(where.finding(
                "key-without-access", f"{at}.store",
                f"application {app.name} gets a key ({app.store}) but has neither a role nor a grant",
                "remove store (no key is made), or give it the grants its caller needs", at))
    findings += _workflow_findings(where, env, tagged_tasks)
    for index, group in enumerate(env.groups):
        at = f"groups[{index}]"
        for role in group.roles:
            if is_admin_level(role):
                findings.append(where.finding(
                    "admin-role", f"{at}.roles",
                    f"group {group.id} gives every member ({len(group.members)} declared) the admin-level role {role}",
                    f"give {role} under [[users]] to the people who need it, and the group only what every member "
                    "needs", at))
    return findings


def _workflow_findings(where: _Located, env: Environment,
                       tagged_tasks: Mapping[str, set[str]] | None) -> list[Finding]:
    """``execute-unused`` and ``workflow-unexecutable``, from the workflows the file itself declares."""
    fetch = local_first(env.workflow_defs, None)
    walks: list[tuple[int, WorkflowTasks]] = []
    for index, definition in enumerate(env.workflow_defs):
        walked = workflow_tasks(str(definition["name"]), fetch, definition.get("version"))
        if walked is not None:
            walks.append((index, walked))
    if not walks:
        return []
    used = {t for _, w in walks for t in w.tasks}
    open_ended = any(w.dynamic or w.missing for _, w in walks)
    out = [] if open_ended else _unused_grants(where, env, used, ", ".join(w.workflow for _, w in walks))
    executable = _executable(env, tagged_tasks)
    if executable is None:
        return out
    for index, walked in walks:
        missing = sorted(walked.tasks - executable)
        if missing:
            out.append(where.finding(
                "workflow-unexecutable", f"workflows[{index}].file",
                f"workflow {walked.workflow} uses worker task{'s' if len(missing) > 1 else ''} {', '.join(missing)}, "
                "which no application of this file may execute: its workers would get 403",
                f'give its worker application workflowTasks = ["{walked.workflow}"] (EXECUTE on each task it uses)',
                f"workflows[{index}]"))
    return out


def _bounded(env: Environment, app: ApplicationEntry) -> bool:
    """Whether lint can list every task ``app`` may execute (no UNRESTRICTED_WORKER, workflowTasks in the file)."""
    return "UNRESTRICTED_WORKER" not in app.roles and _derived_or_none(env, app) is not None


def _execute_grants(app: ApplicationEntry) -> Iterator[tuple[int, GrantEntry]]:
    return ((i, grant) for i, grant in enumerate(app.grants) if "EXECUTE" in grant.access)


def _unused_grants(where: _Located, env: Environment, used: set[str], names: str) -> list[Finding]:
    """``execute-unused``: tasks a worker application may execute that no workflow of the file uses."""
    out: list[Finding] = []
    for index, app in enumerate(env.applications):
        if "WORKER" not in app.roles or not _bounded(env, app):
            continue
        for g_index, grant in _execute_grants(app):
            for task in (t for t in grant.tasks if t not in used):
                out.append(where.finding(
                    "execute-unused", f"applications[{index}].grants[{g_index}].tasks",
                    f"application {app.name} has EXECUTE on {task}, which no workflow of this file uses ({names})",
                    f"drop {task} from its grants, or declare the workflow that uses it",
                    f"applications[{index}].grants[{g_index}]", f"applications[{index}]"))
    return out


def _executable(env: Environment, tagged_tasks: Mapping[str, set[str]] | None) -> set[str] | None:
    """Every task some application of the file may execute; ``None`` when one may execute tasks lint cannot
    list (an unrestricted role, workflowTasks or tags it cannot resolve, a domain grant)."""
    executable: set[str] = set()
    for app in env.applications:
        derived = _derived_or_none(env, app)
        if derived is None or "UNRESTRICTED_WORKER" in app.roles:
            return None
        executable.update(derived)
        for _, grant in _execute_grants(app):
            if grant.domains or (grant.tags and tagged_tasks is None):
                return None
            executable.update(grant.tasks)
            for tag in grant.tags:
                executable.update(tagged_tasks.get(tag, set()) if tagged_tasks is not None else set())
    return executable


def _derived_or_none(env: Environment, app: ApplicationEntry) -> tuple[str, ...] | None:
    """The tasks of ``app``'s workflowTasks, or ``None`` when one is not in the file (lint reads no server)."""
    try:
        return env.derived_tasks(app)
    except ConfigError:
        return None


def _declared_tasks(app: ApplicationEntry, from_workers: set[str] | None) -> list[str]:
    if from_workers:
        return sorted(from_workers)
    return sorted({t for g in app.grants if "EXECUTE" in g.access for t in g.tasks})


def _execute_on(tasks: Sequence[str]) -> str:
    if tasks:
        return f"grant EXECUTE on the tasks its workers poll (tasks = {json.dumps(list(tasks))})"
    return "grant EXECUTE on the tasks its workers poll ([[applications.grants]] tasks = [...])"


def _role_findings(where: _Located, at: str, app: str, roles: Sequence[str], declared: Sequence[str]) -> list[Finding]:
    out: list[Finding] = []
    for role in roles:
        if not is_admin_level(role):
            continue
        alternative = _NARROWER_ROLE.get(role, "the narrowest role and the grants its work needs")
        if role == "UNRESTRICTED_WORKER" and declared:
            alternative += f" ({', '.join(declared)})"
        out.append(where.finding("admin-role", f"{at}.roles",
                                 f"application {app} holds the admin-level role {role}", alternative, at))
    return out


def _wide_grants(where: _Located, at: str, app: ApplicationEntry, declared: list[str],
                 tagged_tasks: Mapping[str, set[str]] | None) -> list[Finding]:
    out: list[Finding] = []
    declared_text = ", ".join(declared) if declared else "none"
    for g_index, grant in enumerate(app.grants):
        if "EXECUTE" not in grant.access:
            continue
        path = f"{at}.grants[{g_index}]"
        for domain in grant.domains:
            out.append(where.finding(
                "wide-grant", f"{path}.domains",
                f"application {app.name} has EXECUTE on DOMAIN {domain}: every task polled in that domain, not "
                f"only the tasks its workers declare ({declared_text})",
                _execute_on(declared) + "; a worker polling in a domain needs nothing more", path))
        for tag in grant.tags:
            known = None if tagged_tasks is None else tagged_tasks.get(tag, set())
            if known is not None:
                beyond = sorted(known - set(declared))
                if not beyond:
                    continue
                reach = f"on the server it reaches {', '.join(beyond)} beyond the tasks its workers declare " \
                        f"({declared_text})"
            else:
                reach = f"every task definition tagged {tag}, today or later, not only the tasks its workers " \
                        f"declare ({declared_text})"
            out.append(where.finding("wide-grant", f"{path}.tags",
                                     f"application {app.name} has EXECUTE on TAG {tag}: {reach}",
                                     _execute_on(declared), path))
    return out


def _lint_project(project: ProjectDecl) -> list[Finding]:
    where = _Located(project.file, project.text)
    out: list[Finding] = []
    if project.app_name is None:
        return out
    declared = sorted({t for w in project.workers for t in w.tasks} or set(project.tasks))
    out += _role_findings(where, "application", project.app_name, project.roles, declared)
    if "WORKER" in project.roles and not project.tasks:
        out.append(where.finding(
            "worker-without-execute", "application.roles",
            f"application {project.app_name} has the WORKER role but no grants: it can poll no task",
            f"grants = {json.dumps(declared)}" if declared else
            "list the tasks its workers poll in grants, or drop WORKER", "application"))
    if not project.roles and not project.tasks:
        out.append(where.finding(
            "key-without-access", "application",
            f"application {project.app_name} gets a key ({project.store or 'keyring'}) but has neither a role "
            "nor a grant", "give it the role and grants its workers need, or remove the application", "application"))
    out += _shared(where, project.app_name, [(w, f"workers[{i}]") for i, w in enumerate(project.workers)])
    return out


def _shared(where: _Located, app: str, workers: Sequence[tuple[WorkerDecl, str]]) -> list[Finding]:
    """A finding for each worker that, through the shared key, can execute tasks it does not poll."""
    union = {t for w, _ in workers for t in w.tasks}
    out: list[Finding] = []
    if len(workers) < 2:
        return out
    names = ", ".join(w.name for w, _ in workers)
    for worker, path in workers:
        extra = sorted(union - set(worker.tasks))
        if not extra or not worker.tasks:
            continue
        out.append(where.finding(
            "shared-application", path,
            f"application {app} is shared by workers {names}: worker {worker.name} polls "
            f"{', '.join(worker.tasks)}, but its key also executes {', '.join(extra)}",
            f"one application per worker: {worker.name} with EXECUTE on {', '.join(worker.tasks)} only "
            "(declare the applications in an environment file)", "application"))
    return out


def _shared_across(projects: Sequence[ProjectDecl]) -> list[Finding]:
    by_app: dict[str, list[ProjectDecl]] = {}
    for project in projects:
        if project.app_name:
            by_app.setdefault(project.app_name, []).append(project)
    out: list[Finding] = []
    for app, group in sorted(by_app.items()):
        if len(group) < 2:
            continue
        for project in group:
            mine = {t for w in project.workers for t in w.tasks}
            others = {t for p in group if p is not project for w in p.workers for t in w.tasks}
            extra = sorted(others - mine)
            if not extra or not mine:
                continue
            where = _Located(project.file, project.text)
            files = ", ".join(p.file for p in group)
            out.append(where.finding(
                "shared-application", "application.name",
                f"application {app} is also used by the workers of {files}: this project's workers poll "
                f"{', '.join(sorted(mine))}, but its key also executes {', '.join(extra)}",
                "one application per project, each with EXECUTE on its own workers' tasks only", "application"))
    return out
