"""Creating a key safely: the secret is stored before anything else can fail, and no key is left
on the server whose secret was lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from orkes_provision import audit
from orkes_provision.credentials.deliveries import record_delivery
from orkes_provision.credentials.stores import CredentialStore, StoredKey
from orkes_provision.errors import (
    AuthenticationError,
    Conflict,
    NotFound,
    ProvisionError,
    ServerUnavailable,
    StoreError,
)

if TYPE_CHECKING:
    from orkes_provision.orkes.client import OrkesClient

log = logging.getLogger(__name__)
# Stores are local and quick; one writer at a time keeps keyring and file writes simple.
_STORE_LOCK = threading.Lock()


def create_and_store_key(client: OrkesClient, *, server: str, app_name: str, app_id: str,
                         stores: Sequence[CredentialStore], known_key_ids: set[str],
                         actor: str | None) -> StoredKey:
    """Create a key for ``app_id`` and write it to every store, or leave no trace of it.

    ``known_key_ids`` are the application's keys before this call: if the create request fails
    in a way that may have reached the server, any key not among them is deleted.
    """
    try:
        created = client.create_key(app_id)
    except ServerUnavailable as err:
        _delete_unknown_keys(client, app_id, known_key_ids, server=server, app_name=app_name, actor=actor)
        audit.record(action="create_key", target=app_name, result="failed", server=server, actor=actor, app=app_name)
        raise ServerUnavailable(f"creating a key for {app_name} failed: {err.message}",
                                "rerun the command; no key was left behind") from err
    key = StoredKey(server=server, app=app_name, key_id=created.id, secret=created.secret)
    written: list[tuple[CredentialStore, StoredKey | None]] = []
    try:
        with _STORE_LOCK:
            for store in stores:
                previous = store.load(server, app_name)
                store.save(key)
                written.append((store, previous))
    except Exception as err:
        _undo_store_writes(written, server, app_name)
        _delete_key_quietly(client, app_id, created.id)
        audit.record(action="create_key", target=app_name, result="store_failed", server=server, actor=actor,
                     app=app_name, key_id=created.id)
        if isinstance(err, ProvisionError):
            raise StoreError(f"{err.message}; the new key {created.id} was deleted on the server",
                             err.hint) from None
        raise StoreError(f"writing the new key failed ({type(err).__name__}); "
                         f"the new key {created.id} was deleted on the server") from None
    for store in stores:
        record_delivery(server, app_name, app_id, store.spec, created.id)
    audit.record(action="create_key", target=app_name, result="ok", server=server, actor=actor, app=app_name,
                 key_id=created.id)
    return key


def set_key_status(client: OrkesClient, *, app_id: str, app_name: str, key_id: str, wanted: str,
                   known: str | None = None) -> bool:
    """Bring a key to ``wanted`` (ACTIVE or INACTIVE); True when it had to change.

    The server only toggles, so a blind repeat would undo itself: toggle only when the status
    differs (``known``, else read), and after an unclear answer re-read before toggling again.
    """
    if known is None:
        known = {k.id: k.status for k in client.list_keys(app_id)}.get(key_id)
        if known is None:
            raise NotFound(f"{app_name} has no key {key_id}", f"'provision keys list {app_name}' shows its keys")
    if known == wanted:
        return False
    try:
        status: str | None = client.toggle_key(app_id, key_id).status
    except ServerUnavailable:
        status = None  # it may or may not have flipped
    if status != wanted:
        after = {k.id: k.status for k in client.list_keys(app_id)}.get(key_id)
        if after is not None and after != wanted and status is None:
            status = client.toggle_key(app_id, key_id).status
        elif after == wanted or (after is None and wanted == "INACTIVE"):
            status = wanted  # a key deleted meanwhile cannot mint tokens either
    if status != wanted:
        raise Conflict(f"key {key_id} of {app_name} is not {wanted} after toggling it (someone else toggled it?)",
                       f"check with 'provision keys list {app_name}', then run the command again")
    return True


def key_authenticates(client: OrkesClient, key: StoredKey) -> bool:
    """Does the server accept ``key`` in a token exchange?"""
    try:
        client.exchange_token(key.key_id, key.secret)
    except AuthenticationError:
        return False
    return True


def _undo_store_writes(written: list[tuple[CredentialStore, StoredKey | None]], server: str, app: str) -> None:
    for store, previous in reversed(written):
        try:
            if previous is None:
                store.delete(server, app)
            else:
                store.save(previous)
        except Exception:
            log.warning("could not restore %s after a failed write", store.describe())


def _delete_key_quietly(client: OrkesClient, app_id: str, key_id: str) -> None:
    try:
        client.delete_key(app_id, key_id)
    except ProvisionError as err:
        raise StoreError(
            f"the new key {key_id} could not be stored and deleting it failed too: {err.message}",
            f"delete it with 'provision keys delete {app_id} {key_id}'") from None


def _delete_unknown_keys(client: OrkesClient, app_id: str, known: set[str], *, server: str, app_name: str,
                         actor: str | None) -> None:
    """After an ambiguous create, delete keys the server has but we never saw (their secret is lost)."""
    try:
        current = client.list_keys(app_id)
    except ProvisionError:
        log.warning("could not list keys of %s to clean up after a failed create", app_name)
        return
    for orphan in (k for k in current if k.id not in known):
        try:
            client.delete_key(app_id, orphan.id)
            audit.record(action="delete_orphan_key", target=app_name, result="ok", server=server, actor=actor,
                         app=app_name, key_id=orphan.id)
        except ProvisionError:
            log.warning("could not delete orphan key %s of %s", orphan.id, app_name)
