"""Creating a key safely: the secret is stored before anything else can fail, and no key is left
on the server whose secret was lost.

The intent to create a key is recorded (``credentials.delivery.begin_key_creation``) before the
create request, and cleared once the key is in every store. A run killed in between leaves the
intent behind; the next run for that application (``retire_lost_keys``) records the deliveries of
keys a store does hold, and retires a key no store holds only when the lost request could have made
it: created inside the request's own window (the intent's start to its deadline). The one key in
the window is deleted; where it is not certain (more than one key there, no creation time, an intent
without a deadline, a key just outside the window that clock skew could put in it) the key is
deactivated, never deleted, and reported, so that an operator's key made meanwhile survives.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from orkes_provision import audit
from orkes_provision.credentials.delivery import (
    KeyIntent,
    begin_key_creation,
    deliveries,
    end_key_creation,
    forget_deliveries,
    pending_key_creations,
    record_delivery,
    stored_home,
)
from orkes_provision.credentials.stores import CredentialStore, StoredKey, open_store
from orkes_provision.errors import (
    AuthenticationError,
    Conflict,
    NotFound,
    ProvisionError,
    ServerUnavailable,
    StoreError,
)
from orkes_provision.orkes.urls import normalize_server_url

if TYPE_CHECKING:
    from orkes_provision.orkes.client import OrkesClient
    from orkes_provision.orkes.models import AccessKey

log = logging.getLogger(__name__)
# Stores are local and quick; one writer at a time keeps keyring and file writes simple.
_STORE_LOCK = threading.Lock()
# The server's clock and ours may differ a little: a key this close outside the window is uncertain.
_CLOCK_SKEW = timedelta(seconds=5)


@dataclass(frozen=True)
class LostKey:
    """A key a killed key creation left behind, and what was done about it (``deleted`` or ``deactivated``)."""

    key_id: str
    action: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"keyId": self.key_id, "action": self.action, "reason": self.reason}


def request_bound(client: OrkesClient) -> float:
    """Seconds after which a request of ``client`` has given up (its deadline, else its attempts' timeouts)."""
    if client.deadline is not None:
        return float(client.deadline)
    policy = client.retry_policy
    return client.timeout * 2 * (policy.max_retries + 1) + policy.cap * policy.max_retries


@dataclass(frozen=True)
class DisplacedKey:
    """A key of another application (or of this one on another server) a store held, replaced by ``--force``."""

    store: str
    key: StoredKey
    retired: bool
    note: str


def key_refused(client: OrkesClient, *, server: str, app_name: str, app_id: str, err: Conflict) -> Conflict:
    """A create-key refused with 409: most likely a cap on keys per application (no Orkes source states one).

    One line that says how to make room; remembered per server (``serverfacts``) for ``probe`` and later runs.
    """
    from orkes_provision.orkes import serverfacts

    try:
        keys = client.list_keys(app_id)
    except ProvisionError:
        keys = []
    inactive = [k.id for k in keys if k.status != "ACTIVE"]
    if keys:
        serverfacts.record(server, serverfacts.MAX_KEYS_PER_APP, str(len(keys)), source="create-key")
    held = f"it holds {len(keys)} key(s), {len(inactive)} INACTIVE" if keys else "it may hold no more keys"
    app = shlex.quote(app_name)
    first = shlex.quote(inactive[0]) if inactive else "KEY_ID"
    return Conflict(f"the server refused a new key for {app_name}: {held} ({err.message})",
                    f"make room with 'provision keys delete {app} {first}' ('provision keys list {app}' shows the "
                    f"INACTIVE ones), then rerun")


def create_and_store_key(client: OrkesClient, *, server: str, app_name: str, app_id: str,
                         stores: Sequence[CredentialStore], known_key_ids: set[str],
                         actor: str | None, force: bool = False,
                         displaced: list[DisplacedKey] | None = None) -> StoredKey:
    """Create a key for ``app_id`` and write it to every store, or leave no trace of it.

    ``known_key_ids`` are the application's keys before this call: if the create request fails
    in a way that may have reached the server, any key not among them is deleted. A store holding
    the key of another application is refused before anything is created, unless ``force``: the
    key it held is then retired (deactivated) once the new key is stored, and listed in ``displaced``.
    """
    retire_lost_keys(client, server=server, app_name=app_name, actor=actor)
    to_displace = check_stores_free(client, server=server, app_name=app_name, app_id=app_id, stores=stores,
                                    force=force)
    intent = begin_key_creation(server, app_name, app_id, known_key_ids, [s.spec for s in stores],
                                deadline_seconds=request_bound(client))
    try:
        created = client.create_key(app_id)
    except ServerUnavailable as err:
        _delete_unknown_keys(client, app_id, known_key_ids, server=server, app_name=app_name, actor=actor)
        end_key_creation(intent)
        audit.record(action="create_key", target=app_name, result="failed", server=server, actor=actor, app=app_name)
        raise ServerUnavailable(f"creating a key for {app_name} failed: {err.message}",
                                "rerun the command; no key was left behind") from err
    except Conflict as err:
        end_key_creation(intent)  # refused by the server: nothing was created
        raise key_refused(client, server=server, app_name=app_name, app_id=app_id, err=err) from err
    except ProvisionError:
        end_key_creation(intent)  # refused by the server: nothing was created
        raise
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
        end_key_creation(intent)
        audit.record(action="create_key", target=app_name, result="store_failed", server=server, actor=actor,
                     app=app_name, key_id=created.id)
        if isinstance(err, ProvisionError):
            raise StoreError(f"{err.message}; the new key {created.id} was deleted on the server",
                             err.hint) from None
        raise StoreError(f"writing the new key failed ({type(err).__name__}); "
                         f"the new key {created.id} was deleted on the server") from None
    for store in stores:
        record_delivery(server, app_name, app_id, store.spec, created.id)
    end_key_creation(intent)
    audit.record(action="create_key", target=app_name, result="ok", server=server, actor=actor, app=app_name,
                 key_id=created.id)
    for store, held in to_displace:
        retired = _retire_displaced(client, server=server, store=store, held=held, actor=actor)
        if displaced is not None:
            displaced.append(retired)
    return key


def check_stores_free(client: OrkesClient, *, server: str, app_name: str, app_id: str | None,
                      stores: Sequence[CredentialStore], force: bool) -> list[tuple[CredentialStore, StoredKey]]:
    """Refuse (``StoreError``) a store that holds the key of another application, or of this one on
    another server, unless ``force``; return what ``force`` will replace. Stores keyed by server and
    application (keyring) never hold another's key."""
    out: list[tuple[CredentialStore, StoredKey]] = []
    for store in stores:
        held = stored_home(store)
        if held is None or not held.app:
            continue  # empty, or a file written by hand: the user pointed us at it
        if held.app == app_name and (held.server == normalize_server_url(server, insecure_http=True)
                                     or _belongs_to(client, held.key_id, app_id)):
            continue  # this application's own key (perhaps under another spelling of the server URL)
        if not force:
            where = store.describe(held.server, held.app)
            server_note = "" if held.app != app_name else f" on {held.server}"
            raise StoreError(f"{where} holds the key of application {held.app!r}{server_note} (key {held.key_id}); "
                             f"writing {app_name}'s key there would lose it while it stays ACTIVE",
                             "give each application its own store (e.g. --store env-file:OTHER.env), or add "
                             f"--force to replace it and retire key {held.key_id}")
        out.append((store, held))
    return out


def _belongs_to(client: OrkesClient, key_id: str, app_id: str | None) -> bool:
    if app_id is None:
        return False
    try:
        return client.get_application_by_key(key_id).id == app_id
    except NotFound:
        return False


def _retire_displaced(client: OrkesClient, *, server: str, store: CredentialStore, held: StoredKey,
                      actor: str | None) -> DisplacedKey:
    """Retire the key ``held`` only when the file proves it holds it: its secret authenticates that key
    id on the file's own server, and the key belongs to the application the file names. Key ids are
    not secret: a file naming another application's key id (the admin's) with a made-up secret must
    not make ``--force`` deactivate that key."""
    by_hand = shlex.join(["provision", "--server", held.server, "keys", "deactivate", held.app, held.key_id, "--yes"])
    if normalize_server_url(held.server, insecure_http=True) != normalize_server_url(server, insecure_http=True):
        return DisplacedKey(store.spec, held, False,
                            f"key {held.key_id} of {held.app} belongs to {held.server}, not {server}; retire it on "
                            f"its own server if it is still in use: {by_hand}")
    if not key_authenticates(client, held):
        return DisplacedKey(store.spec, held, False,
                            f"did not retire key {held.key_id}: the secret {store.describe()} held does not "
                            f"authenticate it on {server}, so the file does not prove it holds that key")
    try:
        owner = client.get_application_by_key(held.key_id)
    except NotFound:
        owner = None
    if owner is None:
        return DisplacedKey(store.spec, held, False,
                            f"key {held.key_id} of {held.app} is not a key of {server}; retire it on its own "
                            f"server: {by_hand}")
    if owner.name != held.app:
        return DisplacedKey(store.spec, held, False,
                            f"did not retire key {held.key_id}: it belongs to {owner.name}, not to {held.app} as "
                            f"{store.describe()} said")
    set_key_status(client, app_id=owner.id, app_name=owner.name, key_id=held.key_id, wanted="INACTIVE")
    audit.record(action="deactivate_key", target=owner.name, result="ok", server=server, actor=actor,
                 app=owner.name, key_id=held.key_id)
    forget_deliveries(server, owner.name, store.spec)
    return DisplacedKey(store.spec, held, True,
                        f"retired key {held.key_id} of {owner.name} (INACTIVE), which {store.describe()} held")


def retire_lost_keys(client: OrkesClient, *, server: str, app_name: str, actor: str | None,
                     opener: Callable[[str], CredentialStore] | None = None) -> list[LostKey]:
    """Finish what a killed run left: retire the key its create request made if no store holds it.

    A key made since the intent that a store of the intent does hold is kept and its delivery
    recorded. An intent whose stores cannot be read now is kept for a later run. What is retired,
    and why, is returned (and audited).
    """
    opener = opener or _open_for_reading
    retired: list[LostKey] = []
    for intent in pending_key_creations(server, app_name):
        try:
            current = client.list_keys(intent.app_id)
        except NotFound:
            end_key_creation(intent)  # the application is gone, and its keys with it
            continue
        held = _held_by(intent, opener)
        if held is None:
            continue
        delivered = {d.key_id for d in deliveries(server, app_name)}
        unknown = []
        for key in current:
            if key.id in intent.known_key_ids or key.id in delivered:
                continue
            if key.id in held:
                record_delivery(server, app_name, intent.app_id, held[key.id], key.id)
                continue
            unknown.append(key)
        for key, action, reason in _judge(unknown, intent):
            if action == "deleted":
                with contextlib.suppress(NotFound):
                    client.delete_key(intent.app_id, key.id)
            else:
                with contextlib.suppress(NotFound):
                    set_key_status(client, app_id=intent.app_id, app_name=app_name, key_id=key.id, wanted="INACTIVE",
                                   known=key.status)
            audit.record(action="delete_lost_key" if action == "deleted" else "deactivate_lost_key", target=app_name,
                         result="ok", server=server, actor=actor, app=app_name, key_id=key.id)
            retired.append(LostKey(key.id, action, reason))
        end_key_creation(intent)
    return retired


def _judge(keys: Sequence[AccessKey], intent: KeyIntent) -> list[tuple[AccessKey, str, str]]:
    """Which of the unclaimed ``keys`` the lost request may have made, and whether that is certain."""
    started, ends = intent.started, intent.ends
    if ends is None:  # an intent of an older version: no window to judge by
        return [(k, "deactivated", "an interrupted run may have created it (its record has no deadline); "
                 "reactivate it if it is yours") for k in keys]
    inside, near = [], []
    for key in keys:
        if key.created_at is None:
            near.append(key)
            continue
        created = datetime.fromtimestamp(key.created_at / 1000, UTC)
        if started <= created <= ends:
            inside.append(key)
        elif started - _CLOCK_SKEW <= created <= ends + _CLOCK_SKEW:
            near.append(key)
    window = f"{started.isoformat(timespec='seconds')} to {ends.isoformat(timespec='seconds')}"
    if len(inside) == 1 and not near:
        return [(inside[0], "deleted", f"created inside the window of an interrupted key creation ({window}) "
                 "and held by no store: its secret was lost")]
    return [(k, "deactivated", f"created at the time of an interrupted key creation ({window}), but it is not "
             "certain that run made it; reactivate it if it is yours") for k in (*inside, *near)]


def _held_by(intent: KeyIntent, opener: Callable[[str], CredentialStore]) -> dict[str, str] | None:
    held: dict[str, str] = {}
    for spec in intent.stores:
        try:
            found = opener(spec).load(intent.server, intent.app)
        except ProvisionError as err:
            log.warning("cannot read %s to finish an interrupted key creation: %s", spec, err.message)
            return None
        if found is not None:
            held[found.key_id] = spec
    return held


def _open_for_reading(spec: str) -> CredentialStore:
    # An env file whose directory is gone holds nothing: read it without open_store's writability check.
    if spec.startswith("env-file:"):
        from orkes_provision.credentials.stores.envfile import EnvFileStore

        return EnvFileStore(spec.partition(":")[2])
    return open_store(spec)


def set_key_status(client: OrkesClient, *, app_id: str, app_name: str, key_id: str, wanted: str,
                   known: str | None = None) -> bool:
    """Bring a key to ``wanted`` (ACTIVE or INACTIVE); True when it had to change.

    The server only toggles, so a blind repeat would undo itself: toggle only when the status
    differs (``known``, else read), and after an unclear answer re-read before toggling again.
    """
    if known is None:
        known = {k.id: k.status for k in client.list_keys(app_id)}.get(key_id)
        if known is None:
            raise NotFound(f"{app_name} has no key {key_id}",
                           f"see its keys: {shlex.join(['provision', 'keys', 'list', app_name])}")
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
                       f"check the keys, then run the command again: "
                       f"{shlex.join(['provision', 'keys', 'list', app_name])}")
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
            f"delete it: {shlex.join(['provision', 'keys', 'delete', app_id, key_id])}") from None


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
