"""``provision plan``/``apply`` as library calls: an environment file against a server.

``plan_environment`` only reads: the applications (one list call, then each named application's
roles, grants and keys), the task definitions, the declared workflows, whether each stored key is
still good and, when the file declares users or groups, every user and group (then each declared
group's members and grants), and when it declares or uses custom roles, the server's custom roles
(and, for ``[[roles]]``, the permissions a role may hold); then it compares, with the same pure
``plan_apps`` that ``provision app`` uses, ``plan_roles`` and ``plan_people``. ``apply_environment``
carries the plan out with the executor: bounded, adaptive concurrency, dependency order, one batched call for all task
definitions. A plan never holds a secret, and a second apply of the same file makes no write.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orkes_provision.access.changes import (
    Change,
    CreateKey,
    RegisterWorkflow,
    RotateKey,
    TagApp,
    UpdateTask,
    UpdateWorkflow,
)
from orkes_provision.access.classify import PLAN_SCHEMA_VERSION, classes_of
from orkes_provision.access.execute import ApplyResult, Executor, Outcome
from orkes_provision.access.keyage import plan_key_rotations
from orkes_provision.access.keys import check_stores_free, key_authenticates
from orkes_provision.access.plan import AppPlan, Plan, key_status, plan_apps, plan_people, plan_prune, plan_roles
from orkes_provision.access.spec import AppSpec
from orkes_provision.access.state import RolesState, ServerState, read_roles, read_state
from orkes_provision.credentials.delivery import Hints, deliveries
from orkes_provision.credentials.stores import CredentialStore, StoredKey, open_store
from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.environments.environment import Environment
from orkes_provision.environments.lint import Finding, lint_environment
from orkes_provision.errors import Conflict, NotFound, ProvisionError, StoreError, with_problems
from orkes_provision.orkes.models import MANAGED_TAG, Application, Tag, TaskDef
from orkes_provision.orkes.ratelimit import AdaptiveLimiter, LimiterStats

if TYPE_CHECKING:
    from orkes_provision.orkes.client import OrkesClient

ENVIRONMENT_TAG_KEY = "environment"
DEFAULT_PARALLELISM = 16


def _utcnow() -> datetime:
    return datetime.now(UTC)


def ownership_tags(environment: str) -> tuple[Tag, Tag]:
    """The tags that mark an application as created and owned by this environment."""
    return MANAGED_TAG, Tag(key=ENVIRONMENT_TAG_KEY, value=environment)


def owned_by(app: Application, environment: str) -> bool:
    tags = {(t.key, t.value) for t in app.tags}
    return all((t.key, t.value) in tags for t in ownership_tags(environment))


@dataclass
class EnvironmentPlan:
    """What applying an environment would change, plus what the executor needs to do it."""

    environment: Environment
    server: str
    plan: Plan
    prune: bool
    stores: dict[str, CredentialStore] = field(default_factory=dict)
    task_payloads: dict[str, TaskDef] = field(default_factory=dict)
    workflow_payloads: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    read_requests: int = 0
    # Least-privilege findings in the file (``provision lint``), with what the server says about tags.
    findings: list[Finding] = field(default_factory=list)
    # Changes that take access from the credentials running the plan (``access.selflock``), and why.
    lockouts: dict[Change, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.plan.empty

    def to_dict(self) -> dict[str, Any]:
        return {"schemaVersion": PLAN_SCHEMA_VERSION,
                "environment": self.environment.name, "file": str(self.environment.path or ""),
                "server": self.server, "prune": self.prune,
                "changes": [c.to_dict() | {"classes": list(classes_of(c))}
                            | ({"selfLockout": self.lockouts[c]} if c in self.lockouts else {})
                            for c in self.plan.changes],
                "summary": self.plan.counts()}

    def classified(self, wanted: Sequence[str]) -> list[Change]:
        """The planned changes in any of the classes ``wanted`` (``access.classify``)."""
        return [c for c in self.plan.changes if set(classes_of(c)) & set(wanted)]

    def render(self) -> str:
        head = f"Environment {self.environment.name} on {self.server}" + (" (with --prune)" if self.prune else "")
        marks = {c: f"self-lockout: {why}" for c, why in self.lockouts.items()}
        return f"{head}\n{self.plan.render(marks)}"


@dataclass
class EnvironmentApplyResult:
    plan: EnvironmentPlan
    applied: ApplyResult
    seconds: float
    requests: int
    limiter: LimiterStats
    parallelism: int
    # Global options printed commands need in a fresh shell (``--profile NAME``).
    hint_options: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.applied.failed

    def to_dict(self) -> dict[str, Any]:
        applied = self.applied
        return {
            "environment": self.plan.environment.name, "server": self.plan.server, "ok": self.ok,
            "seconds": round(self.seconds, 3), "requests": self.requests, "parallelism": self.parallelism,
            "rateLimited": self.limiter.rate_limited, "lowestParallelism": self.limiter.lowest_limit,
            "done": len(applied.done), "failed": len(applied.failed), "skipped": len(applied.skipped),
            "keys": {app: {"keyId": key.key_id, "store": self.plan.stores[app].spec}
                     for app, key in sorted(applied.new_keys.items())},
            "outcomes": [o.to_dict() for o in _ordered(self.plan.plan, applied.outcomes)],
        }

    def render(self) -> str:
        applied = self.applied
        lines: list[str] = []
        workers = {a.spec.name for a in self.plan.plan.apps if "WORKER" in a.spec.roles}
        for app, key in sorted(applied.new_keys.items()):
            lines.append(f"key {key.key_id} of {app} stored in {self.plan.stores[app].describe()}")
            if app in workers:
                hints = Hints(app=app, store=self.plan.stores[app].spec, options=self.hint_options,
                              server=self.plan.server)
                lines.append(f"Next: {hints.run()}")
        for outcome in _ordered(self.plan.plan, applied.done):
            if isinstance(outcome.change, RotateKey):
                lines.append(f"rotated the key of {outcome.change.app}: key {outcome.key_id} replaces "
                             f"{outcome.change.key_id} wherever it was delivered")
        not_done = [o for o in _ordered(self.plan.plan, applied.outcomes) if o.status != "done"]
        for outcome in not_done:
            detail = f": {outcome.error.message}" if outcome.error is not None else ""
            lines.append(f"{outcome.status.upper()}: {outcome.change.describe(symbol=False)}{detail}")
        verdict = "Apply complete" if self.ok else "Apply INCOMPLETE"
        lines.append(f"{verdict}: {len(applied.done)} done, {len(applied.failed)} failed, "
                     f"{len(applied.skipped)} skipped, in {self.seconds:.1f}s ({self.requests} requests, "
                     f"parallelism {self.parallelism}).")
        if self.limiter.rate_limited:
            lines.append(f"The server rate-limited {self.limiter.rate_limited} request(s) (429): parallelism went "
                         f"down to {self.limiter.lowest_limit} and back up.")
        if not self.ok:
            lines.append("Nothing above is lost: rerun the same command to finish; it only does what is missing.")
        return "\n".join(lines)


def owning_environment(app: Application) -> str | None:
    """The environment an application is tagged with (``environment=NAME``), if any."""
    return next((t.value for t in app.tags if t.key == ENVIRONMENT_TAG_KEY), None)


def open_stores(env: Environment, specs: list[AppSpec]) -> dict[str, CredentialStore]:
    """Open every application's store before anything is read or written, so a bad one stops early.

    An env file whose directory does not exist yet is accepted (it holds no key, and apply creates
    the directory, 0700, before any server write); everything else ``open_store`` refuses stops here.
    """
    stores: dict[str, CredentialStore] = {}
    for spec in specs:
        if spec.store is None:
            continue
        try:
            if spec.store.startswith("env-file:") and not Path(spec.store.partition(":")[2]).parent.exists():
                stores[spec.name] = EnvFileStore(spec.store.partition(":")[2])
            else:
                stores[spec.name] = open_store(spec.store)
        except ProvisionError as err:
            raise type(err)(f"application {spec.name}: {err.message}", _file_hint(env, spec.name, err)) from None
    return stores


def _file_hint(env: Environment, app: str, err: ProvisionError) -> str:
    # apply has no --store: a store is changed in the environment file.
    if "--store" not in err.hint and "--force" not in err.hint:
        return err.hint
    return (f"change the store of application {app} in {_file(env)} (each application needs its own, "
            f"e.g. store = \"env-file:secrets/{app}.env\"), then plan again")


def prepare_stores(env_plan: EnvironmentPlan) -> None:
    """Create the missing directories of env-file stores that will receive a key, and check them."""
    for change in env_plan.plan.changes:
        if not isinstance(change, CreateKey):
            continue
        store = env_plan.stores.get(change.app)
        if not isinstance(store, EnvFileStore):
            continue
        try:
            store.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"application {change.app}: cannot create {store.path.parent}: {err.strerror}",
                             "create the directory yourself, or change the store in the environment file") from None
        try:
            store.check_writable()
        except ProvisionError as err:
            raise type(err)(f"application {change.app}: {err.message}",
                            _file_hint(env_plan.environment, change.app, err)) from None


# complexity: every section of the file (applications, keys, tasks, workflows, roles, people) is read and
# planned here in the one order its reads overlap in and its changes depend on; each section's planning
# lives in its own module, what is left is the sequence.
def plan_environment(client: OrkesClient, env: Environment, *, server: str, prune: bool = False,
                     parallelism: int = DEFAULT_PARALLELISM, verify_keys: bool = False,
                     now: Callable[[], datetime] | None = None) -> EnvironmentPlan:
    """Read the server and compare it with ``env``. Reads only; raises ``ProvisionError`` for a plan
    that cannot be carried out (ambiguous application names, grants on undeclared missing tasks).

    A stored key is reused when the server lists it as an ACTIVE key of its application and its
    secret authenticates. The secret is checked with a token exchange, except for keys this
    machine delivered to that very store itself (the deliveries record says so): their secret
    is the one the server returned. ``verify_keys`` checks those too. A kept key whose
    application's oldest ACTIVE key is older than its ``keyMaxAge`` (by ``now``) is rotated.
    """
    specs = env.app_specs()
    stores = open_stores(env, specs)
    stored = {name: store.load(server, name) for name, store in stores.items()}
    trusted = set() if verify_keys else _delivered_here(server, stored, stores)
    before = client.request_count
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        # Independent reads go out together: workflows and key checks alongside the state.
        workflows = {workflow_key(d): pool.submit(get_workflow, client, d) for d in env.workflow_defs}
        key_checks = {name: pool.submit(key_authenticates, client, key) for name, key in stored.items()
                      if key is not None and name not in trusted}
        roles_read = pool.submit(read_roles, client, catalogue=bool(env.roles)) if env.uses_custom_roles else None
        state = _read_state(client, env, specs, parallelism)
        server_workflows = {k: f.result() for k, f in workflows.items()}
        accepted = {name for name, f in key_checks.items() if f.result()} | trusted
        roles = custom_roles(env, roles_read.result) if roles_read is not None else RolesState()
    _refuse_foreign(env, state, specs, stores, client, server)
    statuses = {spec.name: key_status(state, spec, stored.get(spec.name), partial(accepted.__contains__, spec.name))
                for spec in specs if spec.store is not None}
    env_tag = ownership_tags(env.name)[1]
    _refuse_unknown(env, state, roles)
    plan = plan_apps(state, specs, server=server, key_status=statuses,
                     store_names={name: store.describe() for name, store in stores.items()},
                     tasks_to_register=[t.name for t in env.tasks], managed_tag=(env_tag.key, env_tag.value))
    plan.apps = [_mark_adoption(app_plan, env.name) for app_plan in plan.apps]
    plan_key_rotations(plan, state, (now or _utcnow)())
    payloads = _task_payloads(env, state)
    plan.task_changes.extend(_task_updates(env, state))
    plan.task_changes.extend(_workflow_changes(env, server_workflows))
    if prune:
        plan.prune_changes = plan_prune(state, specs, _managed(state, env.name))
    plan.role_changes, plan.role_upserts = plan_roles(roles.custom, env.role_specs(), prune=prune)
    if env.declares_people:
        _plan_people(env, state, plan, prune=prune)
    return EnvironmentPlan(environment=env, server=server, plan=plan, prune=prune, stores=stores,
                           task_payloads=payloads,
                           workflow_payloads={workflow_id(d): d for d in env.workflow_defs},
                           read_requests=client.request_count - before,
                           findings=lint_environment(env, tagged_tasks=tagged_tasks(state)))


def _refuse_unknown(env: Environment, state: ServerState, roles: RolesState) -> None:
    """Every unknown task, member, role and permission at its line, before plan_apps meets the first."""
    unknown = env.unknown_tasks(state.task_names) + (env.unknown_members(state.people.users)
                                                     if env.declares_people else [])
    unknown += env.unknown_roles(roles.custom) + env.unknown_permissions(roles.catalogue or ())
    if unknown:
        raise with_problems(NotFound, unknown)


def custom_roles(env: Environment, read: Callable[[], RolesState]) -> RolesState:
    """The server's custom roles for ``env``; a server without ``/api/roles`` (404) is said in the file's terms."""
    try:
        return read()
    except NotFound:
        raise NotFound(f"{_file(env)} declares or uses custom roles, and this server has none (/api/roles answers "
                       "404)", "give users and groups system roles only, and remove [[roles]]") from None


def _delivered_here(server: str, stored: Mapping[str, StoredKey | None],
                    stores: Mapping[str, CredentialStore]) -> set[str]:
    """The applications whose stored key this machine delivered to that very store (no token exchange needed)."""
    delivered = {(d.app, d.key_id, d.store) for d in deliveries(server)}
    return {name for name, key in stored.items()
            if key is not None and (name, key.key_id, stores[name].spec) in delivered}


def _managed(state: ServerState, environment: str) -> list[Application]:
    """The applications tagged as this environment's (what --prune may delete), by name."""
    managed = [a for apps in state.by_name.values() for a in apps if owned_by(a, environment)]
    return sorted(managed, key=lambda a: (a.name, a.id))


