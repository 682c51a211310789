"""``provision grant`` and ``provision revoke`` as library calls: one application's access on targets.

``grant_targets`` turns the flags into grant specs; ``plan_access_change`` reads what the
application holds and keeps only the access to add (or to take away); ``AccessChange.apply`` makes
those calls, each audited. Only missing access is granted and only held access revoked, so running
either again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from orkes_provision import audit
from orkes_provision.access.spec import GrantSpec, parse_tag_target
from orkes_provision.access.state import find_application, read_app_state
from orkes_provision.errors import ConfigError, UsageError
from orkes_provision.orkes.models import Application, Target, app_subject

if TYPE_CHECKING:
    from orkes_provision.orkes.client import OrkesClient


def grant_targets(*, tasks: tuple[str, ...] = (), workflows: tuple[str, ...] = (), tags: tuple[str, ...] = (),
                  domains: tuple[str, ...] = (), access: tuple[str, ...] = ()) -> list[GrantSpec]:
    """The targets named on the command line, each with ``access`` (default EXECUTE)."""
    wanted = ([("TASK_DEF", t) for t in tasks] + [("WORKFLOW_DEF", w) for w in workflows]
              + [("TAG", parse_tag_target(t)) for t in tags] + [("DOMAIN", d) for d in domains])
    if not wanted:
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
        return {"app": self.app.name, "appId": self.app.id, "changed": self.done}

    def render(self) -> str:
        verb, direction = ("Revoked", "from") if self.revoke else ("Granted", "to")
        lines = [f"{verb} {'+'.join(row['access'])} on {row['type']} {row['id']} {direction} {self.app.name}"
                 for row in self.done]
        if not self.done:
            lines.append(f"No changes: {self.app.name} already {'lacks' if self.revoke else 'holds'} that access.")
        return "\n".join(lines)


def plan_access_change(client: OrkesClient, app: str, specs: list[GrantSpec], *, revoke: bool) -> AccessChange:
    """Read application ``app`` (by name or id) and keep the access to grant, or to revoke."""
    target_app = find_application(client, app)
    if not revoke:
        _check_tasks_exist(client, [spec.id for spec in specs if spec.type == "TASK_DEF"])
    current = read_app_state(client, target_app).grants
    todo = [(spec, needed) for spec in specs
            if (needed := [a for a in spec.access if (a in current.get(spec.key, set())) == revoke])]
    return AccessChange(app=target_app, revoke=revoke, todo=todo)


def _check_tasks_exist(client: OrkesClient, tasks: list[str]) -> None:
    # As 'provision app --grant' does: a grant on a task that does not exist protects nothing and
    # hides a typo; revoking one stays possible, to clean up.
    if not tasks:
        return
    known = {t.name for t in client.list_task_defs()}
    missing = [t for t in tasks if t not in known]
    if missing:
        raise ConfigError(f"task definition{'s' if len(missing) > 1 else ''} not found on the server: "
                          f"{', '.join(missing)}; nothing was granted",
                          "check the name, or register the definition first "
                          "('provision app APP --grant TASK --register-tasks' registers a minimal one)")
