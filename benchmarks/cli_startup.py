"""Start-up of the ``provision`` commands the test suite runs thousands of times, with and without bytecode.

    .venv/bin/python benchmarks/cli_startup.py [--runs 11] [--json]

Each command runs ``--runs`` times, each a fresh interpreter (the console script, as the tests run it),
in two states of the package's bytecode:

- ``sources``: no ``__pycache__`` under ``orkes_provision/`` and ``PYTHONDONTWRITEBYTECODE=1``, as the
  suite ran on the shared machine before ``make unit`` cleared that variable: every process compiles
  the modules it imports;
- ``compiled``: ``python -m compileall`` first, as a ``pip install`` or any normal run leaves it.

The figures are the medians of wall time and of CPU time (user + system, of the child); CPU is the
steadier of the two on a busy machine. ``schema`` imports pydantic and the environment model, as
the commands that read files do. The ``__pycache__`` directories are caches (git ignores them): this
script removes and recreates them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orkes_provision

PYTHON = sys.executable
PROVISION = str(Path(PYTHON).with_name("provision"))
PACKAGE = Path(orkes_provision.__file__).parent


def commands() -> dict[str, list[str]]:
    return {
        "python -c pass": [PYTHON, "-c", "pass"],
        "provision --version": [PROVISION, "--version"],
        "provision --help": [PROVISION, "--help"],
        "provision app --help": [PROVISION, "app", "--help"],
        "provision audit": [PROVISION, "audit"],
        "provision schema": [PROVISION, "schema"],
    }


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def drop_bytecode() -> None:
    for cache in PACKAGE.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


def compile_bytecode() -> None:
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(PACKAGE)], check=True, timeout=300,
                   stdout=subprocess.DEVNULL, env={k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"})


def measure(runs: int) -> dict[str, dict[str, dict[str, float]]]:
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="cli-startup-") as home:
        base = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
        base.update(XDG_CONFIG_HOME=f"{home}/config", XDG_STATE_HOME=f"{home}/state")
        for state in ("sources", "compiled"):
            env = dict(base)
            if state == "sources":
                drop_bytecode()
                env["PYTHONDONTWRITEBYTECODE"] = "1"
            else:
                compile_bytecode()
            for name, cmd in commands().items():
                samples = [run_once(cmd, env) for _ in range(runs)]
                results.setdefault(name, {})[state] = {
                    "wallMs": round(statistics.median(w for w, _ in samples) * 1000, 1),
                    "cpuMs": round(statistics.median(c for _, c in samples) * 1000, 1),
                }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = measure(args.runs)
    if args.json:
        print(json.dumps({"runs": args.runs, "commands": results}, indent=2))
        return
    print(f"{'command':<36} {'sources wall/cpu ms':>22} {'compiled wall/cpu ms':>22}")
    for name, states in results.items():
        s, c = states["sources"], states["compiled"]
        print(f"{name:<36} {s['wallMs']:>10.0f} / {s['cpuMs']:<9.0f} {c['wallMs']:>10.0f} / {c['cpuMs']:<9.0f}")


if __name__ == "__main__":
    main()