def apply_environment(client: OrkesClient, env_plan: EnvironmentPlan, *, actor: str | None,
                      parallelism: int = DEFAULT_PARALLELISM, limiter: AdaptiveLimiter | None = None,
                      on_outcome: Callable[[Outcome, int, int], None] | None = None,
                      rotate: Callable[[RotateKey], str] | None = None) -> EnvironmentApplyResult:
    """Carry out ``env_plan``. Failures on the server are reported per change in the result; only a
    store that cannot be prepared (before any write) raises. ``rotate`` carries out the key
    rotations ``keyMaxAge`` asks for (``rotation.fleet.environment_rotator``)."""
    limiter = limiter or AdaptiveLimiter(parallelism)
    prepare_stores(env_plan)
    before = client.request_count
    started = time.monotonic()
    executor = Executor(client=client, server=env_plan.server, stores=env_plan.stores, actor=actor,
                        parallelism=parallelism, task_defs=env_plan.task_payloads,
                        managed_tags=ownership_tags(env_plan.environment.name), on_outcome=on_outcome,
                        workflow_defs=env_plan.workflow_payloads, limiter=limiter, rotate=rotate)
    applied = executor.run(env_plan.plan)
    return EnvironmentApplyResult(plan=env_plan, applied=applied, seconds=time.monotonic() - started,
                                  requests=client.request_count - before, limiter=limiter.stats,
                                  parallelism=parallelism)


