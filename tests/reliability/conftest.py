"""Reliability tests: one sandbox for the whole package, and the fault matrix printed at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orkes_provision.sandbox.harness import SandboxProcess
from tests.reliability import tally
from tests.reliability.matrix import RESULTS, render
from tests.sandbox_fixtures import one_sandbox


@pytest.fixture(scope="package")
def rel_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """A sandbox shared by the reliability tests; each test uses its own application names."""
    yield from one_sandbox(tmp_path_factory.mktemp("reliability-sandbox"))


@pytest.fixture
def sandbox_without_faults(rel_sandbox: SandboxProcess) -> Iterator[SandboxProcess]:
    """The shared sandbox, with no fault left pending before or after the test."""
    rel_sandbox.clear_faults()
    yield rel_sandbox
    rel_sandbox.clear_faults()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if RESULTS:
        terminalreporter.write_sep("=", "fault matrix (tests/reliability/test_fault_matrix.py)")
        terminalreporter.write_line(render(RESULTS))
    if tally.COUNTS:
        terminalreporter.write_sep("=", "inputs tried by the fuzzing tests (tests/reliability/test_fuzz_inputs.py)")
        terminalreporter.write_line(tally.render())
