"""No self-lockout: a command never takes away the access of the credentials running it, unless told to.

The credentials are an application's key. Deleting that application, deleting or deactivating that
key, removing a role from that application (ADMIN above all) or revoking one of its grants would cut
the command's own profile off, often with nothing left that could undo it (the sandbox's bootstrap
admin, a CI job's only ADMIN key). ``apps delete``, ``keys deactivate|delete``, ``revoke`` and
``apply`` (``--prune``'s deletions and removals) refuse such a change with ``Conflict`` (exit 7)
unless ``allow`` (``--allow-self-lockout``); ``plan`` marks it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from orkes_provision.access.changes import AppChange, Change, DeleteApp, RemoveRole, Revoke
from orkes_provision.errors import Conflict, ProvisionError
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Application

FLAG = "--allow-self-lockout"
_HINT = (f"do it with another ADMIN application's key, or add {FLAG} if this is meant "
         "(nothing may be left that can undo it)")


@dataclass(frozen=True)
class Caller:
    """The application whose key runs this command."""

    app_id: str
    key_id: str


def caller(client: OrkesClient) -> Caller | None:
    """Who the client's key is (``GET /token/userInfo``); ``None`` when that cannot be told (not an application)."""
    if client.key_id is None:
        return None
    try:
        user = client.user_info()
    except ProvisionError:
        return None
    ident = user.get("id")
    if isinstance(ident, str) and ident.startswith("app:"):
        return Caller(app_id=ident.removeprefix("app:"), key_id=client.key_id)
    return None


def lockout(change: Change, me: Caller | None) -> str | None:
    """Why ``change`` takes access from the credentials running the command, or ``None``."""
    if me is None or not isinstance(change, AppChange) or change.app_id != me.app_id:
        return None
    if isinstance(change, DeleteApp):
        return f"deletes the application of the key running this command ({me.key_id})"
    if isinstance(change, RemoveRole):
        return f"removes role {change.role} from the application of the key running this command ({me.key_id})"
    if isinstance(change, Revoke):
        return f"revokes access of the application of the key running this command ({me.key_id})"
    return None


def lockouts(changes: Iterable[Change], me: Caller | None) -> dict[Change, str]:
    return {c: why for c in changes if (why := lockout(c, me)) is not None}


def refuse_planned(found: Mapping[Change, str], *, allow: bool) -> None:
    if found and not allow:
        change, why = next(iter(found.items()))
        more = f" (and {len(found) - 1} more such change(s))" if len(found) > 1 else ""
        raise Conflict(f"refusing to {change.describe(symbol=False)}: it {why}{more}", _HINT)


def owns_key(client: OrkesClient, app: Application) -> bool:
    """True when the client's own key is a key of ``app``."""
    return client.key_id is not None and client.key_id in {k.id for k in client.list_keys(app.id)}


def refuse_own_application(client: OrkesClient, app: Application, action: str, consequence: str, *,
                           allow: bool) -> None:
    """``Conflict`` when the client's key belongs to ``app`` and ``action`` (e.g. "delete application")
    would take access from it; ``consequence`` starts the hint ("deleting it would revoke that key")."""
    if allow or not owns_key(client, app):
        return
    raise Conflict(f"refusing to {action} {app.name} ({app.id}): the key this command uses ({client.key_id}) "
                   "belongs to it",
                   f"{consequence} and lock this profile out; do it with another ADMIN application's key, or add "
                   f"{FLAG} if this is meant")


def refuse_own_key(client: OrkesClient, app: Application, key_id: str, action: str, *, allow: bool) -> None:
    """``Conflict`` when ``key_id`` is the key this command runs with."""
    if allow or client.key_id is None or key_id.strip() != client.key_id:
        return
    raise Conflict(f"refusing to {action} key {key_id} of {app.name}: it is the key this command uses",
                   f"this profile would be locked out at once; do it with another ADMIN application's key, or add "
                   f"{FLAG} if this is meant")
