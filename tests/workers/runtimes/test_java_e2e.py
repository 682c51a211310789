"""The Java template built and run for real (``e2e`` says how); a file of its own so that test
workers run the languages side by side."""

from __future__ import annotations

import pytest

from tests.workers.runtimes.e2e import Lab, build_run_rotate_stop, lab

LANGUAGE = "java"
# A cold build (Go: over 2 minutes) and a JVM on a busy host can outlast the suite's 300 s default.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
__all__ = ["lab"]


def test_the_java_template_builds_runs_follows_a_rotation_hands_back_a_dead_workers_task_and_stops(
        lab: Lab) -> None:
    build_run_rotate_stop(lab)
