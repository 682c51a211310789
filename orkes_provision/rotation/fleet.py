"""Rotation by policy for many applications at once: ``provision keys rotate --all``.

Which applications (``select_applications``):

- every application whose key this machine delivered on the server (``credentials.delivery``:
  the deliveries record), or
- those tagged ``environment=NAME`` on the server (what ``apply`` of environment NAME made its own), or
- those named.

Which of them are due (``rotate_fleet``): those with a rotation still pending (an earlier run
stopped half-way: it is finished whatever the age), else those whose oldest ACTIVE key is older
than ``older_than`` by the server's ``createdAt`` (all of them without ``older_than``). An
application with no ACTIVE key is not rotated: a key someone deactivated (a leak?) must not come
back from a nightly job.

Each due application goes through the one rotation state machine (``rotate.rotate_key``: its
lock, its record, resumable after any failure), in a bounded thread pool of ``parallelism``. One
failing application does not stop the others; the report lists each with what happened, and the
exit code (``FleetReport.exit_code``) is the first failure's, in report order (by name). A rerun
finishes what was left: a failed rotation is pending, and pending rotations are always due.

With ``canary`` N (``--canary N``), the first N due applications (by name) go first, each followed
by the canary's proof (``canary.wait_on_new_key``: its workers on this machine report running the
new key alone); only then are the others rotated. In this mode the first failure, a canary's or
another's, stops the job: applications not yet started are left untouched and reported
``skipped``, and an application that cannot be resolved stops it before anything is rotated.

``environment_rotator`` is the same rotation for ``apply``, when ``keyMaxAge`` asks for one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from orkes_provision.access.keyage import OldestKey, age_seconds, oldest_active, policy_text
from orkes_provision.credentials.delivery import Hints, deliveries, deliveries_path, forget_deliveries
from orkes_provision.environments.apply import owning_environment
from orkes_provision.errors import ConfigError, Conflict, Interrupted, NotFound, ProvisionError, UsageError
from orkes_provision.orkes.models import Application
from orkes_provision.orkes.urls import normalize_server_url
from orkes_provision.rotation.canary import wait_on_new_key
from orkes_provision.rotation.record import load_progress, utcnow
from orkes_provision.rotation.rotate import (
    DEFAULT_GRACE,
    DEFAULT_SWITCH_WAIT,
    NOT_REDELIVERABLE,
    RotationReport,
    rotate_key,
)

if TYPE_CHECKING:
    from orkes_provision.access.changes import RotateKey
    from orkes_provision.credentials.stores import CredentialStore
    from orkes_provision.orkes.client import OrkesClient

DEFAULT_PARALLELISM = 4
Clock = Callable[[], datetime]
RESULTS = ("rotated", "resumed", "not_due", "failed", "gone", "skipped")
DEFAULT_CANARY_WAIT = 60.0


@dataclass(frozen=True)
class Target:
    """One application to consider: found on the server (``app``), or why it could not be (``error``)."""

    name: str
    app: Application | None = None
    error: ProvisionError | None = None
    # Its name is shared with another application: it is then named by id (in rotate_key and hints).
    ambiguous: bool = False

    @property
    def ref(self) -> str:
        return self.app.id if self.app is not None and self.ambiguous else self.name


@dataclass
class Selection:
    """The applications a fleet rotation considers, and how they were chosen."""

    how: str  # "deliveries", "environment" or "named"
    targets: list[Target]
    environment: str | None = None
    # Applications this machine delivered a key of that no longer exist on the server.
    gone: list[Target] = field(default_factory=list)
    # Servers this machine delivered keys on, other than the one rotated (named in the report).
    other_servers: list[str] = field(default_factory=list)


def select_applications(client: OrkesClient, server: str, *, names: Sequence[str] = (),
                        environment: str | None = None) -> Selection:
    """The applications named, else those tagged ``environment=NAME``, else those this machine delivered to.

    One list request; an application that looks deleted is confirmed with a read of its id.
    Raises ``ConfigError`` when the deliveries record lists nothing for ``server`` (a job run
    as another user, or with another state directory, must not pass by doing nothing) and
    ``NotFound`` when no application is tagged with ``environment``.
    """
    if names and environment:
        raise UsageError("name applications or give --environment, not both", "use one of the two")
    apps = client.list_applications()
    by_name: dict[str, list[Application]] = {}
    for app in apps:
        by_name.setdefault(app.name, []).append(app)
    if names:
        return Selection("named", [_resolve(ref, apps, by_name) for ref in dict.fromkeys(names)])
    if environment is not None:
        tagged = sorted((a for a in apps if owning_environment(a) == environment), key=lambda a: (a.name, a.id))
        if not tagged:
            raise NotFound(f"no application on {server} is tagged environment={environment}",
                           "check the name: 'provision apps list' shows each application's tags")
        return Selection("environment", [Target(a.name, a, ambiguous=len(by_name[a.name]) > 1) for a in tagged],
                         environment=environment)
    return _delivered(client, server, apps, by_name)


def _resolve(ref: str, apps: list[Application], by_name: dict[str, list[Application]]) -> Target:
    named = by_name.get(ref, [])
    if len(named) == 1:
        return Target(ref, named[0])
    if len(named) > 1:
        ids = ", ".join(sorted(a.id for a in named))
        return Target(ref, error=Conflict(f"{len(named)} applications are named '{ref}' (ids: {ids})",
                                          "name the one to rotate by its id"))
    by_id = next((a for a in apps if a.id == ref), None)
    if by_id is not None:
        return Target(by_id.name, by_id, ambiguous=len(by_name[by_id.name]) > 1)
    return Target(ref, error=NotFound(f"no application is named '{ref}' or has that id",
                                      "'provision apps list' shows the applications"))


def _delivered(client: OrkesClient, server: str, apps: list[Application],
               by_name: dict[str, list[Application]]) -> Selection:
    here = normalize_server_url(server, insecure_http=True)
    every = deliveries()
    newest: dict[str, str] = {}  # app name -> the application id of its newest delivery
    for delivery in every:  # newest first
        if delivery.server == here:
            newest.setdefault(delivery.app, delivery.app_id)
    others = sorted({d.server for d in every} - {here})
    if not newest:
        elsewhere = f" (it lists keys delivered on {', '.join(others)})" if others else ""
        raise ConfigError(f"this machine delivered no application key on {server}: the deliveries record "
                          f"{deliveries_path()} lists none{elsewhere}",
                          "run the job as the user (or with the ORKES_PROVISION_STATE_DIR) that provisioned the "
                          "keys, or name the applications, or give --environment NAME")
    targets: list[Target] = []
    gone: list[Target] = []
    ids = {a.id: a for a in apps}
    for name, app_id in sorted(newest.items()):
        same = by_name.get(name, [])
        if app_id in ids:
            targets.append(Target(name, ids[app_id], ambiguous=len(same) > 1))
        elif same:
            # Made again under the same name: the rotation judges its keys against the deliveries.
            targets.append(_resolve(name, apps, by_name))
        elif _deleted(client, app_id):
            gone.append(Target(name))
        else:
            targets.append(Target(name, error=NotFound(f"application {name} ({app_id}) is not in the list the "
                                                       "server gives these credentials",
                                                       "use provisioning credentials that may see every "
                                                       "application (an ADMIN application's key)")))
    return Selection("deliveries", targets, gone=gone, other_servers=others)


def _deleted(client: OrkesClient, app_id: str) -> bool:
    # The list may leave out what these credentials may not see: only a 404 for the id says it is gone.
    try:
        client.get_application(app_id)
    except NotFound:
        return True
    except ProvisionError:
        return False
    return False


@dataclass
class AppOutcome:
    """What a fleet rotation did with one application (``result`` is one of ``RESULTS``)."""

    app: str
    app_id: str | None
    result: str
    reason: str = ""
    oldest: OldestKey | None = None
    report: RotationReport | None = None
    error: ProvisionError | None = None

    def line(self) -> str:
        """The summary line of the text report (a failure adds its hint on the next line)."""
        if self.result in ("rotated", "resumed") and self.report is not None:
            done = "finished an interrupted rotation" if self.result == "resumed" else "rotated"
            return (f"{self.app}: {done} ({self.reason}): new key {self.report.new_key_id}, retired "
                    f"{', '.join(self.report.deactivated) or 'none'}")
        if self.result == "not_due":
            return f"{self.app}: not due ({self.reason})"
        if self.result == "gone":
            return f"{self.app}: gone ({self.reason})"
        if self.result == "skipped":
            return f"{self.app}: untouched ({self.reason})"
        assert self.error is not None
        return f"{self.app}: failed: {self.error.message}\n  hint: {self.error.hint}"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "app": self.app, "appId": self.app_id, "result": self.result, "reason": self.reason,
            "oldestKeyId": self.oldest.key_id if self.oldest else None,
            "ageSeconds": age_seconds(self.oldest.age) if self.oldest else None}
        if self.report is not None:
            data["rotation"] = self.report.to_dict()
        if self.error is not None:
            data["error"] = self.error.to_dict()
        return data


@dataclass
class FleetReport:
    server: str
    selection: Selection
    older_than: timedelta | None
    parallelism: int
    outcomes: list[AppOutcome]
    seconds: float
    canaries: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[AppOutcome]:
        return [o for o in self.outcomes if o.result == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def exit_code(self) -> int:
        """0 when every application rotated or needed nothing, else the first failure's (report order)."""
        first = next((o.error for o in self.outcomes if o.error is not None), None)
        return 0 if first is None else first.code

    def counts(self) -> dict[str, int]:
        return {_camel(r): sum(1 for o in self.outcomes if o.result == r) for r in RESULTS}

    def to_dict(self) -> dict[str, Any]:
        return {"server": self.server, "selection": self.selection.how, "environment": self.selection.environment,
                "olderThanSeconds": age_seconds(self.older_than), "parallelism": self.parallelism,
                "seconds": round(self.seconds, 3), "ok": self.ok, "exitCode": self.exit_code,
                "counts": self.counts(), "canaries": self.canaries,
                "applications": [o.to_dict() for o in self.outcomes],
                "otherServers": self.selection.other_servers}

    def render(self) -> str:
        lines = [o.line() for o in self.outcomes]
        counts = self.counts()
        rotated = counts["rotated"] + counts["resumed"]
        summary = (f"{rotated} rotated, {counts['notDue']} not due, {counts['failed']} failed"
                   + (f", {counts['gone']} gone" if counts["gone"] else "")
                   + (f", {counts['skipped']} untouched" if counts["skipped"] else "")
                   + f" of {len(self.outcomes)} application{'' if len(self.outcomes) == 1 else 's'} on "
                   f"{self.server} in {self.seconds:.1f}s (parallelism {self.parallelism})")
        lines.append(summary)
        if self.canaries:
            lines.append(f"Canaries: {', '.join(self.canaries)}")
        if self.selection.other_servers:
            lines.append("Not rotated here: keys this machine delivered on "
                         f"{', '.join(self.selection.other_servers)} (run the job with credentials for each server)")
        return "\n".join(lines)

    def failure(self) -> ProvisionError | None:
        """The error the process ends with: the first failure's exit code and kind, naming how many failed."""
        failed = self.failed
        if not failed:
            return None
        first = failed[0]
        assert first.error is not None
        untouched = self.counts()["skipped"]
        return FleetFailure(first.error, f"{len(failed)} of {len(self.outcomes)} application rotation(s) failed"
                                         + (f", {untouched} left untouched" if untouched else "")
                                         + f"; first: {first.app}: {first.error.message}")


