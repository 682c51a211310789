"""One sandbox server shared by the client tests that need a real server (starting one takes ~2 s)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orkes_provision.sandbox.harness import SandboxProcess
from tests.credentials.stores.conftest import memory_keyring
from tests.sandbox_fixtures import one_sandbox

__all__ = ["memory_keyring", "server"]


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    # The data dir sits where --profile sandbox looks when XDG_DATA_HOME is <tmp>/xdg-data.
    yield from one_sandbox(tmp_path_factory.mktemp("xdg-data") / "orkes-provision" / "sandbox")
