"""The official conductor-python clients and worker, pointed at a sandbox. Nothing here re-implements them.

- ``Recorder``: an ``httpx.Client`` handed to the SDK (``Configuration.http_connection``) that keeps
  every request and response, to validate them against the OpenAPI schemas.
- ``sdk_clients``: ``OrkesClients`` for a key; ``start_worker``: a real ``TaskHandler`` process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
from conductor.client.configuration.configuration import Configuration
from conductor.client.configuration.settings.authentication_settings import AuthenticationSettings
from conductor.client.orkes_clients import OrkesClients

from tests.sandbox.conformance.schemas import Exchange

T = TypeVar("T")

GREETER = '''
def greetings(name: str) -> str:
    return f"Hello, {name}"
'''

RUN_WORKER = '''
from conductor.client.automator.task_handler import TaskHandler
from conductor.client.configuration.configuration import Configuration
from conductor.client.worker.worker import Worker

from greeter import greetings

if __name__ == "__main__":
    # Configuration() reads CONDUCTOR_SERVER_URL, CONDUCTOR_AUTH_KEY and CONDUCTOR_AUTH_SECRET.
    handler = TaskHandler(workers=[Worker("greetings", greetings, poll_interval=100)],
                          configuration=Configuration(), scan_for_annotated_workers=False, monitor_processes=False)
    handler.start_processes()
    handler.join_processes()
'''


class Recorder:
    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self.client = httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0),
                                   event_hooks={"response": [self._record]})

    def _record(self, response: httpx.Response) -> None:
        response.read()
        request = response.request
        self.exchanges.append(Exchange(method=request.method, path=request.url.path, request_body=request.content,
                                       status=response.status_code, response_body=response.content,
                                       content_type=response.headers.get("content-type", "")))


def sdk_clients(url: str, key_id: str, secret: str, recorder: Recorder | None = None) -> OrkesClients:
    config = Configuration(server_api_url=url, authentication_settings=AuthenticationSettings(key_id, secret))
    if recorder is not None:
        config.http_connection = recorder.client
    return OrkesClients(config)


@contextlib.contextmanager
def worker_process(tmp_path: Path, url: str, key_id: str, secret: str) -> Iterator[subprocess.Popen[bytes]]:
    """A TaskHandler worker for ``greetings`` in its own process group, killed (whole group) on exit."""
    workdir = tmp_path / f"worker-{key_id[:8]}"
    workdir.mkdir(exist_ok=True)
    (workdir / "greeter.py").write_text(GREETER)
    (workdir / "run_worker.py").write_text(RUN_WORKER)
    env = {**os.environ, "CONDUCTOR_SERVER_URL": url, "CONDUCTOR_AUTH_KEY": key_id, "CONDUCTOR_AUTH_SECRET": secret,
           "PYTHONPATH": str(workdir)}
    log = (workdir / "worker.log").open("wb")
    proc = subprocess.Popen([sys.executable, str(workdir / "run_worker.py")], cwd=workdir, env=env,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()


def wait_for(probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1) -> T:
    """Call ``probe`` until it answers something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
