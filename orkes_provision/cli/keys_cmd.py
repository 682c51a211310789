"""``provision keys``: the access-key life cycle of one application."""

from __future__ import annotations

import click

from orkes_provision.cli.common import APP_NAME, KEY_ID, common_options, emit, info


@click.group("keys")
@common_options
def keys() -> None:
    """Manage an application's access keys (secrets are never shown, except by '--store json').

    \b
    Examples:
      provision keys list greetings-worker
      provision keys create greetings-worker --store env-file:./worker.env
      provision keys deactivate greetings-worker KEY_ID
      provision keys rotate greetings-worker --grace 15m
    """


@keys.command("list")
@click.argument("app", type=APP_NAME)
@common_options
def list_keys(app: str) -> None:
    """List the keys of APP (name or id) with their status.

    \b
    Example:
      provision keys list greetings-worker --json
    """
    from orkes_provision.access.state import find_application
    from orkes_provision.cli.context import make_client

    with make_client() as client:
        target = find_application(client, app)
        found = client.list_keys(target.id)
    rows = [{"id": k.id, "status": k.status, "createdAt": k.created_at} for k in found]
    emit(rows, lambda: "\n".join(f"{r['id']}  {r['status']}" for r in rows) or f"{target.name} has no keys.")


@keys.command("create")
@click.argument("app", type=APP_NAME)
@click.option("--store", "store_spec", metavar="SPEC", help="keyring (default), env-file:PATH or json.")
@click.option("--show-secret", is_flag=True, help="Allow '--store json' to print the secret to a terminal.")
@common_options
def create(app: str, store_spec: str | None, show_secret: bool) -> None:
    """Create a key for APP and write it straight into the store.

    \b
    Example:
      provision keys create greetings-worker --store env-file:./worker.env
    """
    from orkes_provision.access.keys import create_and_store_key
    from orkes_provision.access.state import find_application
    from orkes_provision.cli.context import make_client, resolve_server_credentials
    from orkes_provision.credentials.stores import open_store
    from orkes_provision.workers.project import load_project, store_spec_for

    store = open_store(store_spec_for(store_spec, load_project()), show_secret=show_secret)
    credentials = resolve_server_credentials()
    with make_client(credentials) as client:
        target = find_application(client, app)
        known = {k.id for k in client.list_keys(target.id)}
        key = create_and_store_key(client, server=credentials.server, app_name=target.name, app_id=target.id,
                                   stores=[store], known_key_ids=known, actor=credentials.key_id)
    info(f"Created key {key.key_id} for {target.name}; stored in {store.describe()}.")
    if store.spec != "json":
        emit({"app": target.name, "appId": target.id, "keyId": key.key_id, "store": store.describe()})


def _set_status(app: str, key_id: str, wanted: str) -> None:
    from orkes_provision import audit
    from orkes_provision.access.keys import set_key_status
    from orkes_provision.access.state import find_application
    from orkes_provision.cli.context import make_client, resolve_server_credentials
    from orkes_provision.errors import ProvisionError

    credentials = resolve_server_credentials()
    action = f"{'activate' if wanted == 'ACTIVE' else 'deactivate'}_key"
    with make_client(credentials) as client:
        target = find_application(client, app)
        try:
            changed = set_key_status(client, app_id=target.id, app_name=target.name, key_id=key_id, wanted=wanted)
        except ProvisionError:
            audit.record(action=action, target=target.name, result="failed", server=credentials.server,
                         actor=credentials.key_id, app=target.name, key_id=key_id)
            raise
    if changed:
        audit.record(action=action, target=target.name, result="ok", server=credentials.server,
                     actor=credentials.key_id, app=target.name, key_id=key_id)
    info(f"Key {key_id} of {target.name} is {wanted}" + ("" if changed else " (unchanged)") + ".")
    emit({"app": target.name, "keyId": key_id, "status": wanted, "changed": changed})


@keys.command("activate")
@click.argument("app", type=APP_NAME)
@click.argument("key_id", type=KEY_ID)
@common_options
def activate(app: str, key_id: str) -> None:
    """Make KEY_ID of APP ACTIVE (no change if it already is).

    \b
    Example:
      provision keys activate greetings-worker 4f1c...
    """
    _set_status(app, key_id, "ACTIVE")


@keys.command("deactivate")
@click.argument("app", type=APP_NAME)
@click.argument("key_id", type=KEY_ID)
@common_options
def deactivate(app: str, key_id: str) -> None:
    """Make KEY_ID of APP INACTIVE: it can no longer get tokens (no change if it already is).

    \b
    Example:
      provision keys deactivate greetings-worker 4f1c...
    """
    _set_status(app, key_id, "INACTIVE")


@keys.command("delete")
@click.argument("app", type=APP_NAME)
@click.argument("key_id", type=KEY_ID)
@common_options
def delete(app: str, key_id: str) -> None:
    """Delete KEY_ID of APP for good. Workers using it lose access at once.

    \b
    Example:
      provision keys delete greetings-worker 4f1c...
    """
    from orkes_provision import audit
    from orkes_provision.access.state import find_application
    from orkes_provision.cli.context import make_client, resolve_server_credentials

    credentials = resolve_server_credentials()
    with make_client(credentials) as client:
        target = find_application(client, app)
        with audit.recorded(action="delete_key", target=target.name, server=credentials.server,
                            actor=credentials.key_id, app=target.name, key_id=key_id):
            client.delete_key(target.id, key_id)
    info(f"Deleted key {key_id} of {target.name}.")
    emit({"app": target.name, "keyId": key_id, "deleted": True})


from orkes_provision.cli.rotate_cmd import prune, rotate  # noqa: E402

keys.add_command(rotate)
keys.add_command(prune)