class FleetFailure(ProvisionError):
    """Some applications of a fleet rotation failed; ends the process with the first one's exit code and kind."""

    def __init__(self, first: ProvisionError, message: str) -> None:
        # The first failure's hint ends with a command, printed on its application's line (or in the
        # report); appended here, text after it would make that command fail when run as printed.
        super().__init__(message, "fix what the report says of each failed application (its hint), then run "
                                  "the same command again: it finishes what was left")
        self.first = first
        self.exit_override = first.code

    def to_dict(self) -> dict[str, object]:
        return super().to_dict() | {"error": self.first.kind}


def rotate_fleet(client: OrkesClient, *, server: str, selection: Selection, older_than: timedelta | None = None,
                 parallelism: int = DEFAULT_PARALLELISM, grace: timedelta = DEFAULT_GRACE,
                 switch_wait: float = DEFAULT_SWITCH_WAIT, actor: str | None = None,
                 retire_undelivered: bool = False, now: Clock = utcnow,
                 sleep: Callable[[float], None] = time.sleep,
                 on_step: Callable[[str, str], None] | None = None,
                 hint_options: tuple[str, ...] = (),
                 rotate: Callable[..., RotationReport] = rotate_key,
                 canary: int = 0, canary_wait: float = DEFAULT_CANARY_WAIT,
                 wait_canary: Callable[..., Any] = wait_on_new_key) -> FleetReport:
    """Rotate the due applications of ``selection``, ``parallelism`` at a time; see the module docstring.

    ``now`` is the clock keys' ages are measured with (tests make keys old with it); ``on_step``
    gets (application, progress line); ``rotate`` is ``rotate_key`` (tests wrap it). ``canary``
    N > 0 rotates N due applications first and waits up to ``canary_wait`` seconds for each one's
    workers to report the new key; then the rest, stopping at the first failure.
    """
    if canary < 0:
        raise UsageError("--canary must be at least 1", "give how many applications to rotate first")
    if parallelism < 1:
        raise UsageError("--parallelism must be at least 1", "give how many applications to rotate at once")
    if older_than is not None and older_than < timedelta(0):
        raise UsageError("--older-than cannot be negative", "write it like 30d or 12h")
    started = time.monotonic()
    stopping = threading.Event()
    halted: list[str] = []  # canary mode: the application whose failure stopped the job
    halt_lock = threading.Lock()
    report_step = on_step or (lambda app, line: None)

    def stoppable_sleep(seconds: float) -> None:
        # A switch wait that Ctrl-C must not prolong: the rotation stops there, and a rerun resumes it.
        if stopping.is_set():
            raise Interrupted("interrupted")
        if sleep is not time.sleep:
            sleep(seconds)
        elif stopping.wait(seconds):
            raise Interrupted("interrupted")

    def one(target: Target, prove: bool = False) -> AppOutcome:
        with halt_lock:
            if halted:
                return AppOutcome(target.name, target.app.id if target.app else None, "skipped",
                                  f"not started: {halted[0]} failed first")
        outcome = rotate_one(target, prove)
        if canary and outcome.result == "failed":
            with halt_lock:
                halted.append(outcome.app)
        return outcome

    def rotate_one(target: Target, prove: bool) -> AppOutcome:
        if target.error is not None or target.app is None:
            return AppOutcome(target.name, None, "failed", error=target.error)
        app = target.app

        def step(line: str) -> None:
            if stopping.is_set():
                raise Interrupted("interrupted")
            report_step(app.name, line)

        oldest: OldestKey | None = None
        try:
            due, oldest, reason = _due(client, server, app, older_than, now)
            if not due:
                return AppOutcome(app.name, app.id, "not_due", reason, oldest)
            report = rotate(client, server=server, app=target.ref, grace=grace, switch_wait=switch_wait, actor=actor,
                            now=now, sleep=stoppable_sleep, on_step=step, retire_undelivered=retire_undelivered,
                            hints=Hints(app=target.ref, options=hint_options))
        except ProvisionError as err:
            return AppOutcome(app.name, app.id, "failed", error=err, oldest=oldest)
        if prove:
            try:
                found = wait_canary(server, app.name, report.new_key_id, canary_wait, sleep=stoppable_sleep)
            except ProvisionError as err:
                return AppOutcome(app.name, app.id, "failed", f"rotated to {report.new_key_id}, not proven",
                                  oldest, report, error=err)
            step(f"canary: {', '.join(r.what for r in found)} run{'s' if len(found) == 1 else ''} "
                 f"key {report.new_key_id}")
        return AppOutcome(app.name, app.id, report.result, reason, oldest, report)

    def run_all(targets: Sequence[Target], prove: bool) -> list[AppOutcome]:
        with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="rotate") as pool:
            futures = [pool.submit(one, target, prove) for target in targets]
            try:
                return [future.result() for future in futures]
            except BaseException:
                stopping.set()
                pool.shutdown(wait=False, cancel_futures=True)
                raise

    canaries: list[Target] = []
    if canary:
        canaries = _choose_canaries(client, server, selection, canary, older_than, now)
        unresolved = [t for t in selection.targets if t.error is not None or t.app is None]
        if unresolved:  # resolve everything before rotating anything
            halted.append(unresolved[0].name)
            outcomes = [AppOutcome(t.name, None, "failed", error=t.error) for t in unresolved]
            outcomes += run_all([t for t in selection.targets if t not in unresolved], False)
        else:
            outcomes = run_all(canaries, True)
            outcomes += run_all([t for t in selection.targets if t not in canaries], False)
    else:
        outcomes = run_all(selection.targets, False)
    for target in selection.gone:
        forget_deliveries(server, target.name)
        outcomes.append(AppOutcome(target.name, None, "gone", "no longer on the server; this machine forgot "
                                                              "where its keys went"))
    outcomes.sort(key=lambda o: (o.app, o.app_id or ""))
    return FleetReport(server=server, selection=selection, older_than=older_than, parallelism=parallelism,
                       outcomes=outcomes, seconds=time.monotonic() - started, canaries=[t.name for t in canaries])