def tagged_tasks(state: ServerState) -> dict[str, set[str]] | None:
    """``key:value`` -> the task definitions carrying that tag, when the server shows tags on task
    definitions (the sandbox does); ``None`` when it does not, so the lint cannot tell."""
    found: dict[str, set[str]] = {}
    shown = False
    for name, task_def in state.task_defs.items():
        tags = (task_def.model_extra or {}).get("tags")
        if not isinstance(tags, list):
            continue
        shown = True
        for tag in tags:
            if isinstance(tag, dict) and tag.get("key"):
                found.setdefault(f"{tag['key']}:{tag.get('value', '')}", set()).add(name)
    return found if shown else None


def _plan_people(env: Environment, state: ServerState, plan: Plan, *, prune: bool) -> None:
    """Users' and groups' changes into ``plan``: additions after the applications', removals with the deletions."""
    people = plan_people(state.people, env.user_specs(), env.group_specs(), prune=prune)
    plan.people_changes = people.changes
    plan.prune_changes.extend(people.removals)
    plan.user_upserts = people.user_upserts
    plan.group_upserts = people.group_upserts


def _read_state(client: OrkesClient, env: Environment, specs: list[AppSpec], parallelism: int) -> ServerState:
    groups = [g.id for g in env.groups] if env.declares_people else None
    try:
        return read_state(client, [s.name for s in specs], parallelism=parallelism, with_tasks=True, groups=groups)
    except Conflict as err:
        raise Conflict(err.message, f"application names must be unique for {_file(env)}: delete or rename the "
                                    "extras ('provision apps delete ID'), then plan again") from None


