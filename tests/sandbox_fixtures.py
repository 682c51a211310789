"""Sandbox fixtures, importable as a pytest plugin.

Use with ``pytest_plugins = ["tests.sandbox_fixtures"]`` in the root conftest, or import the
fixtures into a directory's conftest (``from tests.sandbox_fixtures import sandbox, sandbox_factory``).

- ``sandbox``: a fresh server (new data dir, free port) for one test, stopped afterwards.
- ``sandbox_factory(**options)``: start one with ``SandboxProcess`` options (``latency_ms``,
  ``token_ttl``, ``data_dir``...); every one started is stopped when the test ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orkes_provision.sandbox.harness import SandboxProcess
from tests.forkserver import ForkedSandbox

SandboxFactory = Callable[..., SandboxProcess]


def one_sandbox(data_dir: Path) -> Iterator[SandboxProcess]:
    """The body of a package-scoped fixture: one sandbox for a whole test package, always stopped.

    Use as ``yield from one_sandbox(tmp_path_factory.mktemp("name"))``.
    """
    pytest.importorskip("starlette", reason="the sandbox extra is not installed")
    with ForkedSandbox(data_dir) as process:
        yield process


@pytest.fixture
def sandbox_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxFactory]:
    pytest.importorskip("starlette", reason="the sandbox extra is not installed")
    started: list[SandboxProcess] = []

    def make(**options: Any) -> SandboxProcess:
        data_dir = options.pop("data_dir", None) or tmp_path_factory.mktemp("sandbox")
        process = ForkedSandbox(data_dir, **options)
        started.append(process)
        return process.start()

    yield make
    for process in started:
        process.stop()


@pytest.fixture
def sandbox(sandbox_factory: SandboxFactory) -> SandboxProcess:
    return sandbox_factory()
