"""Carrying out a plan: a dependency graph run with bounded, adaptive concurrency.

The plan's stages give the order (task definitions in one batch, then applications, then their
roles, keys and grants, then removals), but each change starts as soon as what it depends on is
done. A failed change does not stop independent ones; changes that depend on a failed one are
skipped. The result says what was done and what was not, so a rerun converges.

A user's or a group's own changes (created, renamed, roles) are one upsert of the whole record,
and the members a group gains (or loses) are one request: such changes run as one job, and
succeed or fail together.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orkes_provision import audit
from orkes_provision.access.changes import (
    AddMember,
    AddRole,
    AppChange,
    Change,
    CreateApp,
    CreateKey,
    CreateRole,
    DeleteApp,
    Grant,
    GroupGrant,
    GroupRecordChange,
    GroupRevoke,
    RegisterWorkflow,
    RemoveMember,
    RemoveRole,
    Revoke,
    RotateKey,
    TagApp,
    UpdateRole,
    UpdateWorkflow,
    UserChange,
)
from orkes_provision.access.jobs import Job, job_graph
from orkes_provision.access.keys import DisplacedKey, create_and_store_key
from orkes_provision.access.plan import Plan
from orkes_provision.credentials.stores import CredentialStore, StoredKey
from orkes_provision.errors import ProvisionError, UsageError
from orkes_provision.orkes.models import Tag, Target, TaskDef, app_subject, group_subject
from orkes_provision.orkes.ratelimit import AdaptiveLimiter, JobOutcome, run_graph

if TYPE_CHECKING:
    from orkes_provision.orkes.client import OrkesClient


@dataclass
class Outcome:
    change: Change
    status: str  # "done", "failed" or "skipped"
    error: ProvisionError | None = None
    key_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = self.change.to_dict() | {"status": self.status}
        if self.error is not None:
            data["error"] = self.error.message
        if self.key_id is not None:
            data["keyId"] = self.key_id
        return data


@dataclass
class ApplyResult:
    outcomes: list[Outcome] = field(default_factory=list)
    app_ids: dict[str, str] = field(default_factory=dict)
    new_keys: dict[str, StoredKey] = field(default_factory=dict)
    displaced: list[DisplacedKey] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def skipped(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "skipped"]

    @property
    def done(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "done"]


class PartialFailure(ProvisionError):
    """Some changes failed; the others were made. Carries the result for the report."""

    def __init__(self, result: ApplyResult) -> None:
        first = result.failed[0].error
        assert first is not None
        super().__init__(
            f"{len(result.failed)} of {len(result.outcomes)} changes failed "
            f"({len(result.done)} done, {len(result.skipped)} skipped); first: {first.message}",
            f"{first.hint}; then rerun the same command: it continues where this one stopped")
        self.result = result
        self.exit_code = first.exit_code  # type: ignore[misc]


@dataclass
class Executor:
    client: OrkesClient
    server: str
    stores: Mapping[str, CredentialStore]
    actor: str | None = None
    parallelism: int = 16
    task_defs: Mapping[str, TaskDef] = field(default_factory=dict)
    managed_tags: tuple[Tag, ...] = ()
    on_outcome: Callable[[Outcome, int, int], None] | None = None
    # Workflow definitions to register, keyed by name and version.
    workflow_defs: Mapping[tuple[str, int], Mapping[str, Any]] = field(default_factory=dict)
    # Adapts concurrency to 429s; a fresh one of ``parallelism`` when not given.
    limiter: AdaptiveLimiter | None = None
    # Replace a key of another application that a store holds (``--force``), retiring it.
    force: bool = False
    # Carries out a ``rotate_key`` change (``keyMaxAge``) and returns the new key id: rotation lives
    # in ``orkes_provision.rotation``, which this package does not import.
    rotate: Callable[[RotateKey], str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Applications declared ``owned = false``: created without the ownership tags.
    _unowned: frozenset[str] = field(default=frozenset())

    def run(self, plan: Plan) -> ApplyResult:
        """Run the plan as a dependency graph.

        The same order constraints hold (task definitions in one batch before the workflows and
        grants that use them; an application before its tag, roles, key and grants; removals of an
        application after its additions; deletions last), but nothing waits for unrelated work, so
        the first grants start while later applications are still being created.
        """
        result = ApplyResult()
        self._unowned = frozenset(p.spec.name for p in plan.apps if not p.spec.owned)
        for app_plan in plan.apps:
            if app_plan.app_id:
                result.app_ids[app_plan.spec.name] = app_plan.app_id
        known_keys = {p.spec.name: p.known_key_ids for p in plan.apps}
        total = len(plan.changes)
        jobs = job_graph(plan.changes)
        limiter = self.limiter or AdaptiveLimiter(max(1, self.parallelism))

        def run_job(job: Job) -> list[Outcome]:
            if job.batch:
                return self._register_tasks(job.changes)
            if job.bundled:
                return self._run_bundle(job.changes, plan)
            return [self._run_one(job.changes[0], result, known_keys)]

        def done(job: Job, outcome: JobOutcome[list[Outcome]]) -> None:
            if outcome.skipped:
                self._finish(result, [Outcome(c, "skipped") for c in job.changes], total)
            elif outcome.result is not None:
                self._finish(result, outcome.result, total)
            else:  # the job raised something that is not a ProvisionError: report it, do not lose it
                logging.getLogger(__name__).debug("change failed unexpectedly", exc_info=outcome.error)
                error = ProvisionError(f"internal error: {type(outcome.error).__name__}")
                self._finish(result, [Outcome(c, "failed", error) for c in job.changes], total)

        run_graph(jobs, run_job, limiter, depends_on={job: job.needs for job in jobs},
                  failed=lambda outs: any(o.status == "failed" for o in outs), on_done=done)
        return result

    def _finish(self, result: ApplyResult, outcomes: list[Outcome], total: int) -> None:
        with self._lock:
            for outcome in outcomes:
                result.outcomes.append(outcome)
                if self.on_outcome is not None:
                    self.on_outcome(outcome, len(result.outcomes), total)

    def _audit(self, change: Change, status: str, key_id: str | None = None) -> None:
        audit.record(action=change.kind, target=change.audit_target, result=status, server=self.server,
                     actor=self.actor, app=change.app if isinstance(change, AppChange) else None, key_id=key_id)

    def _run_bundle(self, members: list[Change], plan: Plan) -> list[Outcome]:
        """One request for all of ``members``: a role's, a user's or a group's upsert, or a group's members."""
        try:
            match members[0]:
                case CreateRole(role=name):
                    self.client.create_role(name, list(plan.role_upserts[name]))
                case UpdateRole(role=name):
                    self.client.update_role(name, list(plan.role_upserts[name]))
                case UserChange(user=user_id):
                    user = plan.user_upserts[user_id]
                    self.client.upsert_user(user_id, user.name, list(user.roles), list(user.groups))
                case AddMember(group=group_id):
                    self.client.add_users_to_group(group_id, [c.target for c in members])
                case RemoveMember(group=group_id):
                    self.client.remove_users_from_group(group_id, [c.target for c in members])
                case GroupRecordChange(group=group_id):
                    group = plan.group_upserts[group_id]
                    self.client.upsert_group(group_id, group.description, list(group.roles), group.default_access)
        except ProvisionError as err:
            for change in members:
                self._audit(change, "failed")
            return [Outcome(c, "failed", err) for c in members]
        for change in members:
            self._audit(change, "ok")
        return [Outcome(c, "done") for c in members]

    def _register_tasks(self, batch: list[Change]) -> list[Outcome]:
        defs = [self.task_defs.get(c.target) or TaskDef(name=c.target) for c in batch]
        try:
            self.client.register_task_defs(defs)
        except ProvisionError as err:
            for change in batch:
                self._audit(change, "failed")
            return [Outcome(c, "failed", err) for c in batch]
        for change in batch:
            self._audit(change, "ok")
        return [Outcome(c, "done") for c in batch]

    def _run_one(self, change: Change, result: ApplyResult, known_keys: Mapping[str, set[str]]) -> Outcome:
        try:
            key_id = self._apply(change, result, known_keys)
        except ProvisionError as err:
            self._audit(change, "failed")
            return Outcome(change, "failed", err)
        if not isinstance(change, CreateKey | RotateKey):  # those audit their own steps
            self._audit(change, "ok", key_id)
        return Outcome(change, "done", key_id=key_id)

    def _apply(self, change: Change, result: ApplyResult, known_keys: Mapping[str, set[str]]) -> str | None:
        client = self.client
        match change:
            case RegisterWorkflow() | UpdateWorkflow():
                client.register_workflow_def(self.workflow_defs[(change.name, change.version)], overwrite=True)
            case GroupGrant() | GroupRevoke():
                call = client.grant if isinstance(change, GroupGrant) else client.revoke
                call(group_subject(change.group), Target(type=change.on.type, id=change.on.id), list(change.access))
            case CreateApp():
                app = client.create_application(change.app)
                with self._lock:
                    result.app_ids[change.app] = app.id
                if self.managed_tags and change.app not in self._unowned:
                    client.put_application_tags(app.id, list(self.managed_tags))
            case AppChange():
                return self._apply_to_app(change, change.app_id or result.app_ids[change.app], result, known_keys)
        return None

    def _apply_to_app(self, change: AppChange, app_id: str, result: ApplyResult,
                      known_keys: Mapping[str, set[str]]) -> str | None:
        client = self.client
        match change:
            case TagApp():
                client.put_application_tags(app_id, list(self.managed_tags))
            case AddRole(role=role):
                client.add_role(app_id, role)
            case RemoveRole(role=role):
                client.remove_role(app_id, role)
            case Grant() | Revoke():
                call = client.grant if isinstance(change, Grant) else client.revoke
                call(app_subject(app_id), Target(type=change.on.type, id=change.on.id), list(change.access))
            case CreateKey():
                displaced: list[DisplacedKey] = []
                key = create_and_store_key(client, server=self.server, app_name=change.app, app_id=app_id,
                                           stores=[self.stores[change.app]],
                                           known_key_ids=known_keys.get(change.app, set()), actor=self.actor,
                                           force=self.force, displaced=displaced)
                with self._lock:
                    result.new_keys[change.app] = key
                    result.displaced.extend(displaced)
                return key.key_id
            case DeleteApp():
                client.delete_application(app_id)
            case RotateKey():
                if self.rotate is None:
                    raise UsageError(f"rotating the key of {change.app} needs the rotation code",
                                     "pass rotate= to apply_environment (the CLI does)")
                return self.rotate(change)
        return None
