"""One sandbox for the live part of the wire tests (a fresh recording); the replays need no server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orkes_provision.orkes.models import Credentials
from orkes_provision.probe.wire.recorder import Recording, record
from orkes_provision.sandbox.harness import SandboxProcess
from tests.sandbox_fixtures import one_sandbox


@pytest.fixture(scope="package")
def wire_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    yield from one_sandbox(tmp_path_factory.mktemp("wire-sandbox"))


@pytest.fixture(scope="package")
def fresh_recording(wire_sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """Every scenario recorded live against the sandbox into a scratch directory (never into cassettes/)."""
    admin = Credentials(server=wire_sandbox.url, key_id=wire_sandbox.admin_key_id, secret=wire_sandbox.admin_secret)
    return record(admin, tmp_path_factory.mktemp("fresh-cassettes"), against="sandbox")
