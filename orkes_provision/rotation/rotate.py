"""Rotating an application's access key without downtime, as a resumable state machine.

Orkes keys never expire, the secret is shown once, the status call only toggles, and SDK workers
read their key once at start. So a rotation must put the new key everywhere the old one went,
prove that it works, give supervised workers time to restart on it, and only then retire the old
key; and a run killed half-way must be finished by the next run, not started over.

The steps (``rotation_state.STEPS``), each persisted before the next begins:

1. **plan**: the application's ACTIVE keys are the old keys; the target stores are those named
   with ``--store``, else every store this tool delivered the application's key to
   (``credentials.delivery``), minus ``json`` and ``memory``, which cannot be written again
   unattended. Every store is opened before anything changes, so an unwritable one fails the run
   early. Each old key is listed with where it was delivered; one delivered somewhere the rotation
   does not write (``json``, a store not named, another machine) is not retired unless
   ``retire_undelivered``: whoever holds it would be cut off with no successor.
2. **create** the new key. ``creating`` is recorded before the request: a rerun that finds it
   deletes keys that appeared since the plan and that no store holds (their secret was lost
   with the killed process), then creates again, so no extra key is left behind.
3. **store** it in each target store, recording each one done. A store that fails stops the run
   (exit 10) with the key kept in the stores already written and the old key still ACTIVE:
   both keys work, nothing is down, and a rerun writes the remaining stores. (Unlike ``provision
   app``, which undoes everything: here the new key may already be in use by a worker that
   switched to it, so deleting it would cause the very outage rotation must avoid.) On a rerun
   the secret is read back from any store of the rotation (a run killed between writing a store
   and recording it leaves the key there unrecorded); if no store has it, the new key is useless:
   it is deleted on the server and the rotation starts again from the plan.
4. **verify** the new key as the application: token exchange, WORKER role, EXECUTE on every task
   definition it holds EXECUTE on (``doctor.diagnose``). A failure stops the run (exit 11)
   before the old key is touched.
5. **switch**: stores that need to act after a rotation expose ``after_rotation(key)`` (e.g. a
   Kubernetes rollout); it is called here. Then the run waits ``switch_wait`` seconds so that
   supervised workers (``provision run --supervise``), which poll their store, start a worker
   on the new key and stop the old one before the old key stops working. Supervisors on this
   machine publish the key ids their workers run (``worker_status``): if one still runs an old
   key after the wait (its new worker would not start), the run stops (exit 11), old key ACTIVE.
   The tasks still held by workers a hook replaced (``replaced_workers``: pod names, which SDK
   workers use as worker ids) go back to their queue (``workers.requeue``), not to a timeout.
6. **deactivate** each old key still ACTIVE (the toggle is not idempotent: the status is read
   first, and re-read after an ambiguous failure). The time is recorded locally.
7. **prune**: delete the application's keys that have been INACTIVE longer than ``grace``
   (``prune_keys`` is this step alone). Orkes keeps no deactivation time: keys this tool
   deactivated count from then, others from when this tool first saw them INACTIVE. During the
   grace period ``provision keys activate APP OLD_KEY`` undoes a rotation.

The lock of the application on the server (``locks.app_lock``, the one ``app`` and ``apply``
take too) makes a second concurrent rotation fail at once with ``LockHeld`` (exit 12). Progress
holds key ids and store specs, never a secret.

Tokens already issued from a deactivated or deleted key: the safer behaviour is that they stop
working at once (a leaked key is then really revoked by deactivating it), and that is what the
sandbox does (401 INVALID_TOKEN). Orkes's own behaviour is unconfirmed; rotation is built so that
it does not matter: no worker still uses the old key when it is deactivated.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from orkes_provision import audit
from orkes_provision.access.doctor import diagnose
from orkes_provision.access.keys import key_refused, set_key_status
from orkes_provision.access.state import find_application
from orkes_provision.agent.registry import serving_agents
from orkes_provision.credentials.delivery import WRITE_ONCE_STORES, Hints, deliveries, record_delivery, where_delivered
from orkes_provision.credentials.stores import CredentialStore, StoredKey, open_store
from orkes_provision.errors import (
    Conflict,
    NotFound,
    ProvisionError,
    ServerUnavailable,
    StoreError,
    UsageError,
    VerificationFailed,
)
from orkes_provision.locks import app_lock
from orkes_provision.orkes.models import AccessKey, Application, app_subject
from orkes_provision.progress import waiting
from orkes_provision.rotation.record import (
    RotationProgress,
    clear_progress,
    load_progress,
    save_progress,
    stop_if_requested,
    update_inactive,
    utcnow,
)
from orkes_provision.workers.requeue import executable_tasks, requeue_held_tasks
from orkes_provision.workers.status import processes_with_key, supervised_workers

if TYPE_CHECKING:
    from orkes_provision.orkes.client import OrkesClient

log = logging.getLogger(__name__)

DEFAULT_GRACE = timedelta(minutes=15)
# A supervisor re-reads its store every 2 s, lets the new worker settle 2 s, and gives the old
# one up to 5 s to stop (supervise.Timing): 9 s at worst, plus a margin.
DEFAULT_SWITCH_WAIT = 15.0
# How often the switch wait looks at the supervisors' status files.
SWITCH_POLL_SECONDS = 0.25
# Fail fast: a second rotation of the same application should not queue behind the first.
LOCK_WAIT = 1.0
# Deliveries that cannot be written again without a person: printed once, or process-local.
NOT_REDELIVERABLE = {"json": f"{WRITE_ONCE_STORES['json']}; pipe a rotation into it with --store json",
                     "memory": WRITE_ONCE_STORES["memory"]}

StoreOpener = Callable[[str], CredentialStore]
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class PendingDeletion:
    key_id: str
    inactive_since: datetime
    delete_after: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"keyId": self.key_id, "inactiveSince": self.inactive_since.isoformat(timespec="seconds"),
                "deleteAfter": self.delete_after.isoformat(timespec="seconds")}


@dataclass
class PruneReport:
    app: str
    app_id: str
    server: str
    grace: timedelta
    deleted: list[str] = field(default_factory=list)
    pending: list[PendingDeletion] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"app": self.app, "appId": self.app_id, "server": self.server,
                "graceSeconds": int(self.grace.total_seconds()), "deleted": self.deleted,
                "pendingDeletion": [p.to_dict() for p in self.pending]}


@dataclass
class RotationReport:
    """What a rotation did; ``to_dict`` is the ``--json`` document (key ids only, never a secret)."""

    app: str
    app_id: str
    server: str
    resumed_from: str | None
    old_key_ids: list[str]
    new_key_id: str
    delivered: list[dict[str, str]]
    skipped: list[dict[str, str]]
    verified: bool
    switch_wait: float
    after_rotation: list[str]
    deactivated: list[str]
    pruned: PruneReport
    other_active_keys: list[str]
    switch_waited: float = 0.0  # seconds the switch wait lasted (less than switch_wait when workers switched)
    retiring: list[dict[str, Any]] = field(default_factory=list)

    @property
    def result(self) -> str:
        return "rotated" if self.resumed_from is None else "resumed"

    def to_dict(self) -> dict[str, Any]:
        return {"result": self.result, "resumedFrom": self.resumed_from, "app": self.app, "appId": self.app_id,
                "server": self.server, "oldKeyIds": self.old_key_ids, "newKeyId": self.new_key_id,
                "delivered": self.delivered, "skipped": self.skipped, "verified": self.verified,
                "switchWaitSeconds": self.switch_wait, "switchWaitedSeconds": round(self.switch_waited, 2),
                "afterRotation": self.after_rotation,
                "deactivated": self.deactivated, "deleted": self.pruned.deleted,
                "pendingDeletion": [p.to_dict() for p in self.pruned.pending],
                "graceSeconds": int(self.pruned.grace.total_seconds()), "otherActiveKeys": self.other_active_keys,
                "retiring": self.retiring}


def rotate_key(client: OrkesClient, *, server: str, app: str, store_specs: Sequence[str] | None = None,
               grace: timedelta = DEFAULT_GRACE, switch_wait: float = DEFAULT_SWITCH_WAIT,
               actor: str | None = None, opener: StoreOpener = open_store,
               sleep: Callable[[float], None] = time.sleep, now: Clock = utcnow,
               on_step: Callable[[str], None] | None = None, lock_wait: float = LOCK_WAIT,
               start_over: bool = False, retire_undelivered: bool = False,
               hints: Hints | None = None) -> RotationReport:
    """Rotate the key of application ``app`` (name or id) on ``server``, or finish a pending rotation.

    ``store_specs`` names the target stores (default: where the key was delivered); ``opener``
    turns a spec into a store; ``sleep`` and ``now`` are for tests; ``on_step`` gets a progress
    line per step. ``start_over`` discards a pending rotation instead of finishing it: its new
    key, if any, is then one of the ACTIVE keys this rotation retires. ``retire_undelivered``
    retires old keys the rotation cannot give a successor to (see step 1); ``hints`` renders the
    commands of its error hints.
    """
    if grace < timedelta(0):
        raise UsageError("the grace period cannot be negative", "write it like 0s, 15m or 1h")
    if switch_wait < 0:
        raise UsageError("--switch-wait cannot be negative", "give the seconds to wait, or 0 to skip the wait")
    application = find_application(client, app)
    with app_lock(server, application.name, wait_seconds=lock_wait,
                  what=f"application {application.name} (a rotation, prune or provisioning run is on it)"):
        rotation = _Rotation(client, server=server, application=application, actor=actor, opener=opener,
                             sleep=sleep, now=now, on_step=on_step or (lambda line: None),
                             hints=hints or Hints(app=application.name))
        return rotation.run(store_specs=store_specs, grace=grace, switch_wait=switch_wait, start_over=start_over,
                            retire_undelivered=retire_undelivered)


def prune_keys(client: OrkesClient, *, server: str, app: str, grace: timedelta = DEFAULT_GRACE,
               actor: str | None = None, now: Clock = utcnow, lock_wait: float = LOCK_WAIT) -> PruneReport:
    """Delete ``app``'s keys that have been INACTIVE longer than ``grace``; ACTIVE keys are never touched."""
    if grace < timedelta(0):
        raise UsageError("the grace period cannot be negative", "write it like 0s, 15m or 1h")
    application = find_application(client, app)
    with app_lock(server, application.name, wait_seconds=lock_wait,
                  what=f"application {application.name} (a rotation, prune or provisioning run is on it)"):
        return _prune(client, server=server, application=application, grace=grace, actor=actor, now=now())


