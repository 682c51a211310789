"""Durations: one parser (orkes_provision/durations.py) behind every duration option, units everywhere."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from orkes_provision.durations import format_duration, parse_duration
from orkes_provision.errors import UsageError
from orkes_provision.sandbox.harness import SandboxProcess
from tests.conventions.runner import run_cli


@pytest.mark.parametrize(("text", "seconds"), [
    ("0s", 0), ("0", 0), ("5s", 5), ("15", 15), ("90s", 90), ("15m", 900), ("2h", 7200), ("7d", 604800),
    ("1h30m", 5400), ("500ms", 0.5), ("1.5s", 1.5), ("1m30s", 90), (" 15M ", 900),
])
def test_durations_are_read_with_units_and_a_bare_number_is_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "5x", "s", "-1s", "1h-30m", "fifteen minutes", "1e3s"])
def test_anything_else_is_a_usage_error_with_examples(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration(text)
    assert "is not a duration" in caught.value.message
    assert "15m" in caught.value.hint


@pytest.mark.parametrize("seconds", [0, 0.5, 1, 59, 90, 900, 3600, 5400, 86400 + 61])
def test_help_defaults_are_written_so_that_they_read_back(seconds: float) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


def test_switch_wait_and_grace_take_units_end_to_end(conv_sandbox: SandboxProcess, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), **conv_sandbox.admin_env}
    store = f"env-file:{tmp_path / 'w.env'}"
    made = run_cli(["app", "dur-app", "--role", "METADATA_API", "--store", store], env=env, cwd=tmp_path)
    assert made.code == 0, made
    result = run_cli(["keys", "rotate", "dur-app", "--switch-wait", "1s", "--grace", "15m", "--json"], env=env,
                     cwd=tmp_path)
    assert result.code == 0, result
    report = json.loads(result.out)
    assert (report["switchWaitSeconds"], report["graceSeconds"]) == (1.0, 900)
    refused = run_cli(["keys", "rotate", "dur-app", "--switch-wait", "5x"], env=env, cwd=tmp_path)
    assert refused.code == 2
    assert refused.err.splitlines()[0] == "error: invalid value for '--switch-wait': '5x' is not a duration: " \
                                          "write it like 0s, 90s, 15m, 2h or 1h30m"
