"""``provision keys``: the access-key life cycle of one application."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from orkes_provision.cli.common import (
    APP_NAME,
    KEY_ID,
    STORE_KINDS_WRITE,
    ProvisionGroup,
    common_options,
    confirm,
    emit,
    info,
    self_lockout_option,
    yes_option,
)

if TYPE_CHECKING:
    from orkes_provision.orkes.client import OrkesClient


@click.group("keys", cls=ProvisionGroup)
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
    """List the keys of APP (name or id) with their status, age and where this machine delivered each.

    The age is counted from the server's createdAt ('provision keys rotate --all --older-than 30d'
    rotates the applications whose oldest ACTIVE key is older).

    \b
    Example:
      provision keys list greetings-worker --json
    """
    from datetime import UTC, datetime

    from orkes_provision.access.keyage import age_seconds, format_age, key_age
    from orkes_provision.access.state import find_application
    from orkes_provision.cli.context import make_client, resolve_server_credentials
    from orkes_provision.credentials.delivery import where_delivered

    credentials = resolve_server_credentials()
    with make_client(credentials) as client:
        target = find_application(client, app)
        found = client.list_keys(target.id)
    now = datetime.now(UTC)
    ages = {k.id: key_age(k, now) for k in found}
    places = {k.id: where_delivered(credentials.server, target.name, k.id) for k in found}
    rows = [{"id": k.id, "status": k.status, "createdAt": k.created_at, "ageSeconds": age_seconds(ages[k.id]),
             "deliveredTo": [{"store": d.store, "time": d.time} for d in places[k.id]]} for k in found]

    def text() -> str:
        if not found:
            return f"{target.name} has no keys."
        return "\n".join(f"{k.id}  {k.status:<8}  {format_age(ages[k.id]) + ' old':<12}  delivered to: "
                         + ("; ".join(f"{d.store} ({d.time})" for d in places[k.id]) or "nowhere this machine knows of")
                         for k in found)

    emit(rows, text)


@keys.command("create")
@click.argument("app", type=APP_NAME)
@click.option("--store", "store_spec", metavar="SPEC",
              help=f"Where the key goes: {STORE_KINDS_WRITE} (default: the project file's, else where this "
                   "machine delivered APP's key, else the keyring).")
@click.option("--show-secret", is_flag=True, help="Allow '--store json' to print the secret to a terminal.")
@click.option("--force", is_flag=True,
              help="Write into a store that holds another application's key, and retire that key.")
@common_options
def create(app: str, store_spec: str | None, show_secret: bool, force: bool) -> None:
    """Create a key for APP and write it straight into the store.

    \b
    Example:
      provision keys create greetings-worker --store env-file:./worker.env
    """
    from orkes_provision.access.keys import DisplacedKey, create_and_store_key
    from orkes_provision.access.state import find_application
    from orkes_provision.cli.context import make_client, resolve_server_credentials
    from orkes_provision.credentials.delivery import choose_store
    from orkes_provision.credentials.stores import open_store
    from orkes_provision.locks import app_lock
    from orkes_provision.workers.project import load_project

    project = load_project()
    credentials = resolve_server_credentials()
    with make_client(credentials) as client:
        target = find_application(client, app)
        choice = choose_store(store_spec, app=target.name, server=credentials.server,
                              project=project.defaults() if project is not None else None)
        if choice.source != "--store":
            info(f"Key store: {choice.value} (from {choice.source})")
        store = open_store(choice.value, show_secret=show_secret)
        displaced: list[DisplacedKey] = []
        with app_lock(credentials.server, target.name):
            known = {k.id for k in client.list_keys(target.id)}
            key = create_and_store_key(client, server=credentials.server, app_name=target.name, app_id=target.id,
                                       stores=[store], known_key_ids=known, actor=credentials.key_id, force=force,
                                       displaced=displaced)
    for replaced in displaced:
        info(f"Replaced: {replaced.note}")
    done = f"Created key {key.key_id} for {target.name}; stored in {store.describe()}."
    if store.spec == "json":
        info(done)  # stdout carries the credentials document alone
        return
    emit({"app": target.name, "appId": target.id, "keyId": key.key_id, "store": store.spec,
          "storeSource": choice.source}, done)


def _set_status(app: str, key_id: str, wanted: str, yes: bool = True, allow_self_lockout: bool = False) -> None:
    from orkes_provision import audit
    from orkes_provision.access.keys import set_key_status
    from orkes_provision.access.selflock import refuse_own_key
    from orkes_provision.access.state import find_application
    from orkes_provision.cli.context import make_client, resolve_server_credentials
    from orkes_provision.errors import ProvisionError

    credentials = resolve_server_credentials()
    action = f"{'activate' if wanted == 'ACTIVE' else 'deactivate'}_key"
    with make_client(credentials) as client:
        target = find_application(client, app)
        if wanted == "INACTIVE":
            refuse_own_key(client, target, key_id, "deactivate", allow=allow_self_lockout)
            _confirm_retiring(client, target.id, target.name, key_id, "deactivate", yes)
        try:
            changed = set_key_status(client, app_id=target.id, app_name=target.name, key_id=key_id, wanted=wanted)
        except ProvisionError:
            audit.record(action=action, target=target.name, result="failed", server=credentials.server,
                         actor=credentials.key_id, app=target.name, key_id=key_id)
            raise
    if changed:
        audit.record(action=action, target=target.name, result="ok", server=credentials.server,
                     actor=credentials.key_id, app=target.name, key_id=key_id)
    emit({"app": target.name, "appId": target.id, "keyId": key_id, "status": wanted, "changed": changed},
         f"Key {key_id} of {target.name} is {wanted}" + ("" if changed else " (unchanged)") + ".")


def _confirm_retiring(client: OrkesClient, app_id: str, app_name: str, key_id: str, verb: str, yes: bool) -> None:
    """Ask before a key stops working; warn first when it is the application's last ACTIVE key."""
    keys = client.list_keys(app_id)
    key = next((k for k in keys if k.id == key_id), None)
    if key is None or (verb == "deactivate" and key.status != "ACTIVE"):
        return  # nothing that works stops working: the library reports the missing key or no change
    active = [k.id for k in keys if k.status == "ACTIVE"]
    warning = None
    if active == [key_id]:
        warning = (f"{key_id} is the last ACTIVE key of {app_name}: every worker of {app_name} loses access "
                   f"until a new key is delivered ('provision keys rotate {app_name}' replaces it instead)")
    what = "an ACTIVE" if key.status == "ACTIVE" else "an INACTIVE"
    confirm(f"{verb.capitalize()} {what} key {key_id} of {app_name}?", yes=yes,
            action=f"{verb} key {key_id} of {app_name}", warning=warning)


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
@yes_option
@self_lockout_option
@common_options
def deactivate(app: str, key_id: str, yes: bool, allow_self_lockout: bool) -> None:
    """Make KEY_ID of APP INACTIVE: it can no longer get tokens (no change if it already is).

    Asks first on a terminal (--yes without one), and warns when KEY_ID is the application's
    last ACTIVE key.

    \b
    Example:
      provision keys deactivate greetings-worker 4f1c... --yes
    """
    _set_status(app, key_id, "INACTIVE", yes, allow_self_lockout)


