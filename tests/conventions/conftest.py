"""One sandbox for the convention tests, and the two runs of ``scenarios.PLAN`` the tests look at."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orkes_provision.sandbox.harness import SandboxProcess
from tests.conventions.scenarios import Context, Run, run_plan
from tests.sandbox_fixtures import one_sandbox


@pytest.fixture(scope="package")
def conv_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    yield from one_sandbox(tmp_path_factory.mktemp("conv-sandbox"))


@pytest.fixture(scope="package")
def human_runs(conv_sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory) -> tuple[Context, list[Run]]:
    return run_plan("human", tmp_path_factory.mktemp("conv-human"), conv_sandbox)


@pytest.fixture(scope="package")
def json_runs(conv_sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory) -> tuple[Context, list[Run]]:
    return run_plan("json", tmp_path_factory.mktemp("conv-json"), conv_sandbox)


class _NotOrkes(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = b'{"message": "not an Orkes server"}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="package")
def other_server() -> Iterator[str]:
    """A loopback server that is not the sandbox: it answers 404 at once (no retries, no waiting)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotOrkes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
