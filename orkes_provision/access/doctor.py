"""Why would a worker get 401 or 403? Each finding names the command that fixes it.

The checks, in the order a worker meets them: the server answers, the stored key is known,
ACTIVE and accepted, the application holds WORKER (or UNRESTRICTED_WORKER), its own or a group's,
each task definition exists, and the application holds EXECUTE on it; for a starter, EXECUTE on each
workflow it starts. How each access is held (directly, through a group, a tag, a domain, a role) is
decided by ``holdings``, the resolver ``provision explain`` uses too (``explain.access_findings``).

With ``polls`` it also reads the server's poll data (``GET /api/tasks/queue/polldata``) for each
task and says which worker polled it last, and when: the quickest answer to "my workflow is stuck
in SCHEDULED". That finding is information, never a failure (a worker may simply not be started
yet), and reading it changes nothing on the server. Orkes records a poll only once it passed
authorisation, so a worker refused with 401/403 shows as not polling.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from orkes_provision.access.explain import access_findings, check_worker_role
from orkes_provision.access.holdings import Holding, read_access
from orkes_provision.access.keyage import oldest_active, policy_text
from orkes_provision.credentials.delivery import Hints
from orkes_provision.errors import AuthenticationError, NotFound, ProvisionError, ServerUnavailable
from orkes_provision.orkes.models import AccessKey, Application, PollData

if TYPE_CHECKING:
    from orkes_provision.credentials.stores import StoredKey
    from orkes_provision.orkes.client import OrkesClient

WORKER_ROLES = {"WORKER", "UNRESTRICTED_WORKER", "ADMIN"}
# An SDK worker polls every 100 ms, and backs off to at most 60 s after errors: a poll older than
# this means no worker is polling now.
RECENT_POLL_SECONDS = 60


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    problem: str
    fix: str | None = None
    info: bool = False  # information only (poll data): never a failure
    warning: bool = False  # worth acting on (a key older than the policy), but no worker is refused for it

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "ok": self.ok, "message": self.problem, "fix": self.fix, "info": self.info,
                "warning": self.warning}


@dataclass(frozen=True)
class KeyPolicy:
    """How old an ACTIVE key may get (``--max-key-age``, or ``keyMaxAge`` in an environment file: ``source``)."""

    limit: timedelta
    source: str
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass
class DoctorReport:
    app: str | None
    app_id: str | None = None
    findings: list[Finding] = field(default_factory=list)
    polls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # task -> who polled it, when
    access: list[Holding] = field(default_factory=list)  # how each task and workflow checked is held
    summary: str = "All checks passed: a worker with this key can poll these tasks."

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def add(self, check: str, ok: bool, message: str, fix: str | None = None) -> None:
        self.findings.append(Finding(check, ok, message, None if ok else fix))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"app": self.app, "appId": self.app_id, "ok": self.ok,
                               "findings": [f.to_dict() for f in self.findings]}
        if self.polls:
            out["polls"] = self.polls
        if self.access:
            out["access"] = [h.to_dict() for h in self.access]
        return out

    def render(self) -> str:
        lines = []
        for f in self.findings:
            level = 'info' if f.info else 'warn' if f.warning else 'ok ' if f.ok else 'FAIL'
            lines.append(f"{level} {f.check}: {f.problem}")
            if f.fix:
                lines.append(f"     {'hint' if f.info else 'fix'}: {f.fix}")
        lines.append(self.summary if self.ok else f"{len(self.problems)} problem(s) found.")
        return "\n".join(lines)


def diagnose(client: OrkesClient, *, app: str | None, tasks: list[str], key: StoredKey | None,
             server: str, hints: Hints | None = None, require_tasks: bool = False, polls: bool = False,
             now_ms: Callable[[], int] | None = None, key_policy: KeyPolicy | None = None,
             workflows: list[str] | None = None, domains: tuple[str, ...] = ()) -> DoctorReport:
    """Run every check that applies; stop early only where later checks cannot mean anything.

    ``hints`` renders the fixing commands (with the store and profile they need); ``require_tasks``
    makes "no task to check" a finding (``provision doctor``: a pass that checked no grant is no pass),
    unless ``workflows`` are named: a starter of them polls nothing and needs no WORKER role.
    ``polls`` adds what the server's poll data says about each existing task (``now_ms``, epoch
    milliseconds, is the clock its times are compared with). ``key_policy`` adds a warning when an
    ACTIVE key is older than it allows. ``domains`` are the domains the worker polls in.
    """
    workflows = workflows or []
    report = DoctorReport(app=app)
    if workflows:
        report.summary = f"All checks passed: this key can {'poll these tasks and ' if tasks else ''}start these " \
                         "workflows."
    name = app or (key.app if key else None) or "APP"
    hints = replace(hints, app=name) if hints is not None else Hints(app=name)
    try:
        application = _find_application(client, report, name, app, key, hints)
    except ServerUnavailable as err:
        report.add("server", False, err.message, "check --server / CONDUCTOR_SERVER_URL and that the server is up")
        return report
    report.findings.insert(0, Finding("server", True, f"{server} answers"))
    if application is None:
        return report
    report.app_id = application.id
    report.app = application.name
    name = application.name
    hints = replace(hints, app=name)
    if key is None:
        report.add("key", False, f"no key for {name} in the store", hints.create_app("--worker", tasks=tasks))
    else:
        _check_key(client, report, application, key, hints, key_policy)
    missing_defs = _access_checks(client, report, application, tasks, workflows, domains, hints,
                                  require_tasks=require_tasks)
    if missing_defs is None:
        return report
    if polls:
        now = now_ms() if now_ms is not None else int(time.time() * 1000)
        for task in tasks:
            if task not in missing_defs:
                _check_polls(client, report, name, task, now, hints)
    return report


def _access_checks(client: OrkesClient, report: DoctorReport, application: Application, tasks: list[str],
                   workflows: list[str], domains: tuple[str, ...], hints: Hints, *,
                   require_tasks: bool) -> list[str] | None:
    """The role (for a worker) and what each task and workflow needs; the task definitions missing,
    ``None`` when nothing was named."""
    view = read_access(client, application, grants=bool(tasks or workflows))
    if tasks or not workflows:
        check_worker_role(report, view, application.name, hints)
    if not tasks and not workflows:
        if require_tasks:
            report.add("task", False, f"no task checked: {application.name} holds EXECUTE on no task definition "
                                      "and no task was named, so a worker of it could poll nothing",
                       "grant the tasks the worker polls ('provision grant APP TASK...'), or name them with --task "
                       "(a starter: --workflow WORKFLOW)")
        return None
    return access_findings(client, report, view, tasks=tasks, workflows=workflows, domains=domains, hints=hints,
                           rerun=Hints.doctor)


def _check_polls(client: OrkesClient, report: DoctorReport, app: str, task: str, now: int, hints: Hints) -> None:
    try:
        polled = sorted(client.get_poll_data(task), key=lambda p: -p.last_poll_time)
    except ProvisionError as err:
        report.findings.append(Finding("poll", True, f"cannot read the poll data of task {task}: {err.message}",
                                       err.hint, info=True))
        return
    report.polls[task] = [{"workerId": p.worker_id, "domain": p.domain, "lastPollTime": p.last_poll_time,
                           "secondsAgo": _seconds_ago(p, now)} for p in polled]
    # Runnable as printed but for the worker's own command line (a project's 'worker run' works too).
    start = f"start a worker that polls {task}: {hints.run()}"
    if not polled:
        report.findings.append(Finding("poll", True, f"no worker has polled task {task} (a workflow waiting on it "
                                       "stays SCHEDULED)", start, info=True))
        return
    recent = [p for p in polled if _seconds_ago(p, now) <= RECENT_POLL_SECONDS]
    if not recent:
        report.findings.append(Finding(
            "poll", True, f"no worker polled task {task} in the last {RECENT_POLL_SECONDS}s "
            f"(last: {_who(polled[0])} {_ago(_seconds_ago(polled[0], now))} ago)", start, info=True))
        return
    more = f" (and {len(recent) - 1} more worker(s))" if len(recent) > 1 else ""
    report.findings.append(Finding(
        "poll", True, f"{_who(recent[0])} polled task {task} {_ago(_seconds_ago(recent[0], now))} ago{more}",
        info=True))


def _seconds_ago(poll: PollData, now: int) -> int:
    # A server clock ahead of ours would make it negative: that is "just now".
    return max(0, (now - poll.last_poll_time) // 1000)


def _who(poll: PollData) -> str:
    worker = f"worker {poll.worker_id}" if poll.worker_id else "a worker with no worker id"
    return worker + (f" (domain {poll.domain})" if poll.domain else "")


def _ago(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 90 * 60:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _find_application(client: OrkesClient, report: DoctorReport, name: str, app: str | None,
                      key: StoredKey | None, hints: Hints) -> Application | None:
    if key is not None:
        try:
            return client.get_application_by_key(key.key_id)
        except NotFound:
            report.add("key", False, f"key {key.key_id} in the store is unknown to the server (deleted?)",
                       hints.new_key())
            return None
    matches = [a for a in client.list_applications() if a.name == name]
    if not matches:
        report.add("application", False, f"no application named {name}", hints.create_app("--worker"))
        return None
    return matches[0]


def _check_key(client: OrkesClient, report: DoctorReport, application: Application, key: StoredKey,
               hints: Hints, policy: KeyPolicy | None = None) -> None:
    keys = {k.id: k for k in client.list_keys(application.id)}
    known = keys.get(key.key_id)
    if known is None:
        report.add("key", False, f"key {key.key_id} does not belong to {application.name}", hints.new_key())
        return
    if known.status != "ACTIVE":
        report.add("key", False, f"key {key.key_id} is {known.status}", hints.keys("activate", key.key_id))
        return
    try:
        client.exchange_token(key.key_id, key.secret)
    except AuthenticationError:
        report.add("key", False, f"the server rejects the stored secret of key {key.key_id}", hints.new_key())
        return
    except ProvisionError as err:
        report.add("key", False, f"token exchange failed: {err.message}", err.hint)
        return
    report.add("key", True, f"key {key.key_id} is ACTIVE and authenticates")
    if policy is not None:
        _check_age(report, list(keys.values()), policy, hints)


def _check_age(report: DoctorReport, keys: list[AccessKey], policy: KeyPolicy, hints: Hints) -> None:
    oldest = oldest_active(keys, policy.now())
    if oldest is None:
        return
    if oldest.older_than(policy.limit):
        report.findings.append(Finding(
            "key-age", True, f"ACTIVE {oldest.describe()}, older than {policy_text(policy.limit)} ({policy.source})",
            hints.keys("rotate"), warning=True))
    else:
        report.findings.append(Finding(
            "key-age", True, f"the oldest ACTIVE {oldest.describe()}, within {policy_text(policy.limit)} "
                             f"({policy.source})"))
