"""``provision app`` as a library call: one application, made ready for a worker, idempotently.

Steps: read the state; plan the missing pieces (application, roles, task definitions, key, grants);
carry them out; verify as the application. Nothing is written before the plan is known to be
possible (ambiguous name, missing task definitions stop it), and a second run writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orkes_provision.access.doctor import DoctorReport, diagnose
from orkes_provision.access.execute import ApplyResult, Executor, Outcome, PartialFailure
from orkes_provision.access.keys import key_authenticates
from orkes_provision.access.plan import KeyStatus, Plan, key_status, plan_apps
from orkes_provision.access.spec import AppSpec
from orkes_provision.access.state import ServerState, read_state
from orkes_provision.credentials.stores import CredentialStore, StoredKey
from orkes_provision.errors import VerificationFailed
from orkes_provision.locks import file_lock
from orkes_provision.orkes.models import MANAGED_TAG

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

    @property
    def changed(self) -> bool:
        return not self.plan.empty

    def to_dict(self) -> dict[str, Any]:
        return {
            "app": self.name, "appId": self.app_id, "server": self.server, "changed": self.changed,
            "dryRun": self.dry_run, "roles": self.roles, "keyId": self.key_id, "store": self.store_spec,
            "grants": self.grants, "changes": [c.to_dict() for c in self.plan.changes],
            "verified": self.verification.ok if self.verification else None,
            "otherActiveKeys": self.other_active_keys,
        }


def stored_key_status(client: OrkesClient, state: ServerState, spec: AppSpec,
                      stored: StoredKey | None) -> KeyStatus:
    """Is the stored key an ACTIVE key of this application that the server still accepts?"""
    return key_status(state, spec, stored, lambda: stored is not None and key_authenticates(client, stored))


def provision_app(client: OrkesClient, *, server: str, spec: AppSpec, store: CredentialStore,
                  register_tasks: bool = False, dry_run: bool = False, actor: str | None = None,
                  on_outcome: Callable[[Outcome, int, int], None] | None = None) -> AppResult:
    spec = spec.model_copy(update={"store": store.spec})
    with file_lock(f"app|{server}|{spec.name}", what=f"application {spec.name}"):
        state = read_state(client, [spec.name], app_ids={spec.name: spec.app_id})
        stored = store.load(server, spec.name)
        key_status = stored_key_status(client, state, spec, stored)
        plan = plan_apps(state, [spec], server=server, key_status={spec.name: key_status},
                         store_names={spec.name: store.describe()},
                         tasks_to_register=spec.task_names if register_tasks else (),
                         managed_tag=(MANAGED_TAG.key, MANAGED_TAG.value))
        result = AppResult(name=spec.name, server=server, store=store.describe(), store_spec=store.spec, plan=plan,
                           dry_run=dry_run,
                           app_id=plan.apps[0].app_id, key_id=plan.apps[0].reused_key_id)
        if dry_run:
            return result
        if not plan.empty:
            executor = Executor(client=client, server=server, stores={spec.name: store}, actor=actor,
                                parallelism=8, managed_tags=(MANAGED_TAG,), on_outcome=on_outcome)
            applied = executor.run(plan)
            result.applied = applied
            if len(applied.failed) == 1 and not applied.skipped and applied.failed[0].error is not None:
                raise applied.failed[0].error
            if applied.failed:
                raise PartialFailure(applied)
            result.app_id = applied.app_ids.get(spec.name, result.app_id)
            new_key = applied.new_keys.get(spec.name)
            if new_key is not None:
                stored, result.key_id = new_key, new_key.key_id
        assert result.app_id is not None
        result.verification = verify_app(client, server=server, spec=spec, key=stored)
        result.roles = sorted(client.get_app_user(result.app_id).role_names)
        result.grants = [g.describe() for g in spec.grants]
        result.other_active_keys = sorted(k.id for k in client.list_keys(result.app_id)
                                          if k.status == "ACTIVE" and k.id != result.key_id)
        if not result.verification.ok:
            first = result.verification.problems[0]
            raise VerificationFailed(f"verification as {spec.name} failed: {first.problem}", first.fix)
        return result


def verify_app(client: OrkesClient, *, server: str, spec: AppSpec, key: StoredKey | None) -> DoctorReport:
    """Check as the application: its key authenticates, and it holds the roles and grants it should."""
    report = diagnose(client, app=spec.name, tasks=spec.task_names if "WORKER" in spec.roles else [],
                      key=key, server=server)
    if "WORKER" not in spec.roles:
        report.findings = [f for f in report.findings if f.check != "role"]
    return report
