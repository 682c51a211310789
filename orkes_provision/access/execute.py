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
from orkes_provision.access.keys import DisplacedKey, create_and_store_key
from orkes_provision.access.plan import GROUP_CHANGES, STAGE, USER_CHANGES, Change, Plan
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
    # Workflow definitions to register, keyed by the ``what`` of their change ("NAME vVERSION").
    workflow_defs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Adapts concurrency to 429s; a fresh one of ``parallelism`` when not given.
    limiter: AdaptiveLimiter | None = None
    # Replace a key of another application that a store holds (``--force``), retiring it.
    force: bool = False
    # Carries out a ``rotate_key`` change (``keyMaxAge``) and returns the new key id: rotation lives
    # in ``orkes_provision.rotation``, which this package does not import.
    rotate: Callable[[Change], str] | None = None
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
        changes = plan.changes
        total = len(changes)
        batch = [c for c in changes if STAGE[c.kind] == 0]
        jobs, depends_on, bundles = _job_graph(changes, has_batch=bool(batch))
        limiter = self.limiter or AdaptiveLimiter(max(1, self.parallelism))

        def members_of(job: int) -> list[Change]:
            if job == _BATCH:
                return batch
            return [changes[i] for i in bundles[job]] if job in bundles else [changes[job]]

        def run_job(job: int) -> list[Outcome]:
            if job == _BATCH:
                return self._register_tasks(batch)
            if job in bundles:
                return self._run_bundle(members_of(job), plan)
            return [self._run_one(changes[job], result, known_keys)]

        def done(job: int, outcome: JobOutcome[list[Outcome]]) -> None:
            members = members_of(job)
            if outcome.skipped:
                self._finish(result, [Outcome(c, "skipped") for c in members], total)
            elif outcome.result is not None:
                self._finish(result, outcome.result, total)
            else:  # the job raised something that is not a ProvisionError: report it, do not lose it
                logging.getLogger(__name__).debug("change failed unexpectedly", exc_info=outcome.error)
                error = ProvisionError(f"internal error: {type(outcome.error).__name__}")
                self._finish(result, [Outcome(c, "failed", error) for c in members], total)

        run_graph(jobs, run_job, limiter, depends_on=depends_on,
                  failed=lambda outs: any(o.status == "failed" for o in outs), on_done=done)
        return result

    def _finish(self, result: ApplyResult, outcomes: list[Outcome], total: int) -> None:
        with self._lock:
            for outcome in outcomes:
                result.outcomes.append(outcome)
                if self.on_outcome is not None:
                    self.on_outcome(outcome, len(result.outcomes), total)

    def _audit(self, change: Change, status: str, key_id: str | None = None) -> None:
        # A user's or a group's change names them in the target ("add role USER to user ada@...").
        target = change.what if change.user is None and change.group is None else change.describe()[2:]
        audit.record(action=change.kind, target=target, result=status, server=self.server,
                     actor=self.actor, app=change.app, key_id=key_id)

    def _run_bundle(self, members: list[Change], plan: Plan) -> list[Outcome]:
        """One request for all of ``members``: a user's or a group's upsert, or a group's members."""
        first = members[0]
        try:
            if first.kind in USER_CHANGES:
                assert first.user is not None
                user = plan.user_upserts[first.user]
                self.client.upsert_user(first.user, user.name, list(user.roles), list(user.groups))
            elif first.kind in GROUP_CHANGES:
                assert first.group is not None
                group = plan.group_upserts[first.group]
                self.client.upsert_group(first.group, group.description, list(group.roles), group.default_access)
            elif first.kind == "add_member":
                assert first.group is not None
                self.client.add_users_to_group(first.group, [c.what for c in members])
            else:
                assert first.group is not None
                self.client.remove_users_from_group(first.group, [c.what for c in members])
        except ProvisionError as err:
            for change in members:
                self._audit(change, "failed")
            return [Outcome(c, "failed", err) for c in members]
        for change in members:
            self._audit(change, "ok")
        return [Outcome(c, "done") for c in members]

    def _register_tasks(self, batch: list[Change]) -> list[Outcome]:
        defs = [self.task_defs.get(c.what) or TaskDef(name=c.what) for c in batch]
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
        if change.kind not in ("create_key", "rotate_key"):  # those audit their own steps
            self._audit(change, "ok", key_id)
        return Outcome(change, "done", key_id=key_id)

    def _apply(self, change: Change, result: ApplyResult, known_keys: Mapping[str, set[str]]) -> str | None:
        client = self.client
        if change.kind in ("register_workflow", "update_workflow"):
            client.register_workflow_def(self.workflow_defs[change.what], overwrite=True)
            return None
        if change.group is not None and change.kind in ("grant", "revoke"):
            target_type, _, target_id = change.what.partition(" ")
            call = client.grant if change.kind == "grant" else client.revoke
            call(group_subject(change.group), Target(type=target_type, id=target_id), list(change.access))
            return None
        assert change.app is not None
        if change.kind == "create_app":
            app = client.create_application(change.what)
            with self._lock:
                result.app_ids[change.what] = app.id
            if self.managed_tags and change.what not in self._unowned:
                client.put_application_tags(app.id, list(self.managed_tags))
            return None
        app_id = change.app_id or result.app_ids[change.app]
        if change.kind == "tag_app":
            client.put_application_tags(app_id, list(self.managed_tags))
        elif change.kind == "add_role":
            client.add_role(app_id, change.what)
        elif change.kind == "remove_role":
            client.remove_role(app_id, change.what)
        elif change.kind in ("grant", "revoke"):
            target_type, _, target_id = change.what.partition(" ")
            call = client.grant if change.kind == "grant" else client.revoke
            call(app_subject(app_id), Target(type=target_type, id=target_id), list(change.access))
        elif change.kind == "create_key":
            displaced: list[DisplacedKey] = []
            key = create_and_store_key(client, server=self.server, app_name=change.app, app_id=app_id,
                                       stores=[self.stores[change.app]],
                                       known_key_ids=known_keys.get(change.app, set()), actor=self.actor,
                                       force=self.force, displaced=displaced)
            with self._lock:
                result.new_keys[change.app] = key
                result.displaced.extend(displaced)
            return key.key_id
        elif change.kind == "delete_app":
            client.delete_application(app_id)
        elif change.kind == "rotate_key":
            if self.rotate is None:
                raise UsageError(f"rotating the key of {change.app} needs the rotation code",
                                 "pass rotate= to apply_environment (the CLI does)")
            return self.rotate(change)
        return None


