"""``provision apps``: inspect and remove applications."""

from __future__ import annotations

from typing import Any

import click

from orkes_provision.cli.common import (
    APP_NAME,
    ProvisionGroup,
    common_options,
    confirm,
    emit,
    self_lockout_option,
    yes_option,
)


@click.group("apps", cls=ProvisionGroup)
@common_options
def apps() -> None:
    """List, show and delete applications.

    \b
    Examples:
      provision apps list
      provision apps show greetings-worker --json
      provision apps delete greetings-worker --yes
    """


@apps.command("list")
@common_options
def list_apps() -> None:
    """List every application with its id and tags.

    \b
    Example:
      provision apps list --json
    """
    from orkes_provision.cli.context import make_client
    from orkes_provision.names import confusable_groups, visible

    with make_client() as client:
        found = sorted(client.list_applications(), key=lambda a: (a.name, a.id))
    rows: list[dict[str, Any]] = [{"id": a.id, "name": a.name, "tags": {t.key: t.value for t in a.tags}}
                                  for a in found]

    for group in confusable_groups([a.name for a in found]):
        click.echo("warning: applications " + " and ".join(f"'{visible(n)}'" for n in group)
                   + " look alike (the same letters once normalised, invisible characters dropped); "
                   "rename one, or pick by id (--app-id)", err=True)

    def text() -> str:
        if not rows:
            return "No applications."
        width = max(len(r["name"]) for r in rows)
        return "\n".join(f"{r['name']:<{width}}  {r['id']}  "
                         + " ".join(f"{k}={v}" for k, v in sorted(r["tags"].items())) for r in rows)

    emit(rows, text)


@apps.command("show")
@click.argument("app", type=APP_NAME)
@common_options
def show(app: str) -> None:
    """Show APP (name or id): roles, keys (never secrets) and grants.

    \b
    Example:
      provision apps show greetings-worker
    """
    from orkes_provision.access.state import find_application, read_app_state
    from orkes_provision.cli.context import make_client

    with make_client() as client:
        state = read_app_state(client, find_application(client, app))
    data: dict[str, Any] = {
        "id": state.app.id, "name": state.app.name, "roles": sorted(state.roles),
        "tags": {t.key: t.value for t in state.app.tags},
        "keys": [{"id": k.id, "status": k.status, "createdAt": k.created_at} for k in state.keys],
        "grants": [{"type": t, "id": i, "access": sorted(a)} for (t, i), a in sorted(state.grants.items())],
    }

    def text() -> str:
        lines = [f"Application: {data['name']} ({data['id']})",
                 f"Roles:  {', '.join(data['roles']) or 'none'}",
                 "Keys:   " + (", ".join(f"{k['id']} {k['status']}" for k in data["keys"]) or "none"),
                 "Grants: " + ("; ".join(f"{'+'.join(g['access'])} on {g['type']} {g['id']}"
                                         for g in data["grants"]) or "none")]
        return "\n".join(lines)

    emit(data, text)


@apps.command("delete")
@click.argument("app", type=APP_NAME)
@yes_option
@self_lockout_option
@common_options
def delete(app: str, yes: bool, allow_self_lockout: bool) -> None:
    """Delete APP (name or id) with its keys; workers using its keys stop working at once.

    Asks first on a terminal (--yes without one).

    The application whose key this command uses is refused (exit 7): deleting it would lock you
    out (--allow-self-lockout allows it).

    \b
    Example:
      provision apps delete greetings-worker --yes
    """
    from orkes_provision import audit
    from orkes_provision.access.selflock import refuse_own_application
    from orkes_provision.access.state import find_application
    from orkes_provision.cli.context import make_client, resolve_server_credentials
    from orkes_provision.credentials.delivery import forget_deliveries

    credentials = resolve_server_credentials()
    with make_client(credentials) as client:
        target = find_application(client, app)
        refuse_own_application(client, target, "delete application", "deleting it would revoke that key at once",
                               allow=allow_self_lockout)
        confirm(f"Delete application {target.name} ({target.id}) and all its keys?", yes=yes,
                action=f"delete application {target.name}")
        with audit.recorded(action="delete_app", target=target.name, server=credentials.server,
                            actor=credentials.key_id, app=target.name):
            client.delete_application(target.id)
    forget_deliveries(credentials.server, target.name)
    emit({"deleted": True, "id": target.id, "name": target.name},
         f"Deleted application {target.name} ({target.id}).")
