"""``provision grant`` and ``provision revoke``: permissions of an application on targets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from orkes_provision.cli.common import (
    APP_NAME,
    DOMAIN,
    TAG,
    TASK_NAME,
    WORKFLOW_NAME,
    common_options,
    confirm,
    emit,
    yes_option,
)


def _target_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--workflow", "workflows", multiple=True, metavar="NAME", type=WORKFLOW_NAME,
                     help="A workflow definition (repeatable)."),
        click.option("--tag", "tags", multiple=True, metavar="KEY:VALUE", type=TAG,
                     help="Every definition with this tag."),
        click.option("--domain", "domains", multiple=True, metavar="DOMAIN", type=DOMAIN,
                     help="Every task in this domain."),
        click.option("--access", "access", multiple=True, metavar="ACCESS",
                     help="CREATE, READ, UPDATE, DELETE or EXECUTE (repeatable; default EXECUTE)."),
    ]):
        func = option(func)
    return func


def _targets(tasks: tuple[str, ...], workflows: tuple[str, ...], tags: tuple[str, ...],
             domains: tuple[str, ...], access: tuple[str, ...], *, derived: bool = False) -> list[Any]:
    from pydantic import ValidationError

    from orkes_provision.access.spec import GrantSpec, parse_tag_target
    from orkes_provision.errors import UsageError

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


def _change(app: str, specs: list[Any], revoke: bool, yes: bool = True, workflow_tasks: tuple[str, ...] = (),
            access: tuple[str, ...] = ()) -> None:
    from orkes_provision import audit
    from orkes_provision.access.state import find_application, read_app_state
    from orkes_provision.access.tasknames import check_tasks_exist
    from orkes_provision.cli.context import make_client, resolve_server_credentials
    from orkes_provision.orkes.models import Target, app_subject

    credentials = resolve_server_credentials()
    done: list[dict[str, Any]] = []
    derived: list[dict[str, Any]] = []
    with make_client(credentials) as client:
        target_app = find_application(client, app)
        if workflow_tasks:
            found = _derive(client, workflow_tasks)
            derived = [f.to_dict() for f in found]
            names = tuple(sorted({t for f in found for t in f.tasks}))
            specs = specs + (_targets(names, (), (), (), access) if names else [])
        tasks = [spec.id for spec in specs if spec.type == "TASK_DEF"]
        if tasks and not revoke:
            # As 'provision app --grant' does: a grant on a task that does not exist protects nothing
            # and hides a typo; revoking one stays possible, to clean up.
            check_tasks_exist(tasks, {t.name for t in client.list_task_defs()}, outcome="nothing was granted",
                              register_hint="check the name, or register the definition first "
                                            "('provision app APP --grant TASK --register-tasks' registers a "
                                            "minimal one)")
        current = read_app_state(client, target_app).grants
        subject = app_subject(target_app.id)
        todo = [(spec, needed) for spec in specs
                if (needed := [a for a in spec.access if (a in current.get(spec.key, set())) == revoke])]
        if revoke and todo:
            what = "; ".join(f"{'+'.join(needed)} on {spec.type} {spec.id}" for spec, needed in todo)
            confirm(f"Revoke {what} from {target_app.name}? Its workers lose that access at once.", yes=yes,
                    action=f"revoke access from {target_app.name}")
        for spec, needed in todo:
            call = client.revoke if revoke else client.grant
            with audit.recorded(action="revoke" if revoke else "grant", target=f"{spec.type} {spec.id}",
                                server=credentials.server, actor=credentials.key_id, app=target_app.name):
                call(subject, Target(type=spec.type, id=spec.id), needed)
            done.append({"type": spec.type, "id": spec.id, "access": needed})
    verb = "Revoked" if revoke else "Granted"
    direction = "from" if revoke else "to"
    lines = [f"{verb} {'+'.join(row['access'])} on {row['type']} {row['id']} {direction} {target_app.name}"
             for row in done]
    if not done:
        lines.append(f"No changes: {target_app.name} already {'lacks' if revoke else 'holds'} that access.")
    data: dict[str, Any] = {"app": target_app.name, "appId": target_app.id, "changed": done}
    if workflow_tasks:
        data["workflowTasks"] = derived
    emit(data, "\n".join(lines))


def _derive(client: Any, workflows: tuple[str, ...]) -> list[Any]:
    """The worker tasks of each workflow, walked on the server; what the walk cannot see is said on stderr."""
    from orkes_provision.access.workflow_tasks import server_fetch, workflow_tasks
    from orkes_provision.cli.common import info
    from orkes_provision.errors import NotFound

    fetch = server_fetch(client.get_workflow_def)
    found = []
    for name in workflows:
        walked = workflow_tasks(name, fetch)
        if walked is None:
            raise NotFound(f"workflow definition {name!r} not found on the server; nothing was granted",
                           "check the name ('provision export' lists the definitions), or register it first")
        if not walked.tasks:
            info(f"workflow {name} uses no worker (SIMPLE) task")
        else:
            through = f" (through {', '.join(sorted(walked.sub_workflows))})" if walked.sub_workflows else ""
            info(f"workflow {name} uses worker tasks {', '.join(sorted(walked.tasks))}{through}")
        for note in walked.dynamic:
            info(f"note: {note}; grant those tasks by name")
        for sub in walked.missing:
            info(f"warning: sub-workflow {sub} of {name} is not on the server: its tasks are not granted")
        for cycle in walked.cycles:
            info(f"note: sub-workflow cycle {cycle}: walked once")
        found.append(walked)
    return found


@click.command("grant")
@click.argument("app", type=APP_NAME)
@click.argument("tasks", nargs=-1, type=TASK_NAME)
@_target_options
@click.option("--workflow-tasks", "workflow_tasks", multiple=True, metavar="WORKFLOW", type=WORKFLOW_NAME,
              help="Every worker (SIMPLE) task the workflow uses, through forks, switches, loops and "
                   "sub-workflows (repeatable).")
@common_options
def grant(app: str, tasks: tuple[str, ...], workflows: tuple[str, ...], tags: tuple[str, ...],
          domains: tuple[str, ...], access: tuple[str, ...], workflow_tasks: tuple[str, ...]) -> None:
    """Grant APP access (default EXECUTE) on task definitions TASKS and other targets.

    Only missing access is granted, so running it again changes nothing. --workflow-tasks W
    reads W's definition from the server and grants on each worker task it uses, however deeply
    nested (sub-workflow definitions are fetched; a cycle is walked once); dynamic tasks and
    dynamic forks are named on stderr, since only the run decides them.

    \b
    Examples:
      provision grant greetings-worker greetings
      provision grant greetings-worker --workflow greetings --access READ --access EXECUTE
      provision grant greetings-worker --tag team:payments
      provision grant order-worker --workflow-tasks order_fulfilment
    """
    _change(app, _targets(tasks, workflows, tags, domains, access, derived=bool(workflow_tasks)), revoke=False,
            workflow_tasks=workflow_tasks, access=access)


@click.command("revoke")
@click.argument("app", type=APP_NAME)
@click.argument("tasks", nargs=-1, type=TASK_NAME)
@_target_options
@yes_option
@common_options
def revoke(app: str, tasks: tuple[str, ...], workflows: tuple[str, ...], tags: tuple[str, ...],
           domains: tuple[str, ...], access: tuple[str, ...], yes: bool) -> None:
    """Revoke APP's access (default EXECUTE) on task definitions TASKS and other targets.

    Only access APP holds is revoked. Asks first on a terminal (--yes without one): workers of
    APP lose that access at once.

    \b
    Examples:
      provision revoke greetings-worker greetings --yes
      provision revoke greetings-worker --domain staging
    """
    _change(app, _targets(tasks, workflows, tags, domains, access), revoke=True, yes=yes)