_BATCH = -1  # the job that registers every task definition of the plan in one call
# Within what is ready, start first what unlocks the most (applications, workflows, users and groups); then
# the rest in plan order, application by application, so that the slow key creations (the server hashes
# each new secret) are spread over the run instead of taking every slot at once.
_PRIORITY = {"create_app": 0, "register_workflow": 1, "update_workflow": 1, "create_key": 2, "add_role": 2,
             "tag_app": 2, "grant": 2, "revoke": 5, "remove_role": 5, "rotate_key": 5, "delete_app": 6,
             **dict.fromkeys(USER_CHANGES | GROUP_CHANGES, 0), "add_member": 2, "remove_member": 5}


def _owner(change: Change) -> tuple[str, str | None]:
    """What a change is about: an application, a user or a group (removals wait for its additions)."""
    if change.group is not None:
        return ("group", change.group)
    if change.user is not None:
        return ("user", change.user)
    return ("app", change.app)


def _bundle_key(change: Change) -> tuple[str, str] | None:
    """Changes with the same key are carried out by one request (see ``Executor._run_bundle``)."""
    if change.kind in USER_CHANGES and change.user is not None:
        return ("user", change.user)
    if change.kind in GROUP_CHANGES and change.group is not None:
        return ("group", change.group)
    if change.kind in ("add_member", "remove_member") and change.group is not None:
        return (change.kind, change.group)
    return None


