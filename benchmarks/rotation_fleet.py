"""Benchmark: ``provision keys rotate --all`` for a fleet of applications, with no switch wait.

    .venv/bin/python benchmarks/rotation_fleet.py [--apps 20] [--parallelism 1,4,8] [--runs 3] [--json]

Set-up (loopback, a temporary directory): a sandbox; ``provision apply`` of an environment file
declaring ``--apps`` worker applications, each with a key in its own env file and EXECUTE on its
own task. Then, for each ``--parallelism``, ``--runs`` times: ``provision keys rotate --all
--switch-wait 0s --grace 0s --parallelism P --json`` (every application rotated: new key created,
stored, verified, old key deactivated and deleted), timed as a user runs it (the console script,
a fresh interpreter each time). Last, ``--older-than 30d``: the nightly job's run when nothing is due.
Reported: the median wall time, the requests the sandbox logged per run, and the exit code (0 when
every application rotated). Every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from orkes_provision.sandbox.harness import SandboxProcess

PROVISION = str(Path(sys.executable).with_name("provision"))


def run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    result = subprocess.run([PROVISION, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600,
                            check=False)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--apps", type=int, default=20)
    parser.add_argument("--parallelism", default="1,4,8", help="comma-separated values to measure")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    levels = [int(p) for p in args.parallelism.split(",")]
    with tempfile.TemporaryDirectory(prefix="rotation-fleet-") as tmp:
        root = Path(tmp)
        with SandboxProcess(root / "sandbox") as sandbox:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDUCTOR_", "ORKES_PROVISION_"))}
            env.update(sandbox.admin_env)
            env.update({"ORKES_PROVISION_STATE_DIR": str(root / "state"), "HOME": str(root / "home")})
            lines = ['name = "fleet"', ""]
            for i in range(args.apps):
                lines += ["[[tasks]]", f'name = "fleet-task-{i}"', "", "[[applications]]", f'name = "fleet-{i:02d}"',
                          f'store = "env-file:secrets/fleet-{i:02d}.env"', "[[applications.grants]]",
                          f'tasks = ["fleet-task-{i}"]', ""]
            (root / "env.toml").write_text("\n".join(lines))
            seconds, made = run(["apply", "-f", "env.toml", "--yes"], env, root)
            if made.returncode != 0:
                sys.exit(f"apply failed: {made.stderr}")
            results: list[dict[str, Any]] = []
            for level in levels:
                samples, requests, codes = [], [], []
                for _ in range(args.runs):
                    mark = sandbox.mark()
                    took, result = run(["keys", "rotate", "--all", "--switch-wait", "0s", "--grace", "0s",
                                        "--parallelism", str(level), "--json"], env, root)
                    report = json.loads(result.stdout)
                    if report.get("counts", {}).get("rotated") != args.apps:
                        sys.exit(f"not every application rotated: {result.stdout}{result.stderr}")
                    samples.append(took)
                    requests.append(len(sandbox.requests()) - mark)
                    codes.append(result.returncode)
                results.append({"parallelism": level, "medianSeconds": round(statistics.median(samples), 2),
                                "seconds": [round(s, 2) for s in samples], "requestsPerRun": requests,
                                "exitCodes": codes})
            mark = sandbox.mark()
            idle, nothing = run(["keys", "rotate", "--all", "--older-than", "30d", "--json"], env, root)
            due = json.loads(nothing.stdout)["counts"]
    out = {"apps": args.apps, "runs": args.runs, "applySeconds": round(seconds, 2), "rotateAll": results,
           "notDue": {"seconds": round(idle, 2), "counts": due, "exitCode": nothing.returncode},
           "loadAverage": [round(x, 2) for x in os.getloadavg()]}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"provision keys rotate --all --switch-wait 0s for {args.apps} applications "
          f"(median of {args.runs}; load average {out['loadAverage'][0]})")
    for row in results:
        print(f"  --parallelism {row['parallelism']:<2}  {row['medianSeconds']:6.2f} s  "
              f"({row['requestsPerRun'][0]} requests a run, exit {row['exitCodes'][0]})")
    print(f"  --older-than 30d (nothing due)  {out['notDue']['seconds']:.2f} s, exit {nothing.returncode}")


if __name__ == "__main__":
    main()
