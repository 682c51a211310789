"""Benchmarks (a) and (b): ``provision apply`` of an environment against a sequential SDK script, at scale.

    .venv/bin/python benchmarks/apply_vs_sdk.py [--apps 20 [200 ...]] [--tasks 25] [--users U] [--groups G]
                                                 [--latency-ms 50] [--parallelism 16] [--runs 3] [--sdk-runs 1]
                                                 [--noop-runs 5] [--drift-runs 5] [--json]

Each scale (``--apps``, one or more counts, measured one after the other in the same run):

(a) Fresh sandboxes, all started with ``--latency-ms``, all with the same task definitions
    registered beforehand (not timed). On each, ``provision apply -f env.toml --auto-approve``
    creates APPS applications, each with the WORKER role, a key written to its own env file and
    EXECUTE on TASKS tasks of its own; and USERS users (role USER) and GROUPS groups (role USER,
    the users spread over them as members, READ on a few tasks each). On another, ``sdk_sequential.py``
    does the same work one call at a time with conductor-python's OrkesAuthorizationClient. Both
    are timed as whole commands (interpreter start, imports and credentials included), and the
    requests each made are counted in the sandbox's requests.log. The floor is
    ``ceil(requests / parallelism) * latency``: no run with that many requests and that parallelism
    can be faster. The CPU of each command is its own process's user + system time (the sandbox
    runs in another process and is counted apart), divided by its requests for the per-request cost.
(b) ``provision apply`` again on the first sandbox: it must make zero writes; then ``provision drift``,
    which must find the server in sync (exit 0). Medians of runs.

Users and groups default to none below 200 applications (so 20 x 25 stays the comparison it always
was) and to a quarter and a twentieth of the applications from 200 on (50 users, 10 groups at 200);
``--users``/``--groups`` set them for every scale.

The targets (issue 14) are judged on the largest scale for the floor, the no-op re-apply, drift and
the CPU per request, and on the 20-application scale for the speed-up against the SDK script.

Commands run with the package's bytecode compiled beforehand, as a ``pip install`` leaves it (into a
temporary ``PYTHONPYCACHEPREFIX``): with ``PYTHONDONTWRITEBYTECODE`` set, as on the machine these
figures come from, each command would first compile the package's sources, about 0.2 s of CPU.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orkes_provision
from orkes_provision.sandbox.harness import SandboxProcess

ROOT = Path(__file__).resolve().parent
PROVISION = str(Path(sys.executable).with_name("provision"))
TIMEOUT = 900.0
GROUP_GRANTS = 5  # READ on this many tasks per group
TARGETS = {"vsFloor": 1.5, "noopSeconds": 3.0, "driftSeconds": 3.0, "cpuMsPerRequest": 1.0, "speedup": 15.0}


@dataclass(frozen=True)
class Scale:
    apps: int
    tasks: int
    users: int
    groups: int


def layout(scale: Scale, work: Path) -> dict[str, Any]:
    width = max(2, len(str(scale.apps - 1)))
    apps = [{"name": f"bench-app-{i:0{width}d}",
             "tasks": [f"bench-{i:0{width}d}-task-{j:02d}" for j in range(scale.tasks)],
             "envFile": str(work / "sdk-secrets" / f"bench-app-{i:0{width}d}.env")}
            for i in range(scale.apps)]
    users = [{"id": f"bench-user-{u:02d}@example.com", "name": f"Bench User {u}", "roles": ["USER"]}
             for u in range(scale.users)]
    groups = [{"id": f"bench-group-{g:02d}", "description": f"Benchmark group {g}", "roles": ["USER"],
               "members": [u["id"] for n, u in enumerate(users) if n % scale.groups == g],
               "tasks": apps[g % len(apps)]["tasks"][:GROUP_GRANTS] if apps else []}
              for g in range(scale.groups)]
    return {"applications": apps, "users": users, "groups": groups}


def environment_file(plan: dict[str, Any], path: Path) -> None:
    def names(items: list[str]) -> str:
        return "[" + ", ".join(f'"{t}"' for t in items) + "]"

    lines = ['name = "bench"', ""]
    for app in plan["applications"]:
        lines += ["[[applications]]", f'name = "{app["name"]}"', 'roles = ["WORKER"]',
                  f'store = "env-file:secrets/{app["name"]}.env"', "[[applications.grants]]",
                  f"tasks = {names(app['tasks'])}", ""]
    for user in plan["users"]:
        lines += ["[[users]]", f'id = "{user["id"]}"', f'name = "{user["name"]}"', f"roles = {names(user['roles'])}",
                  ""]
    for group in plan["groups"]:
        lines += ["[[groups]]", f'id = "{group["id"]}"', f'description = "{group["description"]}"',
                  f"roles = {names(group['roles'])}", f"members = {names(group['members'])}"]
        if group["tasks"]:
            lines += ["[[groups.grants]]", f"tasks = {names(group['tasks'])}", 'access = ["READ"]']
        lines.append("")
    path.write_text("\n".join(lines))


def register_tasks(sandbox: SandboxProcess, plan: dict[str, Any]) -> None:
    defs = [{"name": t, "timeoutSeconds": 3600, "totalTimeoutSeconds": 0, "responseTimeoutSeconds": 600,
             "ownerEmail": "bench@example.com"} for app in plan["applications"] for t in app["tasks"]]
    response = sandbox.admin_request("POST", "/metadata/taskdefs", defs, timeout=120)
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


def load() -> float:
    return round(os.getloadavg()[0], 2)


@dataclass
class Ran:
    seconds: float
    stdout: str
    client_cpu: float  # the command's own process: user + system seconds
    server_cpu: float  # the sandbox's process meanwhile
    load: tuple[float, float]  # 1-minute load average before and after


def run(cmd: list[str], env: dict[str, str], cwd: Path, server_pid: int | None = None, *,
        ok: tuple[int, ...] = (0,)) -> Ran:
    """Run a command to completion, noting its CPU (its process alone) and the server's meanwhile."""
    client_before, server_before, load_before = children_cpu(), process_cpu(server_pid), load()
    started = time.perf_counter()
    result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n"
                         f"{result.stderr[-4000:]}")
    return Ran(elapsed, result.stdout, children_cpu() - client_before, process_cpu(server_pid) - server_before,
               (load_before, load()))


