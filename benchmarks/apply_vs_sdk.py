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
NODELAY = ROOT / "nodelay"  # see nodelay/sitecustomize.py
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


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    elapsed = time.perf_counter() - started
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


def sandbox_env(args: argparse.Namespace) -> dict[str, str] | None:
    if args.as_shipped:
        return None
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(NODELAY), os.environ.get("PYTHONPATH")])))


def bench(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="orkes-bench-") as tmp:
        work = Path(tmp)
        (work / "sdk-secrets").mkdir()
        plan = layout(args.apps, args.tasks, work)
        (work / "layout.json").write_text(json.dumps(plan))
        environment_file(plan, work / "env.toml")
        out: dict[str, Any] = {"apps": args.apps, "tasksPerApp": args.tasks, "grants": args.apps * args.tasks,
                               "latencyMs": args.latency_ms, "parallelism": args.parallelism,
                               "tcpNodelay": not args.as_shipped}

        with SandboxProcess(work / "sandbox-provision", latency_ms=args.latency_ms, env=sandbox_env(args)) as sandbox:
            register_tasks(sandbox, plan)
            env = child_env(sandbox, work)
            mark = sandbox.mark()
            cmd = [PROVISION, "apply", "-f", "env.toml", "--auto-approve", "--json",
                   "--parallelism", str(args.parallelism)]
            seconds, result = run(cmd, env, work)
            report = json.loads(result.stdout)
            requests = sandbox.requests()[mark:]
            stored = sorted((work / "secrets").glob("*.env"))
            assert report["ok"] and report["failed"] == 0, report
            assert len(stored) == args.apps and all(p.stat().st_mode & 0o777 == 0o600 for p in stored)
            floor = math.ceil(len(requests) / args.parallelism) * args.latency_ms / 1000
            out["provision"] = {"seconds": round(seconds, 3), "applySeconds": report["seconds"],
                                "requests": len(requests), "writes": len(sandbox.write_requests(mark)),
                                "changes": report["done"], "floorSeconds": floor,
                                "vsFloor": round(seconds / floor, 2)}
            noop: list[float] = []
            noop_requests = noop_writes = 0
            for _ in range(args.noop_runs):
                mark = sandbox.mark()
                seconds, result = run(cmd, env, work)
                noop.append(seconds)
                noop_requests = len(sandbox.requests()[mark:])
                noop_writes = len(sandbox.write_requests(mark))
                assert noop_writes == 0, sandbox.write_requests(mark)
            out["noop"] = {"medianSeconds": round(statistics.median(noop), 3),
                           "runs": [round(s, 3) for s in noop], "requests": noop_requests, "writes": noop_writes}

        with SandboxProcess(work / "sandbox-sdk", latency_ms=args.latency_ms, env=sandbox_env(args)) as sandbox:
            register_tasks(sandbox, plan)
            mark = sandbox.mark()
            seconds, result = run([sys.executable, str(ROOT / "sdk_sequential.py"), str(work / "layout.json")],
                                  child_env(sandbox, work), work)
            inner = json.loads(result.stdout.strip().splitlines()[-1])
            requests = sandbox.requests()[mark:]
            assert len(list((work / "sdk-secrets").glob("*.env"))) == args.apps
            out["sdk"] = {"seconds": round(seconds, 3), "workSeconds": round(inner["seconds"], 3),
                          "requests": len(requests), "writes": len(sandbox.write_requests(mark))}
        out["speedup"] = round(out["sdk"]["seconds"] / out["provision"]["seconds"], 1)
        out["speedupWork"] = round(out["sdk"]["workSeconds"] / out["provision"]["applySeconds"], 1)
        return out


def render(r: dict[str, Any]) -> str:
    p, s, n = r["provision"], r["sdk"], r["noop"]
    return "\n".join([
        f"(a) {r['apps']} applications x {r['tasksPerApp']} task grants ({r['grants']} grants, {r['apps']} keys "
        f"to env files), latency {r['latencyMs']} ms, parallelism {r['parallelism']}",
        f"    provision apply     {p['seconds']:7.2f} s  ({p['requests']} requests, {p['writes']} writes; "
        f"apply phase {p['applySeconds']:.2f} s)",
        f"    sequential SDK      {s['seconds']:7.2f} s  ({s['requests']} requests, {s['writes']} writes; "
        f"work {s['workSeconds']:.2f} s)",
        f"    speed-up            {r['speedup']:7.1f} x  (work only: {r['speedupWork']} x; target >= 15 x)",
        f"    floor               {p['floorSeconds']:7.2f} s  = ceil({p['requests']} / {r['parallelism']}) x "
        f"{r['latencyMs']} ms; provision is {p['vsFloor']} x the floor (target <= 1.5 x)",
        f"(b) no-op re-apply      {n['medianSeconds']:7.2f} s  median of {len(n['runs'])} ({n['requests']} requests, "
        f"{n['writes']} writes; target < 1.5 s)",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--apps", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=25)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--noop-runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    parser.add_argument("--as-shipped", action="store_true",
                        help="run the sandbox without TCP_NODELAY (adds ~40 ms per request; see nodelay/)")
    args = parser.parse_args()
    result = bench(args)
    print(json.dumps(result, indent=2) if args.json else render(result))


if __name__ == "__main__":
    main()