def _refuse_foreign(env: Environment, state: ServerState, specs: list[AppSpec], stores: Mapping[str, CredentialStore],
                    client: OrkesClient, server: str) -> None:
    """Stop before any write: an application tagged with another environment is not this one's to change
    (and its --prune would then delete it); a store holding another application's key is not this one's."""
    for spec in specs:
        existing = state.resolve(spec.name)
        owner = owning_environment(existing) if existing is not None else None
        # 'owned = false' declares an application without taking it over (never tagged, never pruned):
        # what 'export' writes for applications it found on the server, another environment's included.
        if existing is not None and owner is not None and owner != env.name and spec.owned:
            raise Conflict(f"application {spec.name} ({existing.id}) belongs to environment "
                           f"{owner!r} (tag {ENVIRONMENT_TAG_KEY}={owner}), not {env.name!r}; nothing was changed",
                           f"remove it from {_file(env)}, or move it here by hand first: change its "
                           f"{ENVIRONMENT_TAG_KEY} tag in the Orkes UI")
        store = stores.get(spec.name)
        if store is not None:
            try:
                check_stores_free(client, server=server, app_name=spec.name,
                                  app_id=existing.id if existing else None, stores=[store], force=False)
            except ProvisionError as err:
                raise type(err)(f"application {spec.name}: {err.message}", _file_hint(env, spec.name, err)) from None


