"""Zero-downtime key rotation, measured: a supervised SDK worker keeps completing workflows while
its key is rotated under it.

What it does (about 90 s with the defaults, everything on loopback):

1. starts a sandbox in a temporary directory;
2. ``provision app greetings-worker --worker --grant greetings --register-tasks --store env-file:...``;
   registers the ``greetings_flow`` workflow (one SIMPLE task ``greetings``);
3. starts ``provision run --supervise --app greetings-worker -- python run_worker.py``, a real
   conductor-python ``TaskHandler`` worker, in its own process group;
4. starts ``--rate`` greetings workflows a second for ``--duration`` seconds, and at
   ``--rotate-at`` seconds runs ``provision keys rotate greetings-worker --grace 0s --json``;
5. waits (bounded by ``--drain``) for the workflows to finish, then reports workflows started,
   completed, failed and stuck (not finished by then), the longest time from start to end of any
   workflow (``maxWorkflowSeconds``; for one still running, the time until it was last read), tasks
   retried, tasks the supervisor handed back to the queue, and the 401/403 answers in the
   sandbox's ``requests.log`` from the moment the supervisor began the switch to the end. A 401
   carries no caller in the log (the token was refused before it was identified), so every
   401/403 of that window is counted, whoever received it: the figure can only be too high.

With ``--task-defaults`` the task definition stays as ``provision app --register-tasks`` and the
server make it (``responseTimeoutSeconds`` 600, ``retryDelaySeconds`` 60): a task the old worker
held when it was stopped (the SDK does not finish its tasks on SIGTERM) reaches the new worker
only because the supervisor hands it back to the queue; without that it would wait 660 s. Without
the flag the definition gets ``responseTimeoutSeconds=5`` and ``retryDelaySeconds=0``, as earlier
versions of this benchmark had it, which hides a task lost with a stopped worker behind a 5 s retry.

Run: ``.venv/bin/python benchmarks/rotation_zero_downtime.py [--task-defaults] [--json] [--keep]``.
Exit status 0 when the targets hold (every workflow completed, none failed or stuck, no 401/403
after the switch, and, with ``--task-defaults``, ``maxWorkflowSeconds`` under ``--max-workflow-
seconds``), 1 otherwise. Every process started here is stopped at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orkes_provision.errors import ProvisionError
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.sandbox.harness import SandboxProcess

PROVISION = str(Path(sys.executable).with_name("provision"))
APP = "greetings-worker"
TASK = "greetings"
WORKFLOW = "greetings_flow"
TERMINAL = {"COMPLETED", "FAILED", "TERMINATED", "TIMED_OUT"}

RUN_WORKER = '''
import os
import time

from conductor.client.automator.task_handler import TaskHandler
from conductor.client.configuration.configuration import Configuration
from conductor.client.worker.worker import Worker


WORK_SECONDS = float(os.environ.get("BENCH_TASK_SECONDS") or 0)


def greetings(name: str) -> str:
    if WORK_SECONDS:
        time.sleep(WORK_SECONDS)  # a task that takes time: a stopped worker is then likely to hold one
    return f"Hello, {name}"


if __name__ == "__main__":
    # Configuration() reads CONDUCTOR_SERVER_URL, CONDUCTOR_AUTH_KEY and CONDUCTOR_AUTH_SECRET,
    # which 'provision run' injects from the store (and again, for the new worker, after a rotation).
    handler = TaskHandler(workers=[Worker("greetings", greetings, poll_interval=100)],
                          configuration=Configuration(), scan_for_annotated_workers=False, monitor_processes=False)
    handler.start_processes()
    handler.join_processes()
'''


@dataclass
class Timeline:
    """Wall-clock moments (UTC) of the run, comparable with requests.log times."""

    stream_start: datetime | None = None
    stream_end: datetime | None = None
    rotate_start: datetime | None = None
    rotate_end: datetime | None = None
    switch_start: datetime | None = None  # the supervisor saw the new key and started a new worker
    old_worker_stopped: datetime | None = None
    requeued: list[tuple[datetime, list[str]]] = field(default_factory=list)  # tasks handed back, and when
    events: list[tuple[datetime, str]] = field(default_factory=list)


def now() -> datetime:
    return datetime.now(UTC)


def log_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@contextlib.contextmanager
def process_group(cmd: list[str], **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A process in its own group; the whole group is stopped on exit (TERM, then KILL)."""
    proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # children the leader left behind
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def run_provision(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([PROVISION, *args], env=env, capture_output=True, text=True, timeout=timeout,
                            check=False)
    if result.returncode != 0:
        raise SystemExit(f"provision {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def follow_supervisor(stream: Any, timeline: Timeline, log_path: Path) -> None:
    """Timestamp the supervisor's JSON event lines as they come (they carry no time themselves)."""
    with log_path.open("a") as log:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            stamp = now()
            log.write(f"{stamp.isoformat()} {line}\n")
            log.flush()
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("event") if isinstance(event, dict) else None
            if not isinstance(kind, str):
                continue
            timeline.events.append((stamp, kind))
            if kind == "key-changed" and timeline.switch_start is None:
                timeline.switch_start = stamp
            if kind == "rotated" and timeline.old_worker_stopped is None:
                timeline.old_worker_stopped = stamp
            if kind == "requeued":
                timeline.requeued.append((stamp, [str(t) for t in event.get("taskIds") or []]))


def wait_until_worker_serves(client: OrkesClient, timeout: float = 60.0) -> float:
    """Start one workflow and wait for it to complete: the worker is polling. Returns the seconds taken."""
    started = time.monotonic()
    workflow_id = client.start_workflow(WORKFLOW, {"name": "warm-up"})
    deadline = started + timeout
    while time.monotonic() < deadline:
        if client.get_workflow(workflow_id, include_tasks=False).get("status") == "COMPLETED":
            return time.monotonic() - started
        time.sleep(0.2)
    raise SystemExit(f"the worker did not complete a workflow within {timeout:.0f}s")


def stream_workflows(client: OrkesClient, rate: float, duration: float, started: list[str],
                     start_errors: list[str], stop: threading.Event) -> None:
    """Start ``rate`` workflows a second for ``duration`` seconds, on schedule (bounded count)."""
    total = int(rate * duration)
    t0 = time.monotonic()
    for i in range(total):
        if stop.is_set():
            return
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        try:
            started.append(client.start_workflow(WORKFLOW, {"name": f"guest-{i}"}))
        except ProvisionError as err:
            start_errors.append(err.message)


def collect(client: OrkesClient, ids: list[str], drain: float) -> dict[str, dict[str, Any]]:
    """The final state of every workflow, waiting up to ``drain`` seconds for the unfinished ones.

    Each gets ``readAtMs``: when it was read (for one still running, the lower bound of its duration).
    """
    results: dict[str, dict[str, Any]] = {}
    pending = list(ids)
    deadline = time.monotonic() + drain
    with ThreadPoolExecutor(max_workers=8) as pool:
        while pending:
            for workflow_id, workflow in zip(pending, pool.map(lambda w: client.get_workflow(w), pending), strict=True):
                workflow["readAtMs"] = int(time.time() * 1000)
                results[workflow_id] = workflow
            pending = [w for w in pending if results[w].get("status") not in TERMINAL]
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(1.0)
    return results


def auth_failures(requests_log: Path, since: datetime | None, until: datetime | None = None) -> dict[str, int]:
    counts: dict[str, int] = {}
    if since is None:
        return counts
    for line in requests_log.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        when = log_time(row["time"])
        if when < since or (until is not None and when > until) or row.get("status") not in (401, 403):
            continue
        key = f"{row['status']} {row['method']} {row['path']}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def app_requests(requests_log: Path, caller: str, since: datetime | None) -> int:
    if since is None:
        return 0
    count = 0
    for line in requests_log.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row.get("caller") == caller and log_time(row["time"]) >= since:
            count += 1
    return count


def workflow_seconds(workflow: dict[str, Any]) -> float:
    """Start to end as the server recorded them; for one not finished, start to when it was last read."""
    start = int(workflow.get("startTime") or workflow.get("createTime") or 0)
    end = int(workflow.get("endTime") or 0) or int(workflow.get("readAtMs") or 0)
    return max(0.0, (end - start) / 1000) if start else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=6.0, help="workflows started per second (default 6)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of steady load (default 60)")
    parser.add_argument("--rotate-at", type=float, default=20.0, help="seconds into the load to rotate (default 20)")
    parser.add_argument("--switch-wait", type=float, default=None,
                        help="passed to 'keys rotate --switch-wait' (default: the command's own)")
    parser.add_argument("--drain", type=float, default=30.0, help="max seconds to wait for the last workflows")
    parser.add_argument("--task-defaults", action="store_true",
                        help="leave the task definition as the server makes it (responseTimeoutSeconds 600, "
                             "retryDelaySeconds 60) instead of shortening them")
    parser.add_argument("--task-seconds", type=float, default=0.0,
                        help="how long the worker spends on each task (default 0: it answers at once)")
    parser.add_argument("--max-workflow-seconds", type=float, default=15.0,
                        help="with --task-defaults, the target for the slowest workflow (default 15)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs) afterwards")
    args = parser.parse_args()
    if args.rate <= 0 or args.duration <= 0 or not 0 <= args.rotate_at < args.duration:
        parser.error("need rate > 0, duration > 0 and 0 <= rotate-at < duration")
    if not 0 <= args.task_seconds <= 60:
        parser.error("need 0 <= task-seconds <= 60")

    root = Path(tempfile.mkdtemp(prefix="rotation-bench-"))
    print(f"working in {root}", file=sys.stderr)
    timeline = Timeline()
    stop = threading.Event()
    try:
        with SandboxProcess(root / "sandbox") as sandbox:
            report = run(args, root, sandbox, timeline, stop)
            report["requestsLog"] = str(root / "sandbox" / "requests.log") if args.keep else None
    finally:
        stop.set()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(render(report))
    return 0 if report["targetsMet"] else 1


def run(args: argparse.Namespace, root: Path, sandbox: SandboxProcess, timeline: Timeline,
        stop: threading.Event) -> dict[str, Any]:
    load_at_start = os.getloadavg()  # the machine is shared: the figures depend on it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDUCTOR_", "ORKES_PROVISION_"))}
    env.update(sandbox.admin_env)
    env.update({"ORKES_PROVISION_STATE_DIR": str(root / "state"), "XDG_CONFIG_HOME": str(root / "config"),
                "BENCH_TASK_SECONDS": str(args.task_seconds)})
    env_file = root / "worker.env"
    store = f"env-file:{env_file}"
    run_provision(["app", APP, "--worker", "--grant", TASK, "--register-tasks", "--store", store], env)

    credentials = Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret)
    with OrkesClient(credentials, timeout=30) as admin:
        task_def = admin.get_task_def(TASK)
        if not args.task_defaults:
            # See the module docstring: a task lost with a stopped worker is handed out again after 5 s.
            task_def = task_def.model_copy(update={"response_timeout_seconds": 5, "retry_delay_seconds": 0,
                                                   "timeout_seconds": 60})
            admin.update_task_def(task_def)
        admin.register_workflow_def({
            "name": WORKFLOW, "version": 1, "schemaVersion": 2, "ownerEmail": "bench@example.com",
            "tasks": [{"name": TASK, "taskReferenceName": "greet", "type": "SIMPLE",
                       "inputParameters": {"name": "${workflow.input.name}"}}],
            "outputParameters": {"greeting": "${greet.output.result}"}})
        app_id = next(a.id for a in admin.list_applications() if a.name == APP)

        workdir = root / "worker"
        workdir.mkdir()
        (workdir / "run_worker.py").write_text(RUN_WORKER)
        supervisor_cmd = [PROVISION, "--json", "run", "--app", APP, "--store", store, "--task", TASK, "--supervise",
                          "--", sys.executable, str(workdir / "run_worker.py")]
        worker_log = (root / "worker.log").open("wb")
        try:
            with process_group(supervisor_cmd, env=env, cwd=workdir, stdin=subprocess.DEVNULL,
                               stdout=worker_log, stderr=subprocess.PIPE) as supervisor:
                follower = threading.Thread(target=follow_supervisor, daemon=True,
                                            args=(supervisor.stderr, timeline, root / "supervisor.log"))
                follower.start()
                warm_up = wait_until_worker_serves(admin)
                started: list[str] = []
                start_errors: list[str] = []
                streamer = threading.Thread(target=stream_workflows,
                                            args=(admin, args.rate, args.duration, started, start_errors, stop))
                timeline.stream_start = now()
                t0 = time.monotonic()
                streamer.start()
                time.sleep(max(0.0, t0 + args.rotate_at - time.monotonic()))
                rotate_args = ["keys", "rotate", APP, "--grace", "0s", "--json"]
                if args.switch_wait is not None:
                    rotate_args += ["--switch-wait", str(args.switch_wait)]
                timeline.rotate_start = now()
                rotation = json.loads(run_provision(rotate_args, env).stdout)
                timeline.rotate_end = now()
                streamer.join(timeout=args.duration + 60)
                stop.set()
                timeline.stream_end = now()
                results = collect(admin, started, args.drain)
                supervisor_alive = supervisor.poll() is None
        finally:
            worker_log.close()

    requests_log = sandbox.data_dir / "requests.log"
    statuses = [w.get("status") for w in results.values()]
    retried = sum(1 for w in results.values() for t in w.get("tasks") or [] if int(t.get("retryCount") or 0) > 0)
    durations = sorted(workflow_seconds(w) for w in results.values())
    requeued = [task for _, tasks in timeline.requeued for task in tasks]
    after_switch = auth_failures(requests_log, timeline.switch_start)
    target = {
        "started": len(started),
        "completed": statuses.count("COMPLETED"),
        "failed": sum(1 for s in statuses if s in ("FAILED", "TERMINATED", "TIMED_OUT")),
        "stuck": sum(1 for s in statuses if s not in TERMINAL),
    }
    slowest = durations[-1] if durations else 0.0
    met = (target["started"] == int(args.rate * args.duration) and target["completed"] == target["started"]
           and not target["failed"] and not target["stuck"] and not after_switch and not start_errors
           and (not args.task_defaults or slowest < args.max_workflow_seconds))

    def seconds(when: datetime | None) -> float | None:
        if when is None or timeline.stream_start is None:
            return None
        return round((when - timeline.stream_start).total_seconds(), 2)

    return {
        "rate": args.rate, "durationSeconds": args.duration, "workflowsStarted": target["started"],
        "workflowsCompleted": target["completed"], "workflowsFailed": target["failed"],
        "workflowsStuck": target["stuck"], "startErrors": len(start_errors), "tasksRetried": retried,
        "tasksRequeued": len(requeued), "taskDefaults": args.task_defaults, "taskSeconds": args.task_seconds,
        "taskDefinition": {"responseTimeoutSeconds": task_def.response_timeout_seconds,
                           "retryDelaySeconds": task_def.retry_delay_seconds, "retryCount": task_def.retry_count},
        "maxWorkflowSeconds": round(slowest, 2),
        "medianWorkflowSeconds": round(durations[len(durations) // 2], 2) if durations else None,
        "workflowsOver5Seconds": sum(1 for d in durations if d > 5),
        "loadAverageAtStart": [round(x, 2) for x in load_at_start],
        "loadAverage": [round(x, 2) for x in os.getloadavg()],
        "authFailuresAfterSwitch": sum(after_switch.values()), "authFailuresAfterSwitchByRequest": after_switch,
        "authFailuresWholeRun": sum(auth_failures(requests_log, timeline.stream_start).values()),
        "appRequestsAfterSwitch": app_requests(requests_log, f"app:{app_id}", timeline.switch_start),
        "warmUpSeconds": round(warm_up, 2),
        "timeline": {"rotateStart": seconds(timeline.rotate_start), "switchStart": seconds(timeline.switch_start),
                     "oldWorkerStopped": seconds(timeline.old_worker_stopped),
                     "tasksRequeued": [seconds(when) for when, _ in timeline.requeued],
                     "rotateEnd": seconds(timeline.rotate_end), "streamEnd": seconds(timeline.stream_end)},
        "rotation": {k: rotation.get(k) for k in ("oldKeyIds", "newKeyId", "deactivated", "deleted",
                                                  "switchWaitSeconds")},
        "supervisorAliveAtEnd": supervisor_alive,
        "targetsMet": met,
    }


def render(report: dict[str, Any]) -> str:
    t = report["timeline"]
    lines = [
        f"Load:        {report['rate']:g} workflows/s for {report['durationSeconds']:g} s",
        f"Workflows:   started {report['workflowsStarted']}, completed {report['workflowsCompleted']}, "
        f"failed {report['workflowsFailed']}, stuck {report['workflowsStuck']} (start errors: {report['startErrors']})",
        f"Task definition: responseTimeoutSeconds {report['taskDefinition']['responseTimeoutSeconds']}, "
        f"retryDelaySeconds {report['taskDefinition']['retryDelaySeconds']}"
        + (" (the server's defaults)" if report["taskDefaults"] else " (shortened)"),
        f"Workflow time: longest {report['maxWorkflowSeconds']} s, median {report['medianWorkflowSeconds']} s, "
        f"{report['workflowsOver5Seconds']} over 5 s",
        f"Tasks retried: {report['tasksRetried']}; handed back to the queue by the supervisor: "
        f"{report['tasksRequeued']}",
        f"401/403 after the switch: {report['authFailuresAfterSwitch']} "
        f"(whole run: {report['authFailuresWholeRun']}); requests by the application after the switch: "
        f"{report['appRequestsAfterSwitch']}",
        f"Timeline (s into the load): rotate {t['rotateStart']} -> new worker {t['switchStart']} -> "
        f"old worker stopped {t['oldWorkerStopped']} -> rotation done {t['rotateEnd']}; load ended {t['streamEnd']}",
        f"Keys:        {', '.join(report['rotation']['oldKeyIds'] or [])} -> {report['rotation']['newKeyId']} "
        f"(deactivated {report['rotation']['deactivated']}, deleted {report['rotation']['deleted']})",
        f"Load average (1, 5, 15 min): {' '.join(str(x) for x in report['loadAverageAtStart'])} at the start, "
        f"{' '.join(str(x) for x in report['loadAverage'])} at the end",
        "Targets met: " + ("yes" if report["targetsMet"] else "NO"),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
