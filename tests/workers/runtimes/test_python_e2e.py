"""The Python template built and run for real (``e2e`` says how); a file of its own so that test
workers run the languages side by side."""

from __future__ import annotations

import pytest

from tests.workers.runtimes.e2e import Lab, build_run_rotate_stop, lab

LANGUAGE = "python"
pytestmark = pytest.mark.slow
__all__ = ["lab"]


def test_the_python_template_builds_runs_follows_a_rotation_hands_back_a_dead_workers_task_and_stops(
        lab: Lab) -> None:
    build_run_rotate_stop(lab)
