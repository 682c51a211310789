"""Fixtures for the rotation tests: one sandbox for the package, a private state dir per test.

Tests share the sandbox (starting one costs about a second) and stay independent by giving
every application a unique name.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.orkes.urls import normalize_server_url
from orkes_provision.sandbox.client import SandboxClient
from tests.rotation.helpers import WorkerApp, make_worker_app

pytest.importorskip("starlette", reason="the sandbox extra is not installed")

from orkes_provision.sandbox.harness import SandboxProcess
from tests.sandbox_fixtures import one_sandbox


@pytest.fixture(scope="package")
def shared_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    yield from one_sandbox(tmp_path_factory.mktemp("rotation-sandbox"))


@pytest.fixture
def server(shared_sandbox: SandboxProcess) -> str:
    return normalize_server_url(shared_sandbox.url, insecure_http=True)


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own deliveries, progress files, audit log and locks."""
    path = tmp_path / "state"
    monkeypatch.setenv("ORKES_PROVISION_STATE_DIR", str(path))
    return path


@pytest.fixture
def admin(shared_sandbox: SandboxProcess, server: str, state_dir: Path) -> Iterator[SandboxClient]:
    credentials = Credentials(server=server, key_id=shared_sandbox.admin_key_id, secret=shared_sandbox.admin_secret)
    with SandboxClient(credentials) as client:
        yield client


@pytest.fixture
def app_name() -> str:
    return f"rot-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def worker_app(admin: OrkesClient, server: str, app_name: str) -> Callable[..., WorkerApp]:
    def make(stores: list[object], tasks: tuple[str, ...] = ()) -> WorkerApp:
        return make_worker_app(admin, server, app_name, stores, tasks=tasks)  # type: ignore[arg-type]

    return make
