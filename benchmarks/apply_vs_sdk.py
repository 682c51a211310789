"""Benchmarks (a) and (b): ``provision apply`` of a 20 x 25 environment against a sequential SDK script.

    .venv/bin/python benchmarks/apply_vs_sdk.py [--apps 20] [--tasks 25] [--latency-ms 50] [--parallelism 16]
                                                 [--noop-runs 5] [--json]

(a) Two fresh sandboxes, both started with ``--latency-ms``, both with the same task definitions
    registered beforehand (not timed). On the first, ``provision apply -f env.toml --auto-approve``
    creates APPS applications, each with the WORKER role, a key written to its own env file and
    EXECUTE on TASKS tasks. On the second, ``sdk_sequential.py`` does the same work one call at a
    time with conductor-python's OrkesAuthorizationClient. Both are timed as whole commands
    (interpreter start, imports and credentials included), and the requests each made are counted
    in the sandbox's requests.log. The floor is ``ceil(requests / parallelism) * latency``: no run
    with that many requests and that parallelism can be faster.
(b) ``provision apply`` again on the first sandbox: it must make zero writes; median of runs.

Everything is loopback and bounded (each command has a timeout); sandboxes are always stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from orkes_provision.sandbox.harness import SandboxProcess

ROOT = Path(__file__).resolve().parent
PROVISION = str(Path(sys.executable).with_name("provision"))
TIMEOUT = 600.0


def layout(apps: int, tasks: int, work: Path) -> dict[str, Any]:
    return {"applications": [
        {"name": f"bench-app-{i:02d}", "tasks": [f"bench-{i:02d}-task-{j:02d}" for j in range(tasks)],
         "envFile": str(work / "sdk-secrets" / f"bench-app-{i:02d}.env")}
        for i in range(apps)]}


def environment_file(plan: dict[str, Any], path: Path) -> None:
    lines = ['name = "bench"', ""]
    for app in plan["applications"]:
        lines += ["[[applications]]", f'name = "{app["name"]}"', 'roles = ["WORKER"]',
                  f'store = "env-file:secrets/{app["name"]}.env"', "[[applications.grants]]",
                  "tasks = [" + ", ".join(f'"{t}"' for t in app["tasks"]) + "]", ""]
    path.write_text("\n".join(lines))


def register_tasks(sandbox: SandboxProcess, plan: dict[str, Any]) -> None:
    defs = [{"name": t, "timeoutSeconds": 3600, "totalTimeoutSeconds": 0, "responseTimeoutSeconds": 600,
             "ownerEmail": "bench@example.com"} for app in plan["applications"] for t in app["tasks"]]
    response = sandbox.admin_request("POST", "/metadata/taskdefs", defs, timeout=60)
    response.raise_for_status()


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) a running process has used so far (Linux /proc), else 0."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system


CPU: dict[str, float] = {}


def run(cmd: list[str], env: dict[str, str], cwd: Path, server_pid: int | None = None
        ) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run a command to completion; also note in CPU how much CPU it and the server used meanwhile."""
    client_before, server_before = children_cpu(), process_cpu(server_pid)
    started = time.perf_counter()
    result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    elapsed = time.perf_counter() - started
    CPU["client"] = children_cpu() - client_before
    CPU["server"] = process_cpu(server_pid) - server_before
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return elapsed, result


