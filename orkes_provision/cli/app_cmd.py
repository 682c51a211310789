"""``provision app``: from nothing to an application a worker can run as."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from orkes_provision.cli.common import (
    APP_ID,
    APP_NAME,
    STORE_KINDS_WRITE,
    TASK_NAME,
    WORKFLOW_NAME,
    common_options,
    emit,
    in_command,
    info,
    opts,
)

if TYPE_CHECKING:
    from orkes_provision.access.execute import Outcome
    from orkes_provision.access.provisioning import AppResult
    from orkes_provision.credentials.delivery import Hints


@click.command("app")
@click.argument("name", required=False, type=APP_NAME)
@click.option("--worker", is_flag=True, help="Add the WORKER role (poll and execute granted tasks).")
@click.option("--role", "roles", multiple=True, metavar="ROLE", help="Add a role (repeatable), e.g. METADATA_API.")
@click.option("--grant", "grants", multiple=True, metavar="TASK", type=TASK_NAME,
              help="Grant access on a task definition (repeatable).")
@click.option("--access", "access", multiple=True, metavar="ACCESS",
              help="Access to grant on each task (repeatable; default EXECUTE): READ, UPDATE, EXECUTE, ...")
@click.option("--workflow", "workflows", multiple=True, metavar="WORKFLOW", type=WORKFLOW_NAME,
              help="A workflow the application starts (repeatable): grants what starting it needs, EXECUTE on "
                   "its definition.")
@click.option("--store", "store_spec", metavar="SPEC",
              help=f"Where the key goes: {STORE_KINDS_WRITE}.")
@click.option("--new-key", is_flag=True, help="Create a new key even if the stored one still works.")
@click.option("--register-tasks", is_flag=True,
              help="Register a minimal definition for granted tasks that are missing.")
@click.option("--app-id", metavar="ID", type=APP_ID, help="Pick one application when several share the name.")
@click.option("--show-secret", is_flag=True, help="Allow '--store json' to print the secret to a terminal.")
@click.option("--force", is_flag=True,
              help="Write the key into a store that holds another application's key, and retire that key.")
@click.option("--dry-run", is_flag=True, help="Print what would change and write nothing.")
@common_options
def app(name: str | None, worker: bool, roles: tuple[str, ...], grants: tuple[str, ...], access: tuple[str, ...],
        workflows: tuple[str, ...], store_spec: str | None, new_key: bool, register_tasks: bool, app_id: str | None,
        show_secret: bool, force: bool, dry_run: bool) -> None:
    """Create or update application NAME so that a worker can run as it.

    Finds the application by name (or creates it), adds the missing roles, creates an access
    key straight into the store (the secret is never printed), grants EXECUTE on each task,
    and verifies all of it as the application. Safe to run again: a second run changes nothing.
    In a project (orkes-provision.toml), NAME defaults to its application, which also gets the
    roles and grants the file declares.

    \b
    Examples:
      provision app --worker --grant greetings
      provision app                                   # in a project made by 'provision init'
      provision app greetings-worker --worker --grant greetings --store env-file:./worker.env
      provision app billing --role METADATA_API --dry-run
      provision app greetings-starter --workflow greetings_flow   # a starter: may start greetings_flow
    """
    from orkes_provision.access.provisioning import provision_app
    from orkes_provision.cli.context import hint_options, make_client, resolve_server_credentials
    from orkes_provision.credentials.delivery import Choice
    from orkes_provision.workers.app_request import app_request, open_app_store
    from orkes_provision.workers.project import load_project

    request = app_request(name, project=load_project(), worker=worker, roles=roles, grants=grants, access=access,
                          app_id=app_id, new_key=new_key, workflows=workflows)
    if request.name.source != "argument":
        info(f"Application name: {request.name.value} (from the {request.name.source})")
    credentials = resolve_server_credentials()
    choice = request.store(store_spec, server=Choice(credentials.server, "--server" if opts().server
                                                     else "the provisioning credentials"))
    if choice.source != "--store":
        info(f"Key store: {choice.value} (from {choice.source})")
    store, note = open_app_store(choice, show_secret=show_secret, dry_run=dry_run)
    if note:
        info(note)
    with make_client(credentials) as client:
        result = provision_app(client, server=credentials.server, spec=request.spec, store=store,
                               store_spec=choice.value, register_tasks=register_tasks, dry_run=dry_run,
                               actor=credentials.key_id, force=force, on_outcome=in_command(_progress))
    hints = request.hints(server=result.server, store=choice, options=hint_options())
    if choice.value == "json":
        # stdout carries the credentials document alone, so it can be piped into a secret manager.
        info(render(result, hints))
        return
    emit(result.to_dict() | {"storeSource": choice.source}, lambda: render(result, hints))


def _progress(outcome: Outcome, done: int, total: int) -> None:
    mark = {"done": "ok", "failed": "FAILED", "skipped": "skipped"}[outcome.status]
    info(f"[{done}/{total}] {outcome.change.describe(symbol=False)}: {mark}")


def render(result: AppResult, hints: Hints) -> str:
    lines: list[str] = []
    if result.dry_run:
        lines.append(f"Dry run for application {result.name} on {result.server}; nothing was written.")
        lines.append(result.plan.render())
        return "\n".join(lines)
    for lost in result.lost_keys_retired:
        lines.append(f"{lost.action.capitalize()} key {lost.key_id}: {lost.reason}.")
    if not result.changed:
        lines.append(f"No changes: application {result.name} is already set up.")
    alias = f" (its server updated from {result.key_server_alias}: the same key works here)" \
        if result.key_server_alias else ""
    lines += [
        f"Application: {result.name} ({result.app_id}) on {result.server}",
        f"Roles:       {', '.join(result.roles) or 'none'}",
        f"Key:         {result.key_id} in {result.store}{alias}",
        f"Grants:      {'; '.join(result.grants) or 'none'}",
        "Verified:    the key authenticates" + (", roles and grants are in place" if result.grants else ""),
    ]
    for displaced in result.displaced:
        lines.append(f"Replaced:    {displaced.note}")
    if result.other_active_keys:
        from orkes_provision.credentials.delivery import where_delivered

        lines.append("Note: older ACTIVE keys remain; retire each once no worker uses it:")
        for key_id in result.other_active_keys:
            # Where the key went decides whether it is safe to retire: another project may run on it.
            homes = [f"{d.store} (on {d.time})" for d in where_delivered(result.server, result.name, key_id)]
            lines.append(f"  key {key_id}: delivered to {', '.join(homes)}" if homes else
                         f"  key {key_id}: not delivered from this machine (another machine, or by hand)")
            lines.append(f"  {hints.keys('deactivate', key_id)}")
    if result.store_spec == "json":
        return "\n".join(lines)
    if result.is_worker:
        lines.append(f"Next: {hints.next_run or hints.run()}")
    elif any(g.startswith("EXECUTE on WORKFLOW_DEF ") for g in result.grants):
        # A starter: it runs a program that starts workflows, and needs no WORKER role for that.
        lines.append(f"Next: {hints.run('<starter command>', starter=True)}")
    else:
        lines.append(f"Next: to run a worker as {result.name}, give it the WORKER role: {hints.create_app('--worker')}")
    return "\n".join(lines)
