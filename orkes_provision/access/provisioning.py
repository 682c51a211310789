"""``provision app`` as a library call: one application, made ready for a worker, idempotently.

Steps: read the state; plan the missing pieces (application, roles, task definitions, key, grants);
carry them out; verify as the application. Nothing is written before the plan is known to be
possible (ambiguous name, missing task definitions stop it), and a second run writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orkes_provision.access.doctor import WORKER_ROLES, DoctorReport, diagnose
from orkes_provision.access.execute import ApplyResult, Executor, Outcome, PartialFailure
from orkes_provision.access.keys import DisplacedKey, LostKey, check_stores_free, key_authenticates, retire_lost_keys
from orkes_provision.access.plan import KeyStatus, Plan, key_status, plan_apps
from orkes_provision.access.spec import AppSpec
from orkes_provision.access.state import ServerState, grants_by_target, read_state
from orkes_provision.access.tasknames import check_tasks_exist
from orkes_provision.credentials.delivery import deliveries, find_stored_key, forget_deliveries, record_delivery
from orkes_provision.credentials.stores import CredentialStore, StoredKey
from orkes_provision.errors import VerificationFailed
from orkes_provision.locks import app_lock
from orkes_provision.orkes.models import MANAGED_TAG, app_subject
from orkes_provision.orkes.urls import normalize_server_url

if TYPE_CHECKING:
    from orkes_provision.orkes.client import OrkesClient


@dataclass
class AppResult:
    name: str
    server: str
    store: str
    store_spec: str
    plan: Plan
    dry_run: bool
    app_id: str | None = None
    key_id: str | None = None
    roles: list[str] = field(default_factory=list)
    grants: list[str] = field(default_factory=list)
    applied: ApplyResult | None = None
    verification: DoctorReport | None = None
    other_active_keys: list[str] = field(default_factory=list)
    # Keys a killed earlier run created and never stored, deleted before planning.
    lost_keys_retired: list[LostKey] = field(default_factory=list)
    displaced: list[DisplacedKey] = field(default_factory=list)
    # The server URL the reused key was stored under, when it is another spelling of ``server``.
    key_server_alias: str | None = None

    @property
    def changed(self) -> bool:
        return not self.plan.empty

    @property
    def is_worker(self) -> bool:
        return bool(set(self.roles) & WORKER_ROLES)

    def to_dict(self) -> dict[str, Any]:
        return {
            "app": self.name, "appId": self.app_id, "server": self.server, "changed": self.changed,
            "dryRun": self.dry_run, "roles": self.roles, "keyId": self.key_id, "store": self.store_spec,
            "grants": self.grants, "changes": [c.to_dict() for c in self.plan.changes],
            "verified": self.verification.ok if self.verification else None,
            "otherActiveKeys": self.other_active_keys, "lostKeysRetired": [k.to_dict() for k in self.lost_keys_retired],
            "displacedKeys": [{"store": d.store, "app": d.key.app, "keyId": d.key.key_id, "retired": d.retired}
                              for d in self.displaced],
        }


def stored_key_status(client: OrkesClient, state: ServerState, spec: AppSpec,
                      stored: StoredKey | None) -> KeyStatus:
    """Is the stored key an ACTIVE key of this application that the server still accepts?"""
    return key_status(state, spec, stored, lambda: stored is not None and key_authenticates(client, stored))


# complexity: the one ordered sequence of an application's provisioning (resolve, plan, create, key,
# deliver, verify, report), each step with its dry-run and already-there branch; split, the steps
# would pass the half-built result between them.
def provision_app(client: OrkesClient, *, server: str, spec: AppSpec, store: CredentialStore | None,
                  store_spec: str | None = None, register_tasks: bool = False, dry_run: bool = False,
                  actor: str | None = None, force: bool = False,
                  on_outcome: Callable[[Outcome, int, int], None] | None = None) -> AppResult:
    """Make application ``spec`` ready, with its key in ``store``.

    ``store`` may be ``None`` only for a dry run where the store cannot be opened here (no keyring):
    the plan then reads no secret and trusts the delivery recorded for ``store_spec``.
    """
    if store is None and not dry_run:
        raise ValueError("a store is needed unless dry_run")
    store_spec = store.spec if store is not None else store_spec
    assert store_spec is not None
    spec = spec.model_copy(update={"store": store_spec})
    with app_lock(server, spec.name):
        retired = [] if dry_run else retire_lost_keys(client, server=server, app_name=spec.name, actor=actor)
        state = read_state(client, [spec.name], app_ids={spec.name: spec.app_id})
        existing = state.resolve(spec.name, spec.app_id)
        if store is not None:
            stored = find_stored_key(store, server, spec.name)
            check_stores_free(client, server=server, app_name=spec.name, app_id=existing.id if existing else None,
                              stores=[store], force=force)
            status = stored_key_status(client, state, spec, stored)
            store_name = store.describe(server, spec.name)
        else:
            stored = None
            status = recorded_key_status(state, spec, server, store_spec)
            store_name = store_spec
        if not register_tasks:  # before the plan's own check: that one knows no near misses
            check_tasks_exist(spec.task_names, state.task_names)
        plan = plan_apps(state, [spec], server=server, key_status={spec.name: status},
                         store_names={spec.name: store_name},
                         tasks_to_register=spec.task_names if register_tasks else (),
                         managed_tag=(MANAGED_TAG.key, MANAGED_TAG.value))
        result = AppResult(name=spec.name, server=server, store=store_name, store_spec=store_spec, plan=plan,
                           dry_run=dry_run, app_id=plan.apps[0].app_id, key_id=plan.apps[0].reused_key_id,
                           lost_keys_retired=retired)
        if stored is not None and result.key_id == stored.key_id and stored.server != normalize_server_url(
                server, insecure_http=True):
            result.key_server_alias = stored.server
        if dry_run:
            return result
        assert store is not None
        if not plan.empty:
            new_key = _carry_out(client, plan, result, server=server, store=store, actor=actor, force=force,
                                 on_outcome=on_outcome)
            if new_key is not None:
                stored, result.key_id = new_key, new_key.key_id
        _check_as_the_app(client, result, server=server, spec=spec, key=stored)
        if result.key_server_alias is not None and stored is not None and stored.key_id == result.key_id:
            assert result.app_id is not None
            _move_key_server(store, stored, server, spec.name, result.app_id)
        return result


def _move_key_server(store: CredentialStore, stored: StoredKey, server: str, app: str, app_id: str) -> None:
    """The stored key works on ``server`` (an ACTIVE key of ``app`` there, verified just now) but the
    store records another URL for it: the server moved (a sandbox restarted on another port) or is
    spelled differently. The store then names ``server``, so that 'run' reaches it."""
    old = stored.server
    store.save(StoredKey(server=normalize_server_url(server, insecure_http=True), app=app, key_id=stored.key_id,
                         secret=stored.secret))
    record_delivery(server, app, app_id, store.spec, stored.key_id)
    forget_deliveries(old, app, store.spec)


def _carry_out(client: OrkesClient, plan: Plan, result: AppResult, *, server: str, store: CredentialStore,
               actor: str | None, force: bool,
               on_outcome: Callable[[Outcome, int, int], None] | None) -> StoredKey | None:
    """Run the plan of one application; raise its one error (or a partial failure); the new key, if one was made."""
    executor = Executor(client=client, server=server, stores={result.name: store}, actor=actor,
                        parallelism=8, managed_tags=(MANAGED_TAG,), on_outcome=on_outcome, force=force)
    applied = executor.run(plan)
    result.applied = applied
    if len(applied.failed) == 1 and not applied.skipped and applied.failed[0].error is not None:
        raise applied.failed[0].error
    if applied.failed:
        raise PartialFailure(applied)
    result.app_id = applied.app_ids.get(result.name, result.app_id)
    result.displaced = list(applied.displaced)
    return applied.new_keys.get(result.name)


def _check_as_the_app(client: OrkesClient, result: AppResult, *, server: str, spec: AppSpec,
                      key: StoredKey | None) -> None:
    """Verify as the application, and read back its roles, grants and other ACTIVE keys for the report."""
    assert result.app_id is not None
    result.verification = verify_app(client, server=server, spec=spec, key=key)
    result.roles = sorted(client.get_app_user(result.app_id).role_names)
    held = grants_by_target(client.get_user_permissions(app_subject(result.app_id).id))
    result.grants = [f"{'+'.join(sorted(access))} on {kind} {ident}" for (kind, ident), access in sorted(held.items())]
    result.other_active_keys = sorted(k.id for k in client.list_keys(result.app_id)
                                      if k.status == "ACTIVE" and k.id != result.key_id)
    if not result.verification.ok:
        first = result.verification.problems[0]
        raise VerificationFailed(f"verification as {spec.name} failed: {first.problem}", first.fix)


def recorded_key_status(state: ServerState, spec: AppSpec, server: str, store_spec: str) -> KeyStatus:
    """The key status from the delivery recorded on this machine, without reading the store (a dry run
    where the store cannot be opened): the key is taken to work if the server lists it ACTIVE."""
    recorded = [d for d in deliveries(server, spec.name) if d.store == store_spec]
    if not recorded:
        return KeyStatus(None, False, "no key delivered to that store from this machine")
    existing = state.resolve(spec.name, spec.app_id)
    app_state = state.apps.get(existing.id) if existing else None
    key_id = recorded[0].key_id
    if app_state is None or key_id not in app_state.active_key_ids:
        return KeyStatus(key_id, False, f"delivered key {key_id} is not an ACTIVE key of {spec.name}")
    return KeyStatus(key_id, True, "as delivered (the dry run read no secret)")


def verify_app(client: OrkesClient, *, server: str, spec: AppSpec, key: StoredKey | None) -> DoctorReport:
    """Check as the application: its key authenticates, and it holds the roles and grants it should."""
    report = diagnose(client, app=spec.name, tasks=spec.task_names if "WORKER" in spec.roles else [],
                      key=key, server=server)
    if "WORKER" not in spec.roles:
        report.findings = [f for f in report.findings if f.check != "role"]
    return report
