"""Rotation output off a terminal (issue 25, item 8): ``keys rotate --all --parallelism 4`` of five applications
printed every application's countdown every second (99 stderr lines). Each wait is said once, then one
progress line per interval (5 s) for all of them together, as the README promises."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from orkes_provision.sandbox.harness import SandboxProcess
from tests.rotation.helpers import cli_env, provision


def test_a_parallel_fleet_rotation_says_each_wait_once_then_one_line_per_interval(
        shared_sandbox: SandboxProcess, state_dir: Path, tmp_path: Path) -> None:
    env = cli_env(shared_sandbox.admin_env, state_dir, tmp_path / "home")
    names = [f"prog-{i}-{uuid.uuid4().hex[:6]}" for i in range(5)]
    for name in names:
        made = provision(["app", name, "--worker", "--store", f"env-file:{tmp_path / name}.env"], env)
        assert made.returncode == 0, made.stderr
    started = time.monotonic()

    result = provision(["keys", "rotate", "--all", "--parallelism", "4", "--switch-wait", "3s", "--grace", "0s"],
                       env)  # stderr is a pipe, as in cron or CI

    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert [line.split(": ")[1].split(" ")[0] for line in result.stdout.splitlines()[:5]] == ["rotated"] * 5
    countdown = [line for line in result.stderr.splitlines() if line.endswith("s left)")]
    first = {line.split(" to switch")[0] for line in countdown}
    assert first == {f"waiting for workers of {name}" for name in names}  # every wait is said
    # Once each, plus at most one line per 5 s of the whole run (the old output: one per second each).
    assert len(countdown) <= len(names) + int(elapsed // 5) + 1, result.stderr
