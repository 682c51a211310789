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
             domains: tuple[str, ...], access: tuple[str, ...]) -> list[Any]:
    from pydantic import ValidationError

    from orkes_provision.access.spec import GrantSpec, parse_tag_target
    from orkes_provision.errors import UsageError

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


def _change(app: str, specs: list[Any], revoke: bool, yes: bool = True) -> None:
    from orkes_provision import audit
    from orkes_provision.access.state import find_application, read_app_state
    from orkes_provision.access.tasknames import check_tasks_exist
    from orkes_provision.cli.context import make_client, resolve_server_credentials
    from orkes_provision.orkes.models import Target, app_subject

    credentials = resolve_server_credentials()
    done: list[dict[str, Any]] = []
    with make_client(credentials) as client:
        target_app = find_application(client, app)
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
    emit({"app": target_app.name, "appId": target_app.id, "changed": done}, "\n".join(lines))


@click.command("grant")
@click.argument("app", type=APP_NAME)
@click.argument("tasks", nargs=-1, type=TASK_NAME)
@_target_options
@common_options
def grant(app: str, tasks: tuple[str, ...], workflows: tuple[str, ...], tags: tuple[str, ...],
          domains: tuple[str, ...], access: tuple[str, ...]) -> None:
    """Grant APP access (default EXECUTE) on task definitions TASKS and other targets.

    Only missing access is granted, so running it again changes nothing.

    \b
    Examples:
      provision grant greetings-worker greetings
      provision grant greetings-worker --workflow greetings --access READ --access EXECUTE
      provision grant greetings-worker --tag team:payments
    """
    _change(app, _targets(tasks, workflows, tags, domains, access), revoke=False)


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