def _mark_adoption(app_plan: AppPlan, environment: str) -> AppPlan:
    """Tagging an existing application that has no environment tag adopts it: say so in the plan."""
    app_plan.changes = [dataclasses.replace(c, reason=f"adopt: {c.app} exists without an environment tag; "
                                                      f"apply makes it {environment}'s, --prune could then delete it")
                        if isinstance(c, TagApp) else c for c in app_plan.changes]
    return app_plan


def _task_payloads(env: Environment, state: ServerState) -> dict[str, TaskDef]:
    """What to send for each declared task: the server's definition (if any) with the declared fields over it."""
    payloads: dict[str, TaskDef] = {}
    for name, entry in env.task_entries().items():
        current = state.task_defs.get(name)
        base = current.model_dump(mode="json", by_alias=True, exclude_none=True) if current else {}
        declared = entry.declared()
        timeout = declared.get("timeoutSeconds")
        if "responseTimeoutSeconds" not in declared and timeout and base.get("responseTimeoutSeconds", 0) > timeout:
            # The server refuses a response timeout above the timeout: lowering only the timeout
            # lowers the server's response timeout with it.
            base["responseTimeoutSeconds"] = timeout
        payloads[name] = TaskDef.model_validate({**base, **declared})
    return payloads


def _task_updates(env: Environment, state: ServerState) -> list[Change]:
    changes: list[Change] = []
    for name, entry in sorted(env.task_entries().items()):
        current = state.task_defs.get(name)
        if current is None:
            continue  # plan_apps registers it
        have = current.model_dump(mode="json", by_alias=True)
        differing = [(k, have.get(k), v) for k, v in entry.declared().items() if k != "name" and have.get(k) != v]
        if differing:
            reason = ", ".join(f"{k}: {_short(old)} -> {_short(new)}" for k, old, new in differing)
            changes.append(UpdateTask(name=name, reason=reason))
    return changes


def workflow_key(definition: Mapping[str, Any]) -> str:
    return "{} v{}".format(*workflow_id(definition))


def workflow_id(definition: Mapping[str, Any]) -> tuple[str, int]:
    return str(definition["name"]), int(definition.get("version", 1))


def get_workflow(client: OrkesClient, definition: Mapping[str, Any]) -> dict[str, Any] | None:
    try:
        return client.get_workflow_def(str(definition["name"]), int(definition.get("version", 1)))
    except NotFound:
        return None


def _workflow_changes(env: Environment, server: Mapping[str, dict[str, Any] | None]) -> list[Change]:
    changes: list[Change] = []
    for definition in env.workflow_defs:
        name, version = workflow_id(definition)
        current = server.get(workflow_key(definition))
        if current is None:
            changes.append(RegisterWorkflow(name=name, version=version))
            continue
        differing = sorted(k for k, v in definition.items() if not covers(current.get(k), v))
        if differing:
            changes.append(UpdateWorkflow(name=name, version=version, reason=f"differs in {', '.join(differing)}"))
    return changes


def covers(have: Any, want: Any) -> bool:
    """Does the server's value ``have`` say everything the file's ``want`` says?

    Objects compare on the keys the file gives (the server adds defaults, such as a task's
    ``optional: false``); lists element by element; everything else by equality.
    """
    if isinstance(want, dict):
        return isinstance(have, dict) and all(covers(have.get(k), v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(have) == len(want) and all(map(covers, have, want))
    return bool(have == want)


def _ordered(plan: Plan, outcomes: list[Outcome]) -> list[Outcome]:
    """Outcomes in plan order (they finish in any order), so reports are stable."""
    position = {id(c): i for i, c in enumerate(plan.changes)}
    return sorted(outcomes, key=lambda o: position.get(id(o.change), len(position)))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _file(env: Environment) -> str:
    return env.path.name if env.path is not None else "the environment file"
