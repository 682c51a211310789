"""Why a worker or a starter of an application would get 403, and the command that fixes each cause.

``access_findings`` adds to a ``DoctorReport`` one finding per task a worker polls (EXECUTE) and per
workflow a starter starts (EXECUTE; starting needs nothing more, and the executions it started are
readable by their starter), each saying how the access is held (``holdings``) or the ``provision
grant`` command that grants it. ``provision doctor`` runs it after its key checks; ``explain`` runs
it alone, with the WORKER role checked when tasks are named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from orkes_provision.access.holdings import AccessView, Holding, definition_of, read_access, resolve, worker_roles
from orkes_provision.access.tasknames import UnknownTasks, closest
from orkes_provision.credentials.delivery import Hints

if TYPE_CHECKING:
    from orkes_provision.access.doctor import DoctorReport
    from orkes_provision.orkes.client import OrkesClient
    from orkes_provision.orkes.models import Application


def explain(client: OrkesClient, application: Application, *, tasks: list[str], workflows: list[str],
            domains: tuple[str, ...] = (), hints: Hints | None = None) -> DoctorReport:
    """The access a worker of ``tasks`` and a starter of ``workflows`` needs, and how ``application`` holds it.

    With nothing named, what the application holds a grant on (its own or its groups') is explained.
    """
    from orkes_provision.access.doctor import DoctorReport

    hints = replace(hints, app=application.name) if hints is not None else Hints(app=application.name)
    report = DoctorReport(app=application.name, app_id=application.id)
    view = read_access(client, application)
    if not tasks and not workflows:
        tasks, workflows = view.targets("TASK_DEF"), view.targets("WORKFLOW_DEF")
        if not tasks and not workflows:
            report.add("access", False, f"{application.name} holds no grant on a task or workflow, itself or "
                                        "through a group, and none was named",
                       "name what it should run: --task TASK (a worker) or --workflow WORKFLOW (a starter)")
            return report
    if tasks:
        check_worker_role(report, view, application.name, hints)
    access_findings(client, report, view, tasks=tasks, workflows=workflows, domains=domains, hints=hints,
                    rerun=lambda meant: meant.explain(tasks=meant.tasks, workflows=workflows))
    if report.ok:
        may = [f"poll task {', '.join(tasks)}" if tasks else "", f"start workflow {', '.join(workflows)}" if workflows
               else ""]
        report.summary = f"All held: {application.name} may {' and '.join(m for m in may if m)}."
    return report


def check_worker_role(report: DoctorReport, view: AccessView, name: str, hints: Hints) -> bool:
    """The WORKER role (or UNRESTRICTED_WORKER, ADMIN), its own or a group's: polling needs one."""
    ways = worker_roles(view)
    if ways:
        report.add("role", True, f"{name} has " + ", ".join(w.describe() for w in ways))
        return True
    report.add("role", False, f"{name} lacks the WORKER role (has: {', '.join(sorted(view.roles)) or 'none'})",
               hints.create_app("--worker", tasks=()))
    return False


def access_findings(client: OrkesClient, report: DoctorReport, view: AccessView, *, tasks: list[str],
                    workflows: list[str], domains: tuple[str, ...] = (), hints: Hints,
                    rerun: Callable[[Hints], str]) -> list[str]:
    """A finding per task and workflow; the task definitions missing. ``rerun`` renders the command
    that checks again with the names meant (for a near miss of a registered task)."""
    missing_defs: list[str] = []
    lacking: list[Holding] = []
    for task in tasks:
        holding = resolve(client, view, "TASK_DEF", task, domains=domains)
        report.access.append(holding)
        if not holding.exists:
            missing_defs.append(task)
        elif holding.held:
            report.add("execute", True, holding.describe())
        else:
            lacking.append(holding)
    if lacking:
        report.add("execute", False, _lacks(hints.app, lacking), hints.grant([h.name for h in lacking]))
    if missing_defs:
        _missing_tasks(client, report, missing_defs, tasks, hints, rerun)
    _workflow_findings(client, report, view, workflows, hints)
    return missing_defs


def _workflow_findings(client: OrkesClient, report: DoctorReport, view: AccessView, workflows: list[str],
                       hints: Hints) -> None:
    lacking: list[Holding] = []
    for workflow in workflows:
        definition = definition_of(client, "WORKFLOW_DEF", workflow)
        if definition is None:
            report.access.append(Holding("WORKFLOW_DEF", workflow, exists=False))
            _missing_workflow(client, report, workflow, hints)
            continue
        holding = resolve(client, view, "WORKFLOW_DEF", workflow, definition=definition)
        report.access.append(holding)
        (report.add("execute", True, holding.describe()) if holding.held else lacking.append(holding))
    if lacking:
        report.add("execute", False, _lacks(hints.app, lacking),
                   hints.grant(workflows=[h.name for h in lacking]))


def _missing_tasks(client: OrkesClient, report: DoctorReport, missing: list[str], tasks: list[str], hints: Hints,
                   rerun: Callable[[Hints], str]) -> None:
    """A typo of a registered task gets "did you mean" and the check with the name meant; only names
    close to nothing get the command that registers them."""
    near = UnknownTasks(missing, {t.name for t in client.list_task_defs()}).near
    typos, unknown = [t for t in missing if t in near], [t for t in missing if t not in near]
    if typos:
        meant = [near.get(t, t) for t in tasks]
        report.add("task", False, "task definition missing: " + ", ".join(
            f"{t} (did you mean {near[t]}?)" for t in typos), rerun(replace(hints, tasks=tuple(meant))))
    if unknown:
        report.add("task", False, f"task definition missing: {', '.join(unknown)}",
                   hints.create_app("--register-tasks", tasks=unknown))


def _lacks(app: str, lacking: list[Holding]) -> str:
    kind = lacking[0].resource.split()[0]
    names = ", ".join(h.name + (f" (held only when polled in domain {', '.join(h.other_domains)})"
                                if h.other_domains else "") for h in lacking)
    return f"{app} lacks EXECUTE on {kind} {names}, itself and through its groups, roles and tags"


def _missing_workflow(client: OrkesClient, report: DoctorReport, workflow: str, hints: Hints) -> None:
    from orkes_provision.errors import ProvisionError

    try:
        known = {str(d.get("name")) for d in client.list_workflow_defs()}
    except ProvisionError:
        known = set()
    near = closest(workflow, known)
    if near is not None:
        report.add("workflow", False, f"workflow definition missing: {workflow} (did you mean {near}?)",
                   f"check the name: {hints.explain(workflows=[near])}")
    else:
        report.add("workflow", False, f"workflow definition missing: {workflow}",
                   "register the workflow first (its starter may, with the METADATA_API role), or check its name")