def _prune(client: OrkesClient, *, server: str, application: Application, grace: timedelta, actor: str | None,
           now: datetime, protect: frozenset[str] = frozenset()) -> PruneReport:
    report = PruneReport(app=application.name, app_id=application.id, server=server, grace=grace)
    keys = client.list_keys(application.id)
    inactive = {k.id for k in keys if k.status == "INACTIVE"} - protect
    known = update_inactive(server, application.id, seen={k: now for k in inactive})
    # Keys deleted elsewhere or ACTIVE again: a later deactivation must count from then.
    stale = set(known) - inactive
    if stale:
        update_inactive(server, application.id, forget=stale)
    for key_id in sorted(inactive, key=lambda k: (known[k], k)):
        since = known[key_id]
        if now - since < grace:
            report.pending.append(PendingDeletion(key_id, since, since + grace))
            continue
        with contextlib.suppress(NotFound):  # gone already (a retried delete, or someone else): fine
            client.delete_key(application.id, key_id)
        audit.record(action="delete_key", target=application.name, result="ok", server=server, actor=actor,
                     app=application.name, key_id=key_id)
        update_inactive(server, application.id, forget={key_id})
        report.deleted.append(key_id)
    return report


class _Rotation:
    """One run of the state machine for one application; ``run`` drives it from wherever it stopped."""

    def __init__(self, client: OrkesClient, *, server: str, application: Application, actor: str | None,
                 opener: StoreOpener, sleep: Callable[[float], None], now: Clock,
                 on_step: Callable[[str], None], hints: Hints) -> None:
        self.client = client
        self.server = server
        self.app = application
        self.actor = actor
        self.opener = opener
        self.sleep = sleep
        self.now = now
        self.on_step = on_step
        self.stores: dict[str, CredentialStore] = {}
        self.skipped: list[dict[str, str]] = []
        self.key: StoredKey | None = None
        self.after_rotation: list[str] = []
        self.switch_waited = 0.0
        self.hints = hints
        self.retiring: list[dict[str, Any]] = []

    # ----- driver ------------------------------------------------------------------------------

    def run(self, *, store_specs: Sequence[str] | None, grace: timedelta, switch_wait: float,
            start_over: bool = False, retire_undelivered: bool = False) -> RotationReport:
        self.retire_undelivered = retire_undelivered
        try:
            return self._run(store_specs=store_specs, grace=grace, switch_wait=switch_wait, start_over=start_over)
        except ProvisionError:
            # One line for the failed run as a whole; the steps done before it have their own.
            pending = load_progress(self.server, self.app.name)
            self._audit("rotate", "failed", pending.new_key_id if pending is not None else None)
            raise

    def _run(self, *, store_specs: Sequence[str] | None, grace: timedelta, switch_wait: float,
             start_over: bool) -> RotationReport:
        if start_over:
            self._discard()
        progress = self._resume(store_specs)
        resumed_from = progress.step if progress is not None else None
        if progress is None:
            progress = self._plan(store_specs)
        else:
            self.on_step(f"resuming the rotation of {self.app.name} after step '{progress.step}'")
            self._open_stores(progress.stores)
            progress = self._check_resumed(progress, store_specs)
        if not progress.reached("created"):
            self._create(progress)
        if not progress.reached("stored"):
            self._store(progress)
        if not progress.reached("verified"):
            self._verify(progress)
        if not progress.reached("switched"):
            self._switch(progress, switch_wait)
        if not progress.reached("deactivated"):
            self._deactivate(progress)
        assert progress.new_key_id is not None
        pruned = _prune(self.client, server=self.server, application=self.app, grace=grace, actor=self.actor,
                        now=self.now(), protect=frozenset({progress.new_key_id}))
        if pruned.deleted:
            self.on_step(f"deleted INACTIVE key(s) {', '.join(pruned.deleted)}")
        clear_progress(self.server, self.app.name)
        self._audit("rotate", "ok", progress.new_key_id)
        others = sorted(k.id for k in self.client.list_keys(self.app.id)
                        if k.status == "ACTIVE" and k.id != progress.new_key_id)
        return RotationReport(
            app=self.app.name, app_id=self.app.id, server=self.server, resumed_from=resumed_from,
            old_key_ids=list(progress.old_key_ids), new_key_id=progress.new_key_id,
            delivered=[{"store": s, "description": self.stores[s].describe(self.server, self.app.name)}
                       for s in progress.stores],
            skipped=self.skipped, verified=True, switch_wait=switch_wait, after_rotation=self.after_rotation,
            deactivated=list(progress.deactivated), pruned=pruned, other_active_keys=others,
            switch_waited=self.switch_waited, retiring=self.retiring)

    def _save(self, progress: RotationProgress, step: str) -> None:
        progress.step = step
        save_progress(progress)

    def _audit(self, action: str, result: str, key_id: str | None, target: str | None = None) -> None:
        audit.record(action=action, target=target or self.app.name, result=result, server=self.server,
                     actor=self.actor, app=self.app.name, key_id=key_id)

    # ----- plan and resume -----------------------------------------------------------------------

    def _discard(self) -> None:
        pending = load_progress(self.server, self.app.name)
        if pending is None:
            return
        retired = f"; its key {pending.new_key_id} will be retired like the old one" if pending.new_key_id else ""
        self.on_step(f"discarding the pending rotation of {self.app.name} (stopped after '{pending.step}'){retired}")
        self._audit("rotate_discard", "ok", pending.new_key_id)
        clear_progress(self.server, self.app.name)

    def _resume(self, store_specs: Sequence[str] | None) -> RotationProgress | None:
        progress = load_progress(self.server, self.app.name)
        if progress is None:
            return None
        if progress.app_id != self.app.id:
            # The application was deleted and created again under the same name: that rotation is moot.
            log.warning("discarding the pending rotation of %s: it was for application id %s",
                        self.app.name, progress.app_id)
            self._audit("rotate_discard", "ok", progress.new_key_id)
            clear_progress(self.server, self.app.name)
            return None
        if store_specs is not None:
            wanted = [self.opener(spec).spec for spec in store_specs]
            if set(wanted) != set(progress.stores):
                raise UsageError(
                    f"a rotation of {self.app.name} is pending for the stores {', '.join(progress.stores)}",
                    f"add --start-over to discard it, or finish it first: {self.hints.keys('rotate')}")
        return progress

    def _plan(self, store_specs: Sequence[str] | None) -> RotationProgress:
        specs = self._target_specs(store_specs)
        self._open_stores(specs)
        keys = self.client.list_keys(self.app.id)
        self._check_successors([k.id for k in keys if k.status == "ACTIVE"])
        progress = RotationProgress(
            server=self.server, app=self.app.name, app_id=self.app.id, step="planned",
            started_at=self.now().isoformat(timespec="seconds"), known_key_ids=[k.id for k in keys],
            old_key_ids=[k.id for k in keys if k.status == "ACTIVE"], stores=list(self.stores))
        self._save(progress, "planned")
        self._audit("rotate_start", "ok", None)
        self.on_step(f"rotating the key of {self.app.name}: old ACTIVE key(s) "
                     f"{', '.join(progress.old_key_ids) or 'none'}; stores: "
                     + "; ".join(s.describe(self.server, self.app.name) for s in self.stores.values()))
        return progress

    def _check_successors(self, old_key_ids: list[str]) -> None:
        """List, before anything changes, each key to retire and where it went; refuse to retire one
        whose holders would get no successor, unless told to."""
        blocked: list[str] = []
        self.retiring = []
        for key_id in old_key_ids:
            places = where_delivered(self.server, self.app.name, key_id)
            self.retiring.append({"keyId": key_id, "deliveredTo": [d.store for d in places]})
            missing = sorted({d.store for d in places} - set(self.stores))
            where = "; ".join(f"{d.store} ({d.time})" for d in places) or "nowhere this machine knows of"
            self.on_step(f"will retire ACTIVE key {key_id}, delivered to: {where}")
            if not places:
                blocked.append(f"{key_id} (delivered nowhere this machine knows of: another machine, by hand?)")
            elif missing:
                blocked.append(f"{key_id} (also delivered to {', '.join(missing)}, which this rotation does not write)")
        if blocked and not self.retire_undelivered:
            raise Conflict(f"rotating {self.app.name} would retire key(s) it cannot give a successor to: "
                           f"{'; '.join(blocked)}; nothing was changed",
                           "name every store that holds them with --store (repeatable), or retire them anyway "
                           f"(whoever holds them loses access): {self.hints.keys('rotate', '--retire-undelivered')}")

    def _target_specs(self, store_specs: Sequence[str] | None) -> list[str]:
        if store_specs:
            return list(dict.fromkeys(store_specs))
        specs: list[str] = []
        for delivery in deliveries(self.server, self.app.name):
            reason = NOT_REDELIVERABLE.get(delivery.store)
            if reason is not None:
                self.skipped.append({"store": delivery.store, "reason": reason})
            elif delivery.store not in specs:
                specs.append(delivery.store)
        if not specs:
            raise UsageError(f"this tool has no record of where the key of {self.app.name} was delivered",
                             "name the stores to write the new key to with --store SPEC (repeatable), "
                             "e.g. --store env-file:./worker.env")
        return specs

    def _open_stores(self, specs: Sequence[str]) -> None:
        opened: dict[str, CredentialStore] = {}
        for spec in specs:
            store = self.opener(spec)
            opened[store.spec] = store
        # Stores that can be read back first: a rerun recovers the secret from them; json last.
        self.stores = dict(sorted(opened.items(), key=lambda item: item[0] == "json"))

    def _check_resumed(self, progress: RotationProgress, store_specs: Sequence[str] | None) -> RotationProgress:
        """Make a resumed rotation consistent with the server; start over when its new key is unusable."""
        if progress.step == "creating":
            self._delete_orphans(progress)
            self._save(progress, "planned")
            return progress
        if not progress.reached("created"):
            return progress
        assert progress.new_key_id is not None
        current = {k.id: k for k in self.client.list_keys(self.app.id)}
        if progress.new_key_id not in current:
            self.on_step(f"the new key {progress.new_key_id} no longer exists on the server; starting over")
            return self._restart(progress, store_specs)
        if progress.reached("switched"):
            return progress  # the secret is no longer needed
        self.key = self._recover_secret(progress)
        if self.key is None:
            self.on_step(f"no store holds the secret of the new key {progress.new_key_id} any more; "
                         "deleting that key and starting over")
            self._delete_key(progress.new_key_id, "delete_lost_key")
            return self._restart(progress, store_specs)
        return progress

    def _restart(self, progress: RotationProgress, store_specs: Sequence[str] | None) -> RotationProgress:
        clear_progress(self.server, self.app.name)
        return self._plan(store_specs if store_specs else progress.stores)

    def _recover_secret(self, progress: RotationProgress) -> StoredKey | None:
        # Every store of the rotation, not only those recorded as done: a run killed between writing
        # a store and recording it left the new key there, and deleting it would strand that store.
        for spec in progress.stores:
            store = self.stores.get(spec)
            if store is None:
                continue
            try:
                found = store.load(self.server, self.app.name)
            except ProvisionError as err:
                log.warning("cannot read %s: %s", store.describe(self.server, self.app.name), err.message)
                continue
            if found is not None and found.key_id == progress.new_key_id:
                return found
        return None

    # ----- create and store ----------------------------------------------------------------------

    def _create(self, progress: RotationProgress) -> None:
        progress.known_key_ids = [k.id for k in self.client.list_keys(self.app.id)]
        self._save(progress, "creating")
        try:
            created = self.client.create_key(self.app.id)
        except ServerUnavailable as err:
            # The request may have reached the server: remove any key it made (its secret is lost).
            self._delete_orphans(progress)
            self._save(progress, "planned")
            self._audit("create_key", "failed", None)
            raise ServerUnavailable(f"creating the new key of {self.app.name} failed: {err.message}",
                                    "rerun the rotation; no key was left behind and the old key is unchanged") from err
        except Conflict as err:
            # Refused (a cap on keys, kept INACTIVE through grace periods): nothing was made; the rerun starts here.
            self._save(progress, "planned")
            self._audit("create_key", "refused", None)
            raise key_refused(self.client, server=self.server, app_name=self.app.name, app_id=self.app.id,
                              err=err) from err
        self._audit("create_key", "ok", created.id)
        progress.new_key_id = created.id
        self._save(progress, "created")
        self.key = StoredKey(server=self.server, app=self.app.name, key_id=created.id, secret=created.secret)
        self.on_step(f"created key {created.id}")

    def _delete_orphans(self, progress: RotationProgress) -> None:
        """Delete keys that appeared after the plan and that no target store holds."""
        known = set(progress.known_key_ids)
        held: set[str] = set()
        for store in self.stores.values():
            try:
                found = store.load(self.server, self.app.name)
            except ProvisionError:
                continue
            if found is not None:
                held.add(found.key_id)
        for key in self.client.list_keys(self.app.id):
            if key.id not in known and key.id not in held:
                self._delete_key(key.id, "delete_orphan_key")
                self.on_step(f"deleted key {key.id}: created by an interrupted run, its secret was never stored")

    def _delete_key(self, key_id: str, action: str) -> None:
        with contextlib.suppress(NotFound):
            self.client.delete_key(self.app.id, key_id)
        self._audit(action, "ok", key_id)

    def _store(self, progress: RotationProgress) -> None:
        key = self.key
        assert key is not None
        assert progress.new_key_id == key.key_id
        for spec, store in self.stores.items():
            if spec in progress.stores_done:
                continue
            where = store.describe(self.server, self.app.name)
            try:
                store.save(key)
            except Exception as err:
                self._audit("store_key", "failed", key.key_id, target=spec)
                detail = err.message if isinstance(err, ProvisionError) else type(err).__name__
                done = ", ".join(progress.stores_done) or "no store yet"
                raise StoreError(
                    f"writing the new key {key.key_id} to {where} failed: {detail} (written so far: {done})",
                    "fix it, then finish the rotation (the old key stays ACTIVE until then): "
                    + self.hints.keys("rotate")) from None
            stop_if_requested("store-write")
            record_delivery(self.server, self.app.name, self.app.id, spec, key.key_id)
            progress.stores_done.append(spec)
            self._save(progress, "store")
            self._audit("store_key", "ok", key.key_id, target=spec)
            self.on_step(f"stored key {key.key_id} in {where}")
        self._save(progress, "stored")

    # ----- verify, switch, deactivate ------------------------------------------------------------

    def _verify(self, progress: RotationProgress) -> None:
        key = self.key
        assert key is not None
        granted = self.client.get_user_permissions(app_subject(self.app.id).id)
        tasks = sorted({g.target.id for g in granted
                        if g.target.type == "TASK_DEF" and "EXECUTE" in {a.upper() for a in g.access}})
        report = diagnose(self.client, app=self.app.name, tasks=tasks, key=key, server=self.server)
        is_worker = bool(tasks) or any(f.check == "role" and f.ok for f in report.findings)
        if not is_worker:
            # Not a worker application: the key itself is all there is to verify.
            report.findings = [f for f in report.findings if f.check != "role"]
        if not report.ok:
            first = report.problems[0]
            self._audit("verify_key", "failed", key.key_id)
            raise VerificationFailed(
                f"the new key {key.key_id} of {self.app.name} failed verification: {first.problem}",
                (f"fix it ({first.fix}), then" if first.fix else "fix it, then")
                + " finish the rotation (the old key stays ACTIVE until then): " + self.hints.keys("rotate"))
        self._save(progress, "verified")
        self._audit("verify_key", "ok", key.key_id)
        self.on_step(f"verified key {key.key_id}: it authenticates"
                     + (f", with WORKER and EXECUTE on {', '.join(tasks)}" if tasks else ""))

    def _switch(self, progress: RotationProgress, switch_wait: float) -> None:
        key = self.key
        assert key is not None
        replaced: list[str] = []
        for spec, store in self.stores.items():
            hook = getattr(store, "after_rotation", None)
            if callable(hook):
                hook(key)
                self.after_rotation.append(spec)
                replaced.extend(getattr(store, "replaced_workers", None) or [])
                followers = getattr(store, "followers", None)
                if followers:
                    self.on_step(f"the credential agents of Deployment(s) {', '.join(followers)} read the new key "
                                 f"from the mounted {store.describe()} (waited for kubelet to refresh it)")
        if replaced:
            self._requeue(replaced)
        if switch_wait > 0:
            self.switch_waited = self._wait_for_switch(progress, key.key_id, switch_wait)
        self._check_supervisors(progress)
        self._save(progress, "switched")

    def _requeue(self, worker_ids: list[str]) -> None:
        """Hand the tasks the replaced workers held to the queue; a failure is reported, never fatal."""
        try:
            report = requeue_held_tasks(self.client, worker_ids, executable_tasks(self.client, self.app.id))
        except ProvisionError as err:
            self.on_step(f"could not hand the tasks of the replaced workers back to the queue ({err.message}); "
                         "they wait for their response timeout")
            return
        if report.requeued:
            self.on_step(f"handed {len(report.requeued)} task(s) held by replaced workers back to the queue")

    def _wait_for_switch(self, progress: RotationProgress, new_key_id: str, switch_wait: float) -> float:
        """Wait up to ``switch_wait`` seconds; stop early once every local supervisor runs only the new key.

        With no supervisor of the application on this machine the whole wait is spent: workers
        supervised elsewhere cannot be seen from here. Says on the progress channel what it waits
        for, with a countdown. Returns the seconds it waited.
        """
        self.on_step(f"waiting up to {switch_wait:g}s for supervised workers to switch to key {new_key_id}")
        started, slept, told = time.monotonic(), 0.0, ""
        while True:
            supervisors = self._local_users()
            switched = sum(1 for _, keys, _ in supervisors if keys == {new_key_id})
            if any(refused == new_key_id for _, _, refused in supervisors):
                return time.monotonic() - started  # an agent refused the new key: waiting cannot help
            # Both clocks bound the loop: the real one, and the sleeps asked for (tests pass a sleep that returns).
            elapsed = max(slept, time.monotonic() - started)
            if supervisors and switched == len(supervisors):
                self.on_step(f"every supervised worker of {self.app.name} runs key {new_key_id} "
                             f"(after {time.monotonic() - started:.1f}s)")
                return time.monotonic() - started
            remaining = switch_wait - elapsed
            if remaining <= 0:
                return time.monotonic() - started
            if supervisors:
                message = (f"waiting for the supervised workers of {self.app.name} to switch to key {new_key_id}: "
                           f"{switched} of {len(supervisors)} switched")
            else:
                message = (f"waiting for workers of {self.app.name} to switch to key {new_key_id} "
                           "(none is supervised on this machine; --switch-wait 0 skips the wait)")
            if f"{message}|{math.ceil(remaining)}" != told:  # once a second, and when the count changes
                told = f"{message}|{math.ceil(remaining)}"
                waiting(message, topic="switch-wait", remaining=math.ceil(remaining))
            step = min(SWITCH_POLL_SECONDS, remaining)
            self.sleep(step)
            slept += step

    def _local_users(self) -> list[tuple[str, set[str], str | None]]:
        """(who, key ids in use, key id refused) of each local supervisor and credential agent of the application."""
        users: list[tuple[str, set[str], str | None]] = [
            (f"a supervised worker of {self.app.name} (supervisor pid {s.supervisor_pid})", s.keys_in_use, None)
            for s in supervised_workers(self.server, self.app.name)]
        users += [(f"the credential agent of {self.app.name} (pid {a.pid}, {a.url})", a.keys_in_use, a.refused_key_id)
                  for a in serving_agents(self.server, self.app.name)]
        return users

    def _check_supervisors(self, progress: RotationProgress) -> None:
        """Refuse to go on while a local supervised worker or agent still runs an old key (its switch failed)."""
        old = set(progress.old_key_ids)
        lagging = [(who, sorted(keys & old), refused) for who, keys, refused in self._local_users() if keys & old]
        if not lagging:
            return
        who, keys, refused = lagging[0]
        self._audit("switch", "failed", progress.new_key_id)
        if refused is not None and refused == progress.new_key_id:
            raise VerificationFailed(
                f"{who} refused the new key {refused} (the server rejects it) and still runs the old key "
                f"{', '.join(keys)}; the old key stays ACTIVE",
                "see the agent's output, then finish: " + self.hints.keys("rotate"))
        raise VerificationFailed(
            f"{who} still runs the old key {', '.join(keys)}; the old key stays ACTIVE",
            "see that supervisor's output (does the new worker start?), then finish: " + self.hints.keys("rotate"))

    def _check_local_processes(self, progress: RotationProgress) -> None:
        """Refuse to cut off a process on this machine that still has an old key in its environment (a
        worker started by hand, or one whose supervisor was killed): exit 11, the old key stays ACTIVE."""
        holders = processes_with_key([k for k in progress.old_key_ids if k != progress.new_key_id])
        if not holders:
            return
        first = holders[0]
        more = f" (and {len(holders) - 1} more)" if len(holders) > 1 else ""
        self._audit("switch", "failed", progress.new_key_id)
        raise VerificationFailed(
            f"process {first.pid} ({first.command}){more} still has the old key {first.key_id} of {self.app.name} "
            "in its environment; the old key stays ACTIVE",
            f"stop it (kill {first.pid}) or restart it on the new key (run workers with 'provision run --supervise' "
            "to switch them), then finish: " + self.hints.keys("rotate"))

    def _deactivate(self, progress: RotationProgress) -> None:
        assert progress.new_key_id is not None
        self._check_local_processes(progress)
        current = {k.id: k for k in self.client.list_keys(self.app.id)}
        new = current.get(progress.new_key_id)
        if new is None or new.status != "ACTIVE":
            raise Conflict(f"the new key {progress.new_key_id} of {self.app.name} is "
                           f"{'gone' if new is None else new.status}; no old key was deactivated",
                           "start a new rotation: " + self.hints.keys("rotate"))
        for key_id in progress.old_key_ids:
            if key_id == progress.new_key_id:
                continue
            key = current.get(key_id)
            if key is not None and key.status == "ACTIVE":
                self._toggle_off(key)
                self._audit("deactivate_key", "ok", key_id)
                self.on_step(f"deactivated key {key_id}")
            if key is not None:
                update_inactive(self.server, self.app.id, deactivated={key_id: self.now()})
            if key_id not in progress.deactivated:
                progress.deactivated.append(key_id)
            self._save(progress, "switched")
        self._save(progress, "deactivated")

    def _toggle_off(self, key: AccessKey) -> None:
        set_key_status(self.client, app_id=self.app.id, app_name=self.app.name, key_id=key.id, wanted="INACTIVE",
                       known=key.status)
