"""What one ``provision`` command and one sandbox cost the test suite: a fresh process, or forked.

    .venv/bin/python benchmarks/suite_processes.py [--runs 20] [--json]

``fresh`` starts the console script (a new interpreter, as a user's shell does); ``forked`` asks the
suite's fork server (tests/forkserver.py), whose process imported the package once. Each command
runs ``--runs`` times in a row against one sandbox; a sandbox is started and stopped ``--runs``
times. The figures are the mean wall time and the mean CPU time of the whole machine (busy
jiffies in /proc/stat, so the sandbox's share of answering a command is counted too): run it on an
otherwise quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orkes_provision.sandbox.harness import SandboxProcess
from tests import forkserver

PROVISION = str(Path(sys.executable).with_name("provision"))
TICKS = os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / TICKS  # all but idle and iowait


def mean_cost(runs: int, once: Callable[[], object]) -> dict[str, float]:
    cpu, started = busy_seconds(), time.perf_counter()
    for _ in range(runs):
        once()
    return {"wallMs": round((time.perf_counter() - started) / runs * 1000, 1),
            "cpuMs": round((busy_seconds() - cpu) / runs * 1000, 1)}


def measure(runs: int) -> dict[str, dict[str, dict[str, float]]]:
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="suite-processes-") as tmp, SandboxProcess(Path(tmp) / "sb") as sandbox:
        env = {**os.environ, **sandbox.admin_env, "XDG_CONFIG_HOME": f"{tmp}/config", "XDG_STATE_HOME": f"{tmp}/state"}
        forkserver.SERVER.can_fork(env)  # the server starts once, outside the measurement
        for name, args in {"provision --help": ["--help"],
                           "provision apps list --json": ["apps", "list", "--json"]}.items():
            def fresh(args: list[str] = args) -> object:
                return subprocess.run([PROVISION, *args], env=env, capture_output=True, timeout=60, check=True)

            def forked(args: list[str] = args) -> object:
                done = forkserver.run([PROVISION, *args], env=env, cwd=tmp, input=None, timeout=60)
                assert done.returncode == 0, done.stderr
                return done

            results[name] = {"fresh": mean_cost(runs, fresh), "forked": mean_cost(runs, forked)}

        def sandbox_cycle(kind: type[SandboxProcess]) -> Callable[[], object]:
            return lambda: kind(Path(tmp) / f"cycle-{kind.__name__}").start().close()

        results["sandbox start and stop"] = {"fresh": mean_cost(runs, sandbox_cycle(SandboxProcess)),
                                             "forked": mean_cost(runs, sandbox_cycle(forkserver.ForkedSandbox))}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = measure(args.runs)
    if args.json:
        print(json.dumps({"runs": args.runs, "commands": results}, indent=2))
        return
    print(f"{'command':<40} {'fresh wall/cpu ms':>20} {'forked wall/cpu ms':>20}")
    for name, kinds in results.items():
        f, k = kinds["fresh"], kinds["forked"]
        print(f"{name:<40} {f['wallMs']:>9.0f} / {f['cpuMs']:<8.0f} {k['wallMs']:>9.0f} / {k['cpuMs']:<8.0f}")


if __name__ == "__main__":
    main()
