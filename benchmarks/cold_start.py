"""Benchmark (c): cold start of ``provision --help`` and ``provision --version`` against ``python -c "import click"``.

    .venv/bin/python benchmarks/cold_start.py [--runs 21] [--json]

Each command runs ``--runs`` times, alternating, each a fresh interpreter (the console script, as a
user runs it); the figure is the median wall time. ``provision --help`` must stay within 1.5 times
``import click``: the CLI imports its subcommands, httpx and pydantic only when they run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

PYTHON = sys.executable
PROVISION = str(Path(PYTHON).with_name("provision"))
COMMANDS = {
    "python -c 'import click'": [PYTHON, "-c", "import click"],
    "provision --version": [PROVISION, "--version"],
    "provision --help": [PROVISION, "--help"],
    "provision plan --help": [PROVISION, "plan", "--help"],
}


def time_once(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=60)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for cmd in COMMANDS.values():  # warm the page cache and .pyc files; not counted
        time_once(cmd)
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):
        for name, cmd in COMMANDS.items():
            samples[name].append(time_once(cmd))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["python -c 'import click'"]
    result = {name: {"medianMs": round(m * 1000, 1), "vsImportClick": round(m / base, 2)}
              for name, m in medians.items()}
    if args.json:
        print(json.dumps({"runs": args.runs, "results": result}, indent=2))
        return
    print(f"median of {args.runs} runs each (target: provision --help within 1.5 x import click)")
    for name, row in result.items():
        print(f"  {name:28s} {row['medianMs']:7.1f} ms  {row['vsImportClick']:4.2f} x")


if __name__ == "__main__":
    main()
