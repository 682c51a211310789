"""Running ``provision`` in-process for the Kubernetes tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from orkes_provision.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str


def run(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    """``provision ARGS`` in this process; the exit code, stdout and stderr."""
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)