def child_env(sandbox: SandboxProcess, work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
    env.update(sandbox.admin_env)
    # Private state and config dirs: the audit log and deliveries of a benchmark stay in its temp dir.
    env["XDG_STATE_HOME"] = str(work / "state")
    env["XDG_CONFIG_HOME"] = str(work / "config")
    return env


def provision_run(args: argparse.Namespace, plan: dict[str, Any], work: Path, index: int,
                  noop_runs: int) -> dict[str, Any]:
    """One fresh sandbox: apply the environment (timed), then re-apply it ``noop_runs`` times."""
    run_dir = work / f"provision-{index}"
    run_dir.mkdir()
    environment_file(plan, run_dir / "env.toml")
    with SandboxProcess(run_dir / "sandbox", latency_ms=args.latency_ms) as sandbox:
        register_tasks(sandbox, plan)
        env = child_env(sandbox, run_dir)
        mark = sandbox.mark()
        cmd = [PROVISION, "apply", "-f", "env.toml", "--auto-approve", "--json", "--parallelism", str(args.parallelism)]
        seconds, result = run(cmd, env, run_dir, sandbox.pid)
        cpu = dict(CPU)
        report = json.loads(result.stdout)
        requests = sandbox.requests()[mark:]
        stored = sorted((run_dir / "secrets").glob("*.env"))
        assert report["ok"], report
        assert len(stored) == args.apps
        assert all(p.stat().st_mode & 0o777 == 0o600 for p in stored)
        out: dict[str, Any] = {"seconds": seconds, "applySeconds": report["seconds"], "requests": len(requests),
                               "writes": len(sandbox.write_requests(mark)), "changes": report["done"],
                               "rateLimited": report["rateLimited"], "clientCpu": cpu["client"],
                               "serverCpu": cpu["server"], "noop": []}
        for _ in range(noop_runs):
            mark = sandbox.mark()
            seconds, result = run(cmd, env, run_dir)
            writes = sandbox.write_requests(mark)
            assert writes == [], writes
            out["noop"].append({"seconds": seconds, "requests": len(sandbox.requests()[mark:])})
        return out


def sdk_run(args: argparse.Namespace, plan: dict[str, Any], work: Path) -> dict[str, Any]:
    secrets = work / "sdk-secrets"
    secrets.mkdir(exist_ok=True)
    for stale in secrets.glob("*.env"):
        stale.unlink()
    directory = work / f"sandbox-sdk-{len(list(work.glob('sandbox-sdk-*')))}"
    with SandboxProcess(directory, latency_ms=args.latency_ms) as sandbox:
        register_tasks(sandbox, plan)
        mark = sandbox.mark()
        seconds, result = run([sys.executable, str(ROOT / "sdk_sequential.py"), str(work / "layout.json")],
                              child_env(sandbox, work), work, sandbox.pid)
        inner = json.loads(result.stdout.strip().splitlines()[-1])
        assert len(list(secrets.glob("*.env"))) == args.apps
        return {"seconds": seconds, "workSeconds": inner["seconds"], "requests": len(sandbox.requests()[mark:]),
                "writes": len(sandbox.write_requests(mark)), "clientCpu": CPU["client"], "serverCpu": CPU["server"]}


def bench(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="orkes-bench-") as tmp:
        work = Path(tmp)
        plan = layout(args.apps, args.tasks, work)
        (work / "layout.json").write_text(json.dumps(plan))
        runs = [provision_run(args, plan, work, i, args.noop_runs if i == 0 else 0) for i in range(args.runs)]
        sdk = [sdk_run(args, plan, work) for _ in range(args.sdk_runs)]
    median = statistics.median
    best = min(runs, key=lambda r: r["seconds"])
    requests = best["requests"]
    floor = math.ceil(requests / args.parallelism) * args.latency_ms / 1000
    provision = {"seconds": round(median(r["seconds"] for r in runs), 3),
                 "runs": [round(r["seconds"], 3) for r in runs],
                 "applySeconds": round(median(r["applySeconds"] for r in runs), 3),
                 "requests": requests, "writes": best["writes"], "changes": best["changes"],
                 "rateLimited": sum(r["rateLimited"] for r in runs), "floorSeconds": floor,
                 "clientCpu": round(median(r["clientCpu"] for r in runs), 2),
                 "serverCpu": round(median(r["serverCpu"] for r in runs), 2)}
    provision["vsFloor"] = round(provision["seconds"] / floor, 2)
    provision["applyVsFloor"] = round(provision["applySeconds"] / floor, 2)
    noop = runs[0]["noop"]
    sdk_out = {"seconds": round(median(s["seconds"] for s in sdk), 3), "runs": [round(s["seconds"], 3) for s in sdk],
               "workSeconds": round(median(s["workSeconds"] for s in sdk), 3), "requests": sdk[0]["requests"],
               "writes": sdk[0]["writes"], "clientCpu": round(median(x["clientCpu"] for x in sdk), 2),
               "serverCpu": round(median(x["serverCpu"] for x in sdk), 2)}
    return {
        "apps": args.apps, "tasksPerApp": args.tasks, "grants": args.apps * args.tasks, "latencyMs": args.latency_ms,
        "parallelism": args.parallelism, "cpus": os.cpu_count(),
        "loadAverage": [round(x, 2) for x in os.getloadavg()],
        "provision": provision, "sdk": sdk_out,
        "noop": {"medianSeconds": round(median(n["seconds"] for n in noop), 3) if noop else None,
                 "runs": [round(n["seconds"], 3) for n in noop], "requests": noop[-1]["requests"] if noop else 0,
                 "writes": 0},
        "speedup": round(sdk_out["seconds"] / provision["seconds"], 1),
        "speedupWork": round(sdk_out["workSeconds"] / provision["applySeconds"], 1),
    }


def render(r: dict[str, Any]) -> str:
    p, s, n = r["provision"], r["sdk"], r["noop"]
    runs = ", ".join(f"{x:.2f}" for x in p["runs"])
    return "\n".join([
        f"(a) {r['apps']} applications x {r['tasksPerApp']} task grants ({r['grants']} grants, {r['apps']} keys "
        f"to env files), latency {r['latencyMs']} ms, parallelism {r['parallelism']}, {r['cpus']} CPUs, "
        f"load average {r['loadAverage'][0]}",
        f"    provision apply     {p['seconds']:7.2f} s  median of [{runs}] ({p['requests']} requests, "
        f"{p['writes']} writes; apply phase {p['applySeconds']:.2f} s)",
        f"    sequential SDK      {s['seconds']:7.2f} s  ({s['requests']} requests, {s['writes']} writes; "
        f"work {s['workSeconds']:.2f} s)",
        f"    speed-up            {r['speedup']:7.1f} x  (work only: {r['speedupWork']} x; target >= 15 x)",
        f"    floor               {p['floorSeconds']:7.2f} s  = ceil({p['requests']} / {r['parallelism']}) x "
        f"{r['latencyMs']} ms; provision is {p['vsFloor']} x the floor, its apply phase {p['applyVsFloor']} x "
        f"(target <= 1.5 x)",
        f"    CPU used            provision {p['clientCpu']:.2f} s + sandbox {p['serverCpu']:.2f} s; "
        f"SDK script {s['clientCpu']:.2f} s + sandbox {s['serverCpu']:.2f} s",
        f"(b) no-op re-apply      {n['medianSeconds']:7.2f} s  median of {len(n['runs'])} ({n['requests']} requests, "
        f"{n['writes']} writes; target < 1.5 s)",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--apps", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=25)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3, help="provision applies, each on a fresh sandbox (median)")
    parser.add_argument("--sdk-runs", type=int, default=1, help="sequential SDK runs, each on a fresh sandbox")
    parser.add_argument("--noop-runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    result = bench(args)
    print(json.dumps(result, indent=2) if args.json else render(result))


if __name__ == "__main__":
    main()
