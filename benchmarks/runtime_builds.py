"""Cold and warm build times of each worker template, with the test suite's dependency caches.

For each language: ``provision init`` into a fresh directory and the build steps exactly as it
prints them, first with an empty cache directory (everything downloaded: cold), then in a second
fresh directory with the same cache (warm: what CI on this machine does from its second run on).
The caches are those of tests/workers/runtimes/caches.py, under a temporary XDG_CACHE_HOME, so
the suite's own caches are neither used nor touched.

    .venv/bin/python benchmarks/runtime_builds.py [--lang java] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.workers.runtimes.caches import build_environment, language_cache
from tests.workers.runtimes.e2e import java_home

PROVISION = Path(sys.executable).with_name("provision")
LANGUAGES = ("java", "go", "javascript")


def build(language: str, root: Path, env: dict[str, str]) -> float:
    directory = root / f"{language}-{time.monotonic_ns()}"
    made = subprocess.run([str(PROVISION), "init", "--lang", language, str(directory), "--json"], env=env,
                          capture_output=True, text=True, check=True, timeout=60)
    steps = [s for s in json.loads(made.stdout)["next"][1:] if not s.startswith("provision ")]
    with language_cache(language, directory) as cache:
        step_env = {**env, **build_environment(language, cache, directory)}
        started = time.monotonic()
        for step in steps:
            subprocess.run(["bash", "-c", step], cwd=directory, env=step_env, check=True, capture_output=True,
                           timeout=1800)
        return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lang", choices=LANGUAGES, action="append")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "XDG_CACHE_HOME": str(Path(tmp) / "cache")}
        home = java_home()
        if home is not None:
            env["JAVA_HOME"] = str(home)
            env["PATH"] = f"{home / 'bin'}{os.pathsep}{env['PATH']}"
        for language in args.lang or LANGUAGES:
            cold = build(language, Path(tmp), env)
            warm = build(language, Path(tmp), env)
            results.append({"language": language, "coldSeconds": round(cold, 1), "warmSeconds": round(warm, 1)})
            if not args.json:
                print(f"{language:<11} cold {cold:6.1f}s  warm {warm:6.1f}s", flush=True)
        # Go's module cache is read-only unless -modcacherw (set): removable with the rest.
        shutil.rmtree(Path(tmp) / "cache", ignore_errors=True)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
