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
    self_lockout_option,
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


def _change(app: str, tasks: tuple[str, ...], workflows: tuple[str, ...], tags: tuple[str, ...],
            domains: tuple[str, ...], access: tuple[str, ...], *, revoke: bool, yes: bool = True,
            workflow_tasks: tuple[str, ...] = (), allow_self_lockout: bool = False) -> None:
    from orkes_provision.access.grants import grant_targets, plan_access_change
    from orkes_provision.cli.common import info
    from orkes_provision.cli.context import make_client, resolve_server_credentials

    specs = grant_targets(tasks=tasks, workflows=workflows, tags=tags, domains=domains, access=access,
                          derived=bool(workflow_tasks))
    credentials = resolve_server_credentials()
    with make_client(credentials) as client:
        change = plan_access_change(client, app, specs, revoke=revoke, workflows=workflow_tasks, access=access,
                                    note=info)
        if revoke and change.todo:
            from orkes_provision.access.selflock import refuse_own_application

            refuse_own_application(client, change.app, "revoke access of application",
                                   "revoking it would take that access from this command's own key",
                                   allow=allow_self_lockout)
            confirm(change.question, yes=yes, action=f"revoke access from {change.app.name}")
        change.apply(client, server=credentials.server, actor=credentials.key_id)
    emit(change.to_dict(), change.render())


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
    _change(app, tasks, workflows, tags, domains, access, revoke=False, workflow_tasks=workflow_tasks)


@click.command("revoke")
@click.argument("app", type=APP_NAME)
@click.argument("tasks", nargs=-1, type=TASK_NAME)
@_target_options
@yes_option
@self_lockout_option
@common_options
def revoke(app: str, tasks: tuple[str, ...], workflows: tuple[str, ...], tags: tuple[str, ...],
           domains: tuple[str, ...], access: tuple[str, ...], yes: bool, allow_self_lockout: bool) -> None:
    """Revoke APP's access (default EXECUTE) on task definitions TASKS and other targets.

    Only access APP holds is revoked. Asks first on a terminal (--yes without one): workers of
    APP lose that access at once. Access of the application whose key runs this command is
    refused (exit 7) unless --allow-self-lockout.

    \b
    Examples:
      provision revoke greetings-worker greetings --yes
      provision revoke greetings-worker --domain staging
    """
    _change(app, tasks, workflows, tags, domains, access, revoke=True, yes=yes,
            allow_self_lockout=allow_self_lockout)