def _choose_canaries(client: OrkesClient, server: str, selection: Selection, count: int,
                     older_than: timedelta | None, now: Clock) -> list[Target]:
    """The first ``count`` due applications, by name (an application is due as ``_due`` says)."""
    chosen: list[Target] = []
    for target in sorted(selection.targets, key=lambda t: t.name):
        if len(chosen) == count:
            break
        if target.app is not None and target.error is None and _due(client, server, target.app, older_than, now)[0]:
            chosen.append(target)
    return chosen


def _due(client: OrkesClient, server: str, app: Application, older_than: timedelta | None,
         now: Clock) -> tuple[bool, OldestKey | None, str]:
    oldest = oldest_active(client.list_keys(app.id), now())
    pending = load_progress(server, app.name)
    if pending is not None and pending.app_id == app.id:
        return True, oldest, f"a rotation stopped after '{pending.step}' was pending"
    if oldest is None:
        return False, None, "no ACTIVE key to rotate"
    if older_than is None:
        return True, oldest, oldest.describe()
    if oldest.older_than(older_than):
        return True, oldest, f"{oldest.describe()}, older than {policy_text(older_than)}"
    return False, oldest, f"{oldest.describe()}, not older than {policy_text(older_than)}"


def _camel(result: str) -> str:
    head, *rest = result.split("_")
    return head + "".join(part.title() for part in rest)


