"""``provision grant`` and ``provision revoke`` as library calls: one application's access on targets.

``grant_targets`` turns the flags into grant specs; ``plan_access_change`` adds the worker tasks of
the workflows named with ``--workflow-tasks`` (walked on the server), reads what the application
holds and keeps only the access to add (or to take away); ``AccessChange.apply`` makes those calls,
each audited. Only missing access is granted and only held access revoked, so running either again
changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from orkes_provision import audit
from orkes_provision.access.spec import GrantSpec, parse_tag_target
from orkes_provision.access.state import find_application, read_app_state
from orkes_provision.access.tasknames import check_tasks_exist
from orkes_provision.access.workflow_tasks import WorkflowTasks, server_fetch, workflow_tasks
from orkes_provision.errors import NotFound, UsageError
from orkes_provision.orkes.models import Application, Target, app_subject

if TYPE_CHECKING:
    from orkes_provision.orkes.client import OrkesClient


def grant_targets(*, tasks: tuple[str, ...] = (), workflows: tuple[str, ...] = (), tags: tuple[str, ...] = (),
                  domains: tuple[str, ...] = (), access: tuple[str, ...] = (),
                  derived: bool = False) -> list[GrantSpec]:
    """The targets named on the command line, each with ``access`` (default EXECUTE); none is
    fine when tasks are ``derived`` from workflows (``--workflow-tasks``)."""
    wanted = ([("TASK_DEF", t) for t in tasks] + [("WORKFLOW_DEF", w) for w in workflows]
              + [("TAG", parse_tag_target(t)) for t in tags] + [("DOMAIN", d) for d in domains])
    if not wanted and not derived:
        raise UsageError("no target given", "name tasks, or use --workflow, --tag key:value or --domain")
    try:
        return [GrantSpec(type=kind, id=ident, access=access or ("EXECUTE",)) for kind, ident in wanted]
    except ValidationError as err:
        first = err.errors()[0]
        raise UsageError(f"invalid {first['loc'][0]}: {str(first['msg']).removeprefix('Value error, ')}",
                         "task names must not be empty; access is CREATE, READ, UPDATE, DELETE or EXECUTE") from None


@dataclass
class AccessChange:
    """The access to grant to (or revoke from) one application, then what was done."""

    app: Application
    revoke: bool
    todo: list[tuple[GrantSpec, list[str]]]
    done: list[dict[str, Any]] = field(default_factory=list)
    # The workflows whose worker tasks were granted (``--workflow-tasks``), as walked; None when none was named.
    workflow_tasks: list[WorkflowTasks] | None = None

    @property
    def question(self) -> str:
        """What a revoke asks before it is made: its workers lose the access at once."""
        what = "; ".join(f"{'+'.join(needed)} on {spec.type} {spec.id}" for spec, needed in self.todo)
        return f"Revoke {what} from {self.app.name}? Its workers lose that access at once."

    def apply(self, client: OrkesClient, *, server: str, actor: str | None) -> None:
        subject = app_subject(self.app.id)
        call = client.revoke if self.revoke else client.grant
        for spec, needed in self.todo:
            with audit.recorded(action="revoke" if self.revoke else "grant", target=f"{spec.type} {spec.id}",
                                server=server, actor=actor, app=self.app.name):
                call(subject, Target(type=spec.type, id=spec.id), needed)
            self.done.append({"type": spec.type, "id": spec.id, "access": needed})

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"app": self.app.name, "appId": self.app.id, "changed": self.done}
        if self.workflow_tasks is not None:
            data["workflowTasks"] = [w.to_dict() for w in self.workflow_tasks]
        return data

    def render(self) -> str:
        verb, direction = ("Revoked", "from") if self.revoke else ("Granted", "to")
        lines = [f"{verb} {'+'.join(row['access'])} on {row['type']} {row['id']} {direction} {self.app.name}"
                 for row in self.done]
        if not self.done:
            lines.append(f"No changes: {self.app.name} already {'lacks' if self.revoke else 'holds'} that access.")
        return "\n".join(lines)


def plan_access_change(client: OrkesClient, app: str, specs: list[GrantSpec], *, revoke: bool,
                       workflows: tuple[str, ...] = (), access: tuple[str, ...] = (),
                       note: Callable[[str], None] = lambda line: None) -> AccessChange:
    """Read application ``app`` (by name or id) and keep the access to grant, or to revoke.

    ``workflows`` (``--workflow-tasks``) add a grant of ``access`` on each worker task they use;
    what the walk cannot see (dynamic tasks, missing sub-workflows, cycles) is told to ``note``.
    """
    target_app = find_application(client, app)
    walked = [_walk(client, name, note) for name in workflows] if workflows else None
    if walked:
        names = tuple(sorted({t for w in walked for t in w.tasks}))
        specs = specs + (grant_targets(tasks=names, access=access) if names else [])
    tasks = [spec.id for spec in specs if spec.type == "TASK_DEF"]
    if tasks and not revoke:
        # As 'provision app --grant' does: a grant on a task that does not exist protects nothing
        # and hides a typo; revoking one stays possible, to clean up.
        check_tasks_exist(tasks, {t.name for t in client.list_task_defs()}, outcome="nothing was granted",
                          register_hint="check the name, or register the definition first "
                                        "('provision app APP --grant TASK --register-tasks' registers a "
                                        "minimal one)")
    current = read_app_state(client, target_app).grants
    todo = [(spec, needed) for spec in specs
            if (needed := [a for a in spec.access if (a in current.get(spec.key, set())) == revoke])]
    return AccessChange(app=target_app, revoke=revoke, todo=todo, workflow_tasks=walked)


def _walk(client: OrkesClient, name: str, note: Callable[[str], None]) -> WorkflowTasks:
    """The worker tasks of workflow ``name``, walked on the server; what the walk cannot see goes to ``note``."""
    walked = workflow_tasks(name, server_fetch(client.get_workflow_def))
    if walked is None:
        raise NotFound(f"workflow definition {name!r} not found on the server; nothing was granted",
                       "check the name ('provision export' lists the definitions), or register it first")
    if not walked.tasks:
        note(f"workflow {name} uses no worker (SIMPLE) task")
    else:
        through = f" (through {', '.join(sorted(walked.sub_workflows))})" if walked.sub_workflows else ""
        note(f"workflow {name} uses worker tasks {', '.join(sorted(walked.tasks))}{through}")
    for line in walked.dynamic:
        note(f"note: {line}; grant those tasks by name")
    for sub in walked.missing:
        note(f"warning: sub-workflow {sub} of {name} is not on the server: its tasks are not granted")
    for cycle in walked.cycles:
        note(f"note: sub-workflow cycle {cycle}: walked once")
    return walked
