"""``provision app``: from nothing to an application a worker can run as."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

import click

from orkes_provision.cli.common import APP_ID, APP_NAME, TASK_NAME, common_options, emit, info
from orkes_provision.errors import UsageError

if TYPE_CHECKING:
    from orkes_provision.access.execute import Outcome
    from orkes_provision.access.provisioning import AppResult


def default_app_name(name: str | None, grants: tuple[str, ...]) -> tuple[str, str]:
    """The name to use and where it came from: the argument, the project file, or the first task."""
    if name:
        return name, "argument"
    from orkes_provision.workers.project import load_project

    project = load_project()
    if project is not None and project.application is not None and project.application.name:
        return project.application.name, "project file"
    if grants:
        return f"{grants[0]}-worker", "first granted task"
    raise UsageError("no application name given",
                     "name it ('provision app NAME'), or grant a task ('--grant greetings' names it greetings-worker)")


@click.command("app")
@click.argument("name", required=False, type=APP_NAME)
@click.option("--worker", is_flag=True, help="Add the WORKER role (poll and execute granted tasks).")
@click.option("--role", "roles", multiple=True, metavar="ROLE", help="Add a role (repeatable), e.g. METADATA_API.")
@click.option("--grant", "grants", multiple=True, metavar="TASK", type=TASK_NAME,
              help="Grant access on a task definition (repeatable).")
@click.option("--access", "access", multiple=True, metavar="ACCESS",
              help="Access to grant on each task (repeatable; default EXECUTE): READ, UPDATE, EXECUTE, ...")
@click.option("--store", "store_spec", metavar="SPEC",
              help="Where the key goes: keyring (default), env-file:PATH, json.")
@click.option("--new-key", is_flag=True, help="Create a new key even if the stored one still works.")
@click.option("--register-tasks", is_flag=True,
              help="Register a minimal definition for granted tasks that are missing.")
@click.option("--app-id", metavar="ID", type=APP_ID, help="Pick one application when several share the name.")
@click.option("--show-secret", is_flag=True, help="Allow '--store json' to print the secret to a terminal.")
@click.option("--dry-run", is_flag=True, help="Print what would change and write nothing.")
@common_options
def app(name: str | None, worker: bool, roles: tuple[str, ...], grants: tuple[str, ...], access: tuple[str, ...],
        store_spec: str | None, new_key: bool, register_tasks: bool, app_id: str | None, show_secret: bool,
        dry_run: bool) -> None:
    """Create or update application NAME so that a worker can run as it.

    Finds the application by name (or creates it), adds the missing roles, creates an access
    key straight into the store (the secret is never printed), grants EXECUTE on each task,
    and verifies all of it as the application. Safe to run again: a second run changes nothing.

    \b
    Examples:
      provision app --worker --grant greetings
      provision app greetings-worker --worker --grant greetings --store env-file:./worker.env
      provision app billing --role METADATA_API --dry-run
    """
    from orkes_provision.access.provisioning import provision_app
    from orkes_provision.access.spec import app_spec_from_flags
    from orkes_provision.cli.context import make_client, resolve_server_credentials
    from orkes_provision.credentials.stores import open_store
    from orkes_provision.workers.project import load_project, store_spec_for

    if any(not g.strip() for g in grants):
        raise UsageError("a task name given to --grant is empty",
                         "pass the task definition name, e.g. --grant greetings")
    app_name, source = default_app_name(name, grants)
    if source != "argument":
        info(f"Application name: {app_name} (from the {source})")
    all_roles = (("WORKER",) if worker else ()) + roles
    spec = app_spec_from_flags(app_name, roles=all_roles, tasks=grants, access=access, app_id=app_id,
                               new_key=new_key)
    store = open_store(store_spec_for(store_spec, load_project()), show_secret=show_secret)
    credentials = resolve_server_credentials()
    with make_client(credentials) as client:
        result = provision_app(client, server=credentials.server, spec=spec, store=store,
                               register_tasks=register_tasks, dry_run=dry_run, actor=credentials.key_id,
                               on_outcome=_progress)
    if store.spec == "json":
        # stdout carries the credentials document alone, so it can be piped into a secret manager.
        info(render(result))
        return
    emit(result.to_dict(), lambda: render(result))


def _progress(outcome: Outcome, done: int, total: int) -> None:
    mark = {"done": "ok", "failed": "FAILED", "skipped": "skipped"}[outcome.status]
    info(f"[{done}/{total}] {outcome.change.describe()[2:]}: {mark}")


def render(result: AppResult) -> str:
    lines: list[str] = []
    if result.dry_run:
        lines.append(f"Dry run for application {result.name} on {result.server}; nothing was written.")
        lines.append(result.plan.render())
        return "\n".join(lines)
    if not result.changed:
        lines.append(f"No changes: application {result.name} is already set up.")
    lines += [
        f"Application: {result.name} ({result.app_id}) on {result.server}",
        f"Roles:       {', '.join(result.roles) or 'none'}",
        f"Key:         {result.key_id} in {result.store}",
        f"Grants:      {'; '.join(result.grants) or 'none'}",
        "Verified:    the key authenticates" + (", roles and grants are in place" if result.grants else ""),
    ]
    if result.other_active_keys:
        ids = " ".join(result.other_active_keys)
        lines.append(f"Note: older ACTIVE keys remain: {ids}; retire them with "
                     f"'provision keys deactivate {result.name} KEY_ID' once no worker uses them")
    if result.store_spec != "json":
        store = "" if result.store_spec == "keyring" else f" --store {shlex.quote(result.store_spec)}"
        lines.append(f"Next: provision run --app {shlex.quote(result.name)}{store} -- <worker command>")
    return "\n".join(lines)
