"""The credential agent against direct access, side by side in one run (issue 24).

    .venv/bin/python benchmarks/agent.py [--latency-ms 5] [--requests 2000] [--workflows 300]
                                         [--long-polls 100] [--hold-seconds 20] [--json]

On loopback, one sandbox started with ``--latency-ms``; an application with WORKER and EXECUTE on
``greetings`` (``provision app``), its key in an env file; ``provision agent`` for it, as its own
process.

(a) Added latency: ``--requests`` single polls with ``timeout=0`` (the sandbox answers 204 at once,
    after its injected latency), alternating one straight to the sandbox with the real token and
    one through the agent with a local token, each over its own keep-alive connection. p50 and p99
    of each, and their difference: what the agent adds per request; and the agent's CPU time per
    request (``/proc/PID/stat``, user and system, over the timed polls).
(b) Throughput: a conductor-python 2.0.0 worker (10 threads, 1 process) started by ``provision run
    -- python3 worker.py``, once through its agent (default) and once with ``--no-agent``; for each,
    ``--workflows`` workflows are started at once and the tasks per second are counted from the
    first start to the last completion.
(c) Memory: ``--long-polls`` threads each keep a batch long poll (``timeout=2000``, the sandbox's
    longest) waiting through the agent for ``--hold-seconds``; the agent's RSS (``/proc/PID/status``)
    is sampled every second: first, last and highest.

Targets: at most 0.5 ms added at p50; at least 95 % of the direct throughput; the agent's RSS flat
(last within 2 MiB of the first sample taken with every poll waiting). Exit 0 when they hold.
Every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.sandbox.harness import SandboxProcess

PROVISION = str(Path(sys.executable).with_name("provision"))
APP = "bench-agent"
WORKFLOW = {
    "name": "greetings", "version": 1, "schemaVersion": 2, "ownerEmail": "bench@example.com",
    "tasks": [{"name": "greetings", "taskReferenceName": "greetings_ref", "type": "SIMPLE",
               "inputParameters": {"name": "${workflow.input.name}"}}],
}
WORKER = '''
from conductor.client.automator.task_handler import TaskHandler
from conductor.client.configuration.configuration import Configuration
from conductor.client.worker.worker_task import worker_task


@worker_task(task_definition_name="greetings", poll_interval_millis=10, thread_count=10)
def greetings(name: str) -> dict:
    return {"greeting": "Hello, " + str(name)}


if __name__ == "__main__":  # the task processes import this module again
    with TaskHandler(configuration=Configuration(), scan_for_annotated_workers=True) as handler:
        handler.start_processes()
        handler.join_processes()
'''


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of ``pid`` so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.procs: list[subprocess.Popen[str]] = []
        self.sandbox = SandboxProcess(tmp / "sandbox", latency_ms=args.latency_ms)
        self.env: dict[str, str] = {}

    def start(self) -> None:
        self.sandbox.start()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDUCTOR_", "ORKES_PROVISION_"))}
        self.env.update(self.sandbox.admin_env)
        self.env.update({"ORKES_PROVISION_CONFIG": str(self.tmp / "config.toml"),
                         "ORKES_PROVISION_STATE_DIR": str(self.tmp / "state"), "XDG_DATA_HOME": str(self.tmp / "d"),
                         "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
        made = subprocess.run([PROVISION, "app", APP, "--worker", "--grant", "greetings", "--register-tasks",
                               "--store", self.store], env=self.env, capture_output=True, text=True, timeout=120)
        if made.returncode != 0:
            raise SystemExit(made.stderr)
        with self.admin() as admin:
            admin.register_workflow_def(WORKFLOW)
        (self.tmp / "worker.py").write_text(WORKER)

    @property
    def store(self) -> str:
        return f"env-file:{self.tmp / 'worker.env'}"

    def admin(self) -> OrkesClient:
        return OrkesClient(Credentials(server=self.sandbox.url, key_id=self.sandbox.admin_key_id,
                                       secret=self.sandbox.admin_secret))

    def spawn(self, args: list[str], **kwargs: Any) -> subprocess.Popen[str]:
        proc = subprocess.Popen(args, env=self.env, cwd=self.tmp, text=True, start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
        self.sandbox.stop()

    # ----- (a) and (c): one standalone agent ----------------------------------------------

    def standalone_agent(self) -> tuple[subprocess.Popen[str], dict[str, str]]:
        env_file = self.tmp / "local.env"
        proc = self.spawn([PROVISION, "agent", "--app", APP, "--store", self.store, "--env-file", str(env_file)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not env_file.exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the agent did not start")
            time.sleep(0.05)
        return proc, dict(line.split("=", 1) for line in env_file.read_text().splitlines() if line)

    def latency(self, local: dict[str, str], agent_pid: int) -> dict[str, Any]:
        key = EnvFileStore(self.tmp / "worker.env").load(self.sandbox.url, APP)
        assert key is not None
        direct_token = httpx.post(self.sandbox.url + "/token", json={
            "keyId": key.key_id, "keySecret": key.secret.get_secret_value()}, trust_env=False).json()["token"]
        agent_url = local["CONDUCTOR_SERVER_URL"]
        agent_token = httpx.post(agent_url + "/token", json={
            "keyId": local["CONDUCTOR_AUTH_KEY"], "keySecret": local["CONDUCTOR_AUTH_SECRET"]},
            trust_env=False).json()["token"]
        direct = httpx.Client(base_url=self.sandbox.url + "/", headers={"X-Authorization": direct_token},
                              trust_env=False)
        through = httpx.Client(base_url=agent_url + "/", headers={"X-Authorization": agent_token}, trust_env=False)
        times: dict[str, list[float]] = {"direct": [], "agent": []}
        with direct, through:
            for client in (direct, through):  # warm both connections and the agent's pool
                for _ in range(20):
                    client.get("tasks/poll/greetings", params={"timeout": 0})
            cpu_before = cpu_seconds(agent_pid)
            for _ in range(self.args.requests):
                for name, client in (("direct", direct), ("agent", through)):
                    started = time.perf_counter()
                    answer = client.get("tasks/poll/greetings", params={"timeout": 0})
                    times[name].append((time.perf_counter() - started) * 1000)
                    if answer.status_code != 204:
                        raise SystemExit(f"{name}: unexpected {answer.status_code}")
        out: dict[str, Any] = {"agentCpuPerRequestMs": round((cpu_seconds(agent_pid) - cpu_before)
                                                              / self.args.requests * 1000, 3)}
        for name, values in times.items():
            out[name] = {"p50Ms": round(statistics.median(values), 3), "p99Ms": round(percentile(values, 99), 3)}
        out["addedP50Ms"] = round(out["agent"]["p50Ms"] - out["direct"]["p50Ms"], 3)
        out["addedP99Ms"] = round(out["agent"]["p99Ms"] - out["direct"]["p99Ms"], 3)
        return out

    def memory(self, agent_pid: int, local: dict[str, str]) -> dict[str, Any]:
        agent_url = local["CONDUCTOR_SERVER_URL"]
        token = httpx.post(agent_url + "/token", json={"keyId": local["CONDUCTOR_AUTH_KEY"],
                                                       "keySecret": local["CONDUCTOR_AUTH_SECRET"]},
                           trust_env=False).json()["token"]
        stop = threading.Event()
        polls = [0]
        lock = threading.Lock()

        def waiter() -> None:
            with httpx.Client(base_url=agent_url + "/", headers={"X-Authorization": token}, trust_env=False,
                              timeout=30) as client:
                while not stop.is_set():
                    client.get("tasks/poll/batch/greetings", params={"count": 1, "timeout": 2000})
                    with lock:
                        polls[0] += 1

        threads = [threading.Thread(target=waiter, daemon=True) for _ in range(self.args.long_polls)]
        before = rss_kib(agent_pid)
        for thread in threads:
            thread.start()
        time.sleep(3)  # every poll is waiting
        samples = []
        for _ in range(self.args.hold_seconds):
            samples.append(rss_kib(agent_pid))
            time.sleep(1)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        return {"longPolls": self.args.long_polls, "pollsAnswered": polls[0], "rssIdleKiB": before,
                "rssFirstKiB": samples[0], "rssLastKiB": samples[-1], "rssMaxKiB": max(samples),
                "growthKiB": samples[-1] - samples[0]}

    # ----- (b) throughput -------------------------------------------------------------------

    def throughput(self, agent: bool) -> dict[str, Any]:
        flag = [] if agent else ["--no-agent"]
        worker = self.spawn([PROVISION, "run", "--app", APP, "--store", self.store, *flag, "--no-preflight", "--",
                             sys.executable, "worker.py"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with self.admin() as admin:
            time.sleep(3)  # the worker is polling
            started = time.perf_counter()
            ids = [admin.start_workflow("greetings", {"name": str(i)}) for i in range(self.args.workflows)]
            deadline = time.monotonic() + 300
            pending = set(ids)
            while pending and time.monotonic() < deadline:
                pending = {w for w in pending if admin.get_workflow(w).get("status") == "RUNNING"}
                if pending:
                    time.sleep(0.05)
            elapsed = time.perf_counter() - started
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
        done = len(ids) - len(pending)
        return {"workflows": len(ids), "completed": done, "seconds": round(elapsed, 2),
                "tasksPerSecond": round(done / elapsed, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-ms", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--workflows", type=int, default=300)
    parser.add_argument("--long-polls", type=int, default=100)
    parser.add_argument("--hold-seconds", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # stop what it started on the way out
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        bench = Bench(args, Path(tmp))
        try:
            bench.start()
            agent, local = bench.standalone_agent()
            latency = bench.latency(local, agent.pid)
            print(f"latency: {latency}", file=sys.stderr)
            memory = bench.memory(agent.pid, local)
            print(f"memory: {memory}", file=sys.stderr)
            direct = bench.throughput(agent=False)
            print(f"direct: {direct}", file=sys.stderr)
            through = bench.throughput(agent=True)
            print(f"agent: {through}", file=sys.stderr)
        finally:
            bench.stop()
    ratio = through["tasksPerSecond"] / direct["tasksPerSecond"] if direct["tasksPerSecond"] else 0.0
    result = {"latencyMs": args.latency_ms, "latency": latency, "throughput": {"direct": direct, "agent": through,
              "ratio": round(ratio, 3)}, "memory": memory, "load": os.getloadavg()[0]}
    met = latency["addedP50Ms"] <= 0.5 and ratio >= 0.95 and abs(memory["growthKiB"]) <= 2048
    result["targetsMet"] = met
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"added latency: p50 {latency['addedP50Ms']} ms, p99 {latency['addedP99Ms']} ms "
              f"(direct p50 {latency['direct']['p50Ms']} ms, agent p50 {latency['agent']['p50Ms']} ms); "
              f"agent CPU {latency['agentCpuPerRequestMs']} ms per request")
        print(f"throughput: direct {direct['tasksPerSecond']}/s, agent {through['tasksPerSecond']}/s "
              f"({ratio:.1%})")
        print(f"memory with {memory['longPolls']} long polls: {memory['rssFirstKiB']} -> {memory['rssLastKiB']} KiB "
              f"(max {memory['rssMaxKiB']}, idle {memory['rssIdleKiB']})")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