@keys.command("delete")
@click.argument("app", type=APP_NAME)
@click.argument("key_id", type=KEY_ID)
@yes_option
@self_lockout_option
@common_options
def delete(app: str, key_id: str, yes: bool, allow_self_lockout: bool) -> None:
    """Delete KEY_ID of APP for good; workers using it lose access at once.

    Asks first on a terminal (--yes without one), and warns when KEY_ID is the application's
    last ACTIVE key.

    \b
    Example:
      provision keys delete greetings-worker 4f1c... --yes
    """
    from orkes_provision import audit
    from orkes_provision.access.selflock import refuse_own_key
    from orkes_provision.access.state import find_application
    from orkes_provision.cli.context import make_client, resolve_server_credentials

    credentials = resolve_server_credentials()
    with make_client(credentials) as client:
        target = find_application(client, app)
        refuse_own_key(client, target, key_id, "delete", allow=allow_self_lockout)
        _confirm_retiring(client, target.id, target.name, key_id, "delete", yes)
        with audit.recorded(action="delete_key", target=target.name, server=credentials.server,
                            actor=credentials.key_id, app=target.name, key_id=key_id):
            client.delete_key(target.id, key_id)
    emit({"deleted": True, "id": key_id, "app": target.name, "appId": target.id},
         f"Deleted key {key_id} of {target.name}.")


from orkes_provision.cli.rotate_cmd import prune, rotate  # noqa: E402

keys.add_command(rotate)
keys.add_command(prune)
