"""The behaviours the probe observes, one function each, in the order they run.

Each check answers one question with a short ``observed`` word and a one-line ``detail``; a check
that fails answers ``error`` with the reason and the others still run. Names are fixed (no random
part), so that a recorded run (``--record``) replays request for request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from orkes_provision.errors import AuthenticationError, Conflict, PermissionDenied, ProvisionError
from orkes_provision.orkes import serverfacts
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials, Target, TaskDef, app_subject
from orkes_provision.probe.cleanup import PREFIX, remove_probe_objects

MakeClient = Callable[[Credentials], OrkesClient]
KEYS_BOUND = 8  # keys per application the probe creates at most: enough to see a small cap
TASK, FLOW, GROUP = f"{PREFIX}-task", f"{PREFIX}-flow", f"{PREFIX}-group"
TAG_KEY, TAG_VALUE = PREFIX, "tagged"
WRONG_SECRET = SecretStr("orkes-provision-probe-wrong-secret-0000")


@dataclass(frozen=True)
class Observation:
    name: str
    observed: str
    detail: str

    def line(self) -> str:
        return f"{self.name}: {self.observed} ({self.detail})"

    def to_dict(self) -> dict[str, str]:
        return {"behaviour": self.name, "observed": self.observed, "detail": self.detail}


@dataclass
class ProbeReport:
    server: str
    removed_before: list[str] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    removed_after: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"server": self.server, "removedBefore": self.removed_before,
                "observations": [o.to_dict() for o in self.observations],
                "removedAfter": self.removed_after, "left": self.left}


@dataclass
class _Run:
    admin: OrkesClient
    make_client: MakeClient
    server: str
    worker: OrkesClient | None = None
    worker_id: str = ""
    worker_key: str = ""
    keys_app: str = ""


def _worker(run: _Run) -> OrkesClient:
    """A WORKER application with EXECUTE on the probe task (and READ on its tag), and its own client."""
    if run.worker is None:
        app = run.admin.create_application(f"{PREFIX}-worker")
        run.admin.add_role(app.id, "WORKER")
        run.admin.grant(app_subject(app.id), Target(type="TASK_DEF", id=TASK), ["EXECUTE"])
        created = run.admin.create_key(app.id)
        run.worker_id, run.worker_key = app.id, created.id
        run.worker = run.make_client(Credentials(server=run.server, key_id=created.id, secret=created.secret))
    return run.worker


def duplicate_names(run: _Run) -> Observation:
    name = f"{PREFIX}-twin"
    ids = [run.admin.create_application(name).id for _ in range(2)]
    same = [a.id for a in run.admin.list_applications() if a.name == name]
    for app_id in ids:
        run.admin.delete_application(app_id)
    if sorted(same) == sorted(ids) and len(set(ids)) == 2:
        return Observation("duplicate-application-names", "allowed",
                           "two applications got one name; the tool tells its own apart by tag and id")
    return Observation("duplicate-application-names", "refused", f"the second create answered {ids[1:]}")


def keys_per_application(run: _Run) -> Observation:
    app = run.admin.create_application(f"{PREFIX}-keys")
    run.keys_app = app.id
    made = 0
    for _ in range(KEYS_BOUND):
        try:
            run.admin.create_key(app.id)
        except (Conflict, PermissionDenied) as err:
            serverfacts.record(run.server, serverfacts.MAX_KEYS_PER_APP, str(made), source="probe")
            return Observation("keys-per-application", f"capped at {made}", f"key {made + 1} refused: {err.message}")
        made += 1
    serverfacts.record(run.server, serverfacts.MAX_KEYS_PER_APP, f"none-up-to-{made}", source="probe")
    return Observation("keys-per-application", f"no cap up to {made}", f"created {made} keys on one application")


def deactivation_ends_tokens(run: _Run) -> Observation:
    app = run.admin.create_application(f"{PREFIX}-deactivate")
    created = run.admin.create_key(app.id)
    with run.make_client(Credentials(server=run.server, key_id=created.id, secret=created.secret)) as client:
        client.user_info()  # holds a token now
        run.admin.toggle_key(app.id, created.id)
        try:
            client.user_info()
        except AuthenticationError:
            return Observation("deactivating-a-key-ends-its-tokens", "yes",
                               "a token minted before the key was deactivated was refused at once")
        return Observation("deactivating-a-key-ends-its-tokens", "no",
                           "a token minted before deactivation still worked: old workers keep going until it expires")


def worker_search(run: _Run) -> Observation:
    worker = _worker(run)
    try:
        worker.search_tasks(f"taskType IN ({TASK})", size=1)
    except PermissionDenied as err:
        serverfacts.record(run.server, serverfacts.WORKER_TASK_SEARCH, "refused", source="probe")
        return Observation("worker-may-search-tasks", "no", f"403: {err.message}")
    serverfacts.record(run.server, serverfacts.WORKER_TASK_SEARCH, "allowed", source="probe")
    return Observation("worker-may-search-tasks", "yes",
                       "a WORKER key searched tasks: the supervisor's own hand-back works")


def worker_own_permissions(run: _Run) -> Observation:
    worker = _worker(run)
    try:
        worker.get_user_permissions(app_subject(run.worker_id).id)
    except PermissionDenied as err:
        return Observation("worker-may-read-its-own-permissions", "no", f"403: {err.message}")
    return Observation("worker-may-read-its-own-permissions", "yes", "a WORKER key read its own grants")


def tag_grant_shape(run: _Run) -> Observation:
    _worker(run)
    tag = f"{TAG_KEY}:{TAG_VALUE}"
    run.admin.grant(app_subject(run.worker_id), Target(type="TAG", id=tag), ["READ"])
    listed = run.admin.get_user_permissions(app_subject(run.worker_id).id)
    if any(g.tag == tag for g in listed):
        serverfacts.record(run.server, serverfacts.TAG_GRANT_SHAPE, "per-resource", source="probe")
        where = sorted(f"{g.target.type} {g.target.id}" for g in listed if g.tag == tag)
        return Observation("tag-grant-shape", "per resource, with tag", f"listed on {', '.join(where)}")
    if any((g.target.type, g.target.id) == ("TAG", tag) for g in listed):
        serverfacts.record(run.server, serverfacts.TAG_GRANT_SHAPE, "tag-target", source="probe")
        return Observation("tag-grant-shape", "one TAG entry", f"listed as target TAG {tag}")
    return Observation("tag-grant-shape", "not listed", "a grant on a tag shows in no permission listing")


def _token_line(answer: tuple[int, str | None]) -> str:
    status, code = answer
    return f"{status}" + (f" {code}" if code else "")


def token_wrong_key_id(run: _Run) -> Observation:
    answer = run.admin.token_answer(f"{PREFIX}-no-such-key", WRONG_SECRET)
    return Observation("token-answer-to-a-wrong-key-id", _token_line(answer),
                       "the tool reports any 401/403 here as the key refused (exit 4)")


def token_wrong_secret(run: _Run) -> Observation:
    _worker(run)
    answer = run.admin.token_answer(run.worker_key, WRONG_SECRET)
    return Observation("token-answer-to-a-wrong-secret", _token_line(answer),
                       "the tool reports any 401/403 here as the key refused (exit 4)")


def group_holds_application(run: _Run) -> Observation:
    _worker(run)
    run.admin.upsert_group(GROUP, "orkes-provision probe", [])
    try:
        run.admin.add_users_to_group(GROUP, [app_subject(run.worker_id).id])
    except ProvisionError as err:
        return Observation("a-group-may-hold-an-application", "no", err.message)
    return Observation("a-group-may-hold-an-application", "yes", "app:<id> joined a group")


def requeue_and_poll_data(run: _Run) -> list[Observation]:
    worker = _worker(run)
    workflow_id = run.admin.start_workflow(FLOW, {})
    polled = worker.poll_tasks(TASK, f"{PREFIX}-w1")
    if not polled:
        return [Observation("in-progress-requeue", "error", "the started task could not be polled")]
    task_id = str(polled[0]["taskId"])
    worker.return_task_to_queue(workflow_id, task_id)
    after = run.admin.get_task(task_id)
    again = worker.poll_tasks(TASK, f"{PREFIX}-w2")
    same = bool(again) and str(again[0].get("taskId")) == task_id
    if same:
        worker.complete_task(workflow_id, task_id, f"{PREFIX}-w2")
    requeue = Observation("in-progress-requeue", "yes" if same and after.get("status") == "SCHEDULED" else "no",
                          f"after IN_PROGRESS with callbackAfterSeconds 0 the task was {after.get('status')}, and the "
                          f"next poll {'got it' if same else 'did not get it'}")
    pollers = {p.worker_id for p in run.admin.get_poll_data(TASK)}
    poll_data = Observation("poll-data-names-the-worker", "yes" if f"{PREFIX}-w2" in pollers else "no",
                            f"poll data lists {', '.join(sorted(str(w) for w in pollers)) or 'nobody'}")
    return [requeue, poll_data]


def retry_after(run: _Run) -> Observation:
    # A 429 cannot be asked for without flooding the server; the client counts the ones it met.
    seen = run.admin.rate_limited_answers
    if not seen:
        return Observation("retry-after-on-429", "not seen", "no 429 during the probe; the client waits Retry-After "
                                                            "when one comes, else backs off")
    with_header = sum(1 for value in seen if value is not None)
    return Observation("retry-after-on-429", f"{with_header} of {len(seen)}", "429 answers that carried Retry-After")


def _setup(run: _Run) -> None:
    run.admin.register_task_defs([TaskDef(name=TASK, description="orkes-provision probe",
                                          tags=[{"key": TAG_KEY, "value": TAG_VALUE}])])
    run.admin.register_workflow_def({"name": FLOW, "version": 1, "timeoutSeconds": 60, "schemaVersion": 2,
                                     "ownerEmail": "probe@example.com",
                                     "tasks": [{"name": TASK, "taskReferenceName": "t", "type": "SIMPLE"}]})


CHECKS: tuple[Callable[[_Run], Observation | list[Observation]], ...] = (
    duplicate_names, keys_per_application, deactivation_ends_tokens, worker_search, worker_own_permissions,
    tag_grant_shape, token_wrong_key_id, token_wrong_secret, group_holds_application, requeue_and_poll_data,
    retry_after)


@contextlib.contextmanager
def _cleaned(admin: OrkesClient, report: ProbeReport) -> Iterator[None]:
    report.removed_before = remove_probe_objects(admin)
    try:
        yield
    finally:
        # Also after Ctrl-C or a failure: nothing named orkes-provision-probe-* stays behind.
        report.removed_after = remove_probe_objects(admin)
        report.left = remove_probe_objects(admin)


def run_probe(admin_credentials: Credentials, make_client: MakeClient,
              on_observation: Callable[[Observation], None] | None = None) -> ProbeReport:
    """Observe every behaviour on the server of ``admin_credentials`` (an ADMIN application's key)."""
    report = ProbeReport(server=admin_credentials.server)
    with make_client(admin_credentials) as admin, _cleaned(admin, report):
        run = _Run(admin=admin, make_client=make_client, server=admin_credentials.server)
        try:
            _setup(run)
            for check in CHECKS:
                try:
                    found = check(run)
                except ProvisionError as err:
                    found = Observation(check.__name__.replace("_", "-"), "error", err.message)
                for observation in found if isinstance(found, list) else [found]:
                    report.observations.append(observation)
                    if on_observation is not None:
                        on_observation(observation)
        finally:
            if run.worker is not None:
                run.worker.close()
    return report