# ----- apply: keyMaxAge ------------------------------------------------------------------------

def environment_rotator(client: OrkesClient, *, server: str, stores: Mapping[str, CredentialStore],
                        actor: str | None, switch_wait: float = DEFAULT_SWITCH_WAIT,
                        grace: timedelta = DEFAULT_GRACE, now: Clock = utcnow,
                        on_step: Callable[[str, str], None] | None = None,
                        hint_options: tuple[str, ...] = ()) -> Callable[[RotateKey], str]:
    """What ``apply`` calls for a ``rotate_key`` change: the rotation of ``keys rotate``, into the
    application's store in the environment file and everywhere else this machine delivered its key.
    Returns the new key id."""
    report_step = on_step or (lambda app, line: None)

    def rotate(change: RotateKey) -> str:
        name = change.app
        specs: list[str] | None = None
        if load_progress(server, name) is None:  # a pending rotation keeps the stores it started with
            delivered = [d.store for d in deliveries(server, name) if d.store not in NOT_REDELIVERABLE]
            specs = list(dict.fromkeys([stores[name].spec, *delivered]))
        report = rotate_key(client, server=server, app=change.app_id or name, store_specs=specs, grace=grace,
                            switch_wait=switch_wait, actor=actor, now=now,
                            on_step=lambda line: report_step(name, line),
                            hints=Hints(app=name, options=hint_options))
        return report.new_key_id

    return rotate