def child_env(sandbox: SandboxProcess, work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
    env.update(sandbox.admin_env)
    # Private state and config dirs: the audit log and deliveries of a benchmark stay in its temp dir.
    env["XDG_STATE_HOME"] = str(work / "state")
    env["XDG_CONFIG_HOME"] = str(work / "config")
    return env


def timed(ran: Ran, requests: int) -> dict[str, Any]:
    return {"seconds": ran.seconds, "requests": requests, "clientCpu": ran.client_cpu, "serverCpu": ran.server_cpu,
            "load": list(ran.load)}


def provision_run(args: argparse.Namespace, scale: Scale, plan: dict[str, Any], work: Path, index: int,
                  follow_ups: bool) -> dict[str, Any]:
    """One fresh sandbox: apply the environment (timed); with ``follow_ups``, re-apply it and run drift."""
    run_dir = work / f"provision-{index}"
    run_dir.mkdir()
    environment_file(plan, run_dir / "env.toml")
    with SandboxProcess(run_dir / "sandbox", latency_ms=args.latency_ms) as sandbox:
        register_tasks(sandbox, plan)
        env = child_env(sandbox, run_dir)
        mark = sandbox.mark()
        cmd = [PROVISION, "apply", "-f", "env.toml", "--auto-approve", "--json", "--parallelism", str(args.parallelism)]
        ran = run(cmd, env, run_dir, sandbox.pid)
        report = json.loads(ran.stdout)
        requests = sandbox.requests()[mark:]
        stored = sorted((run_dir / "secrets").glob("*.env"))
        assert report["ok"], report
        assert len(stored) == scale.apps
        assert all(p.stat().st_mode & 0o777 == 0o600 for p in stored)
        out = timed(ran, len(requests)) | {
            "applySeconds": report["seconds"], "writes": len(sandbox.write_requests(mark)), "changes": report["done"],
            "rateLimited": report["rateLimited"], "noop": [], "drift": []}
        if not follow_ups:
            return out
        for _ in range(args.noop_runs):
            mark = sandbox.mark()
            ran = run(cmd, env, run_dir, sandbox.pid)
            writes = sandbox.write_requests(mark)
            assert writes == [], writes[:5]
            out["noop"].append(timed(ran, len(sandbox.requests()[mark:])))
        drift = [PROVISION, "drift", "-f", "env.toml", "--json", "--parallelism", str(args.parallelism)]
        for _ in range(args.drift_runs):
            mark = sandbox.mark()
            ran = run(drift, env, run_dir, sandbox.pid)
            assert json.loads(ran.stdout)["inSync"], ran.stdout[:2000]
            out["drift"].append(timed(ran, len(sandbox.requests()[mark:])))
        return out


def sdk_run(args: argparse.Namespace, scale: Scale, plan: dict[str, Any], work: Path) -> dict[str, Any]:
    secrets = work / "sdk-secrets"
    secrets.mkdir(exist_ok=True)
    for stale in secrets.glob("*.env"):
        stale.unlink()
    directory = work / f"sandbox-sdk-{len(list(work.glob('sandbox-sdk-*')))}"
    with SandboxProcess(directory, latency_ms=args.latency_ms) as sandbox:
        register_tasks(sandbox, plan)
        mark = sandbox.mark()
        ran = run([sys.executable, str(ROOT / "sdk_sequential.py"), str(work / "layout.json")],
                  child_env(sandbox, work), work, sandbox.pid)
        inner = json.loads(ran.stdout.strip().splitlines()[-1])
        assert len(list(secrets.glob("*.env"))) == scale.apps
        return timed(ran, len(sandbox.requests()[mark:])) | {
            "workSeconds": inner["seconds"], "writes": len(sandbox.write_requests(mark))}


def _median(items: list[dict[str, Any]], key: str) -> float | None:
    return statistics.median(i[key] for i in items) if items else None


def _summary(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Median seconds of ``items``, their runs, requests and the median CPU (per request too)."""
    if not items:
        return None
    cpu = statistics.median(i["clientCpu"] for i in items)
    requests = items[-1]["requests"]
    return {"seconds": round(statistics.median(i["seconds"] for i in items), 3),
            "runs": [round(i["seconds"], 3) for i in items], "requests": requests,
            "clientCpu": round(cpu, 3), "cpuMsPerRequest": round(1000 * cpu / max(1, requests), 3),
            "serverCpu": round(statistics.median(i["serverCpu"] for i in items), 3),
            "load": [min(i["load"][0] for i in items), max(i["load"][1] for i in items)]}


def bench_scale(args: argparse.Namespace, scale: Scale) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="orkes-bench-") as tmp:
        work = Path(tmp)
        plan = layout(scale, work)
        (work / "layout.json").write_text(json.dumps(plan))
        runs = [provision_run(args, scale, plan, work, i, follow_ups=i == 0) for i in range(args.runs)]
        sdk = [sdk_run(args, scale, plan, work) for _ in range(args.sdk_runs)]
    best = min(runs, key=lambda r: r["seconds"])
    requests = best["requests"]
    floor = math.ceil(requests / args.parallelism) * args.latency_ms / 1000
    provision = _summary(runs)
    assert provision is not None
    provision |= {"applySeconds": round(statistics.median(r["applySeconds"] for r in runs), 3),
                  "requests": requests, "writes": best["writes"], "changes": best["changes"],
                  "rateLimited": sum(r["rateLimited"] for r in runs), "floorSeconds": floor}
    provision["vsFloor"] = round(provision["seconds"] / floor, 2)
    provision["applyVsFloor"] = round(provision["applySeconds"] / floor, 2)
    sdk_out = _summary(sdk)
    if sdk_out is not None:
        sdk_out |= {"workSeconds": round(statistics.median(s["workSeconds"] for s in sdk), 3),
                    "writes": sdk[0]["writes"]}
    return {
        "apps": scale.apps, "tasksPerApp": scale.tasks, "grants": scale.apps * scale.tasks, "users": scale.users,
        "groups": scale.groups, "groupGrants": scale.groups * min(GROUP_GRANTS, scale.tasks),
        "provision": provision, "sdk": sdk_out, "noop": _summary(runs[0]["noop"]),
        "drift": _summary(runs[0]["drift"]),
        "speedup": round(sdk_out["seconds"] / provision["seconds"], 1) if sdk_out else None,
        "speedupWork": round(sdk_out["workSeconds"] / provision["applySeconds"], 1) if sdk_out else None,
    }


def people_for(apps: int, args: argparse.Namespace) -> tuple[int, int]:
    users = args.users if args.users is not None else (apps // 4 if apps >= 200 else 0)
    groups = args.groups if args.groups is not None else (apps // 20 if apps >= 200 else 0)
    return users, max(groups, 1) if users and not groups else groups


def judge(scales: list[dict[str, Any]]) -> dict[str, Any]:
    """Each target of issue 14 with its figure and whether it was met (``None``: not measured)."""
    largest = max(scales, key=lambda s: s["apps"])
    small = next((s for s in scales if s["apps"] == 20), None)
    p, noop, drift = largest["provision"], largest["noop"], largest["drift"]

    def verdict(value: float | None, limit: float, below: bool = True) -> dict[str, Any]:
        met = None if value is None else (value <= limit if below else value >= limit)
        return {"value": value, "target": limit, "met": met}

    return {
        "apps": largest["apps"],
        "applyVsFloor": verdict(p["vsFloor"], TARGETS["vsFloor"]),
        "noopSeconds": verdict(noop["seconds"] if noop else None, TARGETS["noopSeconds"]),
        "driftSeconds": verdict(drift["seconds"] if drift else None, TARGETS["driftSeconds"]),
        "cpuMsPerRequest": verdict(p["cpuMsPerRequest"], TARGETS["cpuMsPerRequest"]),
        "speedupAt20": verdict(small["speedup"] if small else None, TARGETS["speedup"], below=False),
    }


def render_scale(r: dict[str, Any], args: argparse.Namespace) -> list[str]:
    p, s, n, d = r["provision"], r["sdk"], r["noop"], r["drift"]
    runs = ", ".join(f"{x:.2f}" for x in p["runs"])
    people = f", {r['users']} users, {r['groups']} groups ({r['groupGrants']} group grants)" if r["users"] else ""
    lines = [
        f"{r['apps']} applications x {r['tasksPerApp']} task grants ({r['grants']} grants, {r['apps']} keys to env "
        f"files{people}), latency {args.latency_ms} ms, parallelism {args.parallelism}",
        f"  provision apply     {p['seconds']:7.2f} s  median of [{runs}] ({p['requests']} requests, "
        f"{p['writes']} writes; apply phase {p['applySeconds']:.2f} s; load {p['load'][0]} - {p['load'][1]})",
        f"  floor               {p['floorSeconds']:7.2f} s  = ceil({p['requests']} / {args.parallelism}) x "
        f"{args.latency_ms} ms; provision is {p['vsFloor']} x the floor, its apply phase {p['applyVsFloor']} x",
        f"  provision CPU       {p['clientCpu']:7.2f} s  = {p['cpuMsPerRequest']:.2f} ms per request "
        f"(sandbox {p['serverCpu']:.2f} s)",
    ]
    if s is not None:
        lines += [
            f"  sequential SDK      {s['seconds']:7.2f} s  ({s['requests']} requests, {s['writes']} writes; work "
            f"{s['workSeconds']:.2f} s; CPU {s['clientCpu']:.2f} s = {s['cpuMsPerRequest']:.2f} ms per request, "
            f"sandbox {s['serverCpu']:.2f} s)",
            f"  speed-up            {r['speedup']:7.1f} x  (work only: {r['speedupWork']} x)"]
    for label, x in (("no-op re-apply", n), ("drift", d)):
        if x is not None:
            lines.append(f"  {label:<19} {x['seconds']:7.2f} s  median of {len(x['runs'])} ({x['requests']} requests, "
                         f"CPU {x['clientCpu']:.2f} s = {x['cpuMsPerRequest']:.2f} ms per request)")
    return lines


def render(result: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [f"{result['cpus']} CPUs, load average {result['loadAverage']['start']} at the start, "
             f"{result['loadAverage']['end']} at the end"]
    for scale in result["scales"]:
        lines += render_scale(scale, args)
    t = result["targets"]
    names = {"applyVsFloor": "apply vs floor (x)", "noopSeconds": "no-op re-apply (s)", "driftSeconds": "drift (s)",
             "cpuMsPerRequest": "client CPU (ms/request)", "speedupAt20": "speed-up at 20 x 25 (x)"}
    lines.append(f"targets ({t['apps']} applications, speed-up at 20):")
    for key, name in names.items():
        v = t[key]
        state = {True: "met", False: "MISSED", None: "not measured"}[v["met"]]
        sign = ">=" if key == "speedupAt20" else "<="
        lines.append(f"  {name:<26} {v['value'] if v['value'] is not None else '-':>8}  target {sign} "
                     f"{v['target']}: {state}")
    return "\n".join(lines)


def compiled_bytecode(directory: Path) -> None:
    """Compile the package into ``directory`` and make every command started from here read it there."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(directory)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(orkes_provision.__file__).parent)],
                   check=True, timeout=TIMEOUT, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--apps", type=int, nargs="+", default=[20], help="one or more scales, e.g. --apps 20 200")
    parser.add_argument("--tasks", type=int, default=25)
    parser.add_argument("--users", type=int, default=None, help="default: none below 200 apps, apps / 4 from 200")
    parser.add_argument("--groups", type=int, default=None, help="default: none below 200 apps, apps / 20 from 200")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3, help="provision applies, each on a fresh sandbox (median)")
    parser.add_argument("--sdk-runs", type=int, default=1, help="sequential SDK runs, each on a fresh sandbox")
    parser.add_argument("--noop-runs", type=int, default=5)
    parser.add_argument("--drift-runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    if min(args.apps) < 1 or args.tasks < 1 or args.runs < 1 or args.parallelism < 1:
        parser.error("--apps, --tasks, --runs and --parallelism must be at least 1")
    started = load()
    with tempfile.TemporaryDirectory(prefix="orkes-bench-pycache-") as pycache:
        compiled_bytecode(Path(pycache))
        scales = [bench_scale(args, Scale(apps, args.tasks, *people_for(apps, args))) for apps in args.apps]
    result = {"latencyMs": args.latency_ms, "parallelism": args.parallelism, "cpus": os.cpu_count(),
              "loadAverage": {"start": started, "end": load()}, "scales": scales, "targets": judge(scales)}
    print(json.dumps(result, indent=2) if args.json else render(result, args))


if __name__ == "__main__":
    main()