def _job_graph(changes: list[Change], *,
               has_batch: bool) -> tuple[list[int], dict[int, set[int]], dict[int, list[int]]]:
    """Jobs in start order, what each waits for, and the bundles (job -> indexes into ``changes``).

    A job is an index into ``changes``, ``_BATCH``, or a bundle (a negative number below ``_BATCH``).
    """
    creates = {c.what: i for i, c in enumerate(changes) if c.kind == "create_app"}
    workflows = {c.what.rpartition(" v")[0]: i for i, c in enumerate(changes)
                 if c.kind in ("register_workflow", "update_workflow")}
    bundle_jobs: dict[tuple[str, str], int] = {}
    bundles: dict[int, list[int]] = {}
    job_of: dict[int, int] = {}
    for index, change in enumerate(changes):
        key = _bundle_key(change)
        if key is None:
            job_of[index] = index
            continue
        job = bundle_jobs.setdefault(key, _BATCH - 1 - len(bundle_jobs))
        bundles.setdefault(job, []).append(index)
        job_of[index] = job
    additions: dict[tuple[str, str | None], set[int]] = {}
    removals: dict[tuple[str, str | None], set[int]] = {}
    depends_on: dict[int, set[int]] = {}
    others: list[int] = []
    for index, change in enumerate(changes):
        stage = STAGE[change.kind]
        if stage == 0:
            continue
        job = job_of[index]
        needs = depends_on.setdefault(job, set())
        if job not in bundles or bundles[job][0] == index:
            others.append(job)
        if change.kind in ("register_workflow", "update_workflow") and has_batch:
            needs.add(_BATCH)
        if change.app is not None and change.kind not in ("create_app", "delete_app") and change.app in creates:
            needs.add(creates[change.app])
        if change.kind == "grant":
            target_type, _, target_id = change.what.partition(" ")
            if target_type == "TASK_DEF" and has_batch:
                needs.add(_BATCH)
            if target_type == "WORKFLOW_DEF" and target_id in workflows:
                needs.add(workflows[target_id])
        if change.group is not None and change.kind in ("grant", "add_member", "remove_member"):
            needs.update(bundle_jobs[k] for k in [("group", change.group)] if k in bundle_jobs)
        if change.kind in ("add_member", "remove_member"):
            # A user's upsert sends the groups it is in as read before the apply: it must not undo a member change.
            needs.update(bundle_jobs[k] for k in [("user", change.what)] if k in bundle_jobs)
        if change.kind == "remove_member":
            needs.update(bundle_jobs[k] for k in [("add_member", str(change.group))] if k in bundle_jobs)
        if stage <= 2:
            additions.setdefault(_owner(change), set()).add(job)
        elif change.kind in ("revoke", "remove_role"):
            removals.setdefault(_owner(change), set()).add(job)
    for job in others:
        for index in bundles.get(job, [job]):
            change = changes[index]
            if change.kind in ("revoke", "remove_role"):
                depends_on[job] |= additions.get(_owner(change), set())
            elif change.kind == "delete_app":
                depends_on[job] |= {j for j in others if j < 0 or changes[j].kind != "delete_app"}
            elif change.kind == "rotate_key":  # its verification reads the roles and grants these settle
                depends_on[job] |= additions.get(_owner(change), set()) | removals.get(_owner(change), set())
        depends_on[job].discard(job)

    def start_order(job: int) -> tuple[int, int]:
        indexes = bundles.get(job, [job])
        return (min(_PRIORITY[changes[i].kind] for i in indexes), min(indexes))

    ordered = sorted(others, key=start_order)
    return ([_BATCH] if has_batch else []) + ordered, depends_on, bundles
