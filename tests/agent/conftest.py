from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orkes_provision.credentials.stores.base import StoredKey
from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import run_provision, start
from tests.workers.launch_helpers import group_members

HERE = Path(__file__).resolve().parent
PY_WORKER = HERE / "py_worker.py"
APP = "agent-demo"
WORKFLOW = {
    "name": "greetings", "version": 1, "schemaVersion": 2, "ownerEmail": "test@example.com",
    "tasks": [{"name": "greetings", "taskReferenceName": "greetings_ref", "type": "SIMPLE",
               "inputParameters": {"name": "${workflow.input.name}"}}],
    "outputParameters": {"greeting": "${greetings_ref.output.greeting}"},
}


class AgentLab:
    """A sandbox, an application with WORKER + EXECUTE on 'greetings' in an env-file store, and processes."""

    def __init__(self, sandbox: SandboxProcess, tmp: Path) -> None:
        self.sandbox = sandbox
        self.tmp = tmp
        self.store_path = tmp / "worker.env"
        self.store = f"env-file:{self.store_path}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDUCTOR_", "ORKES_PROVISION_"))}
        self.env.update(sandbox.admin_env)
        self.env.update({"ORKES_PROVISION_CONFIG": str(tmp / "config.toml"),
                         "ORKES_PROVISION_STATE_DIR": str(tmp / "state"),
                         "XDG_DATA_HOME": str(tmp / "data"),
                         "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
        self.procs: list[Any] = []

    def provision(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run_provision(args, cwd=self.tmp, env=self.env, timeout=timeout)

    def make_app(self) -> StoredKey:
        made = self.provision("app", APP, "--worker", "--grant", "greetings", "--register-tasks", "--store",
                              self.store)
        assert made.returncode == 0, made.stderr
        with self.admin() as admin:
            admin.register_workflow_def(WORKFLOW)
        return self.key()

    def key(self) -> StoredKey:
        key = EnvFileStore(self.store_path).load(self.sandbox.url, APP)
        assert key is not None
        return key

    def admin(self) -> OrkesClient:
        return OrkesClient(Credentials(server=self.sandbox.url, key_id=self.sandbox.admin_key_id,
                                       secret=self.sandbox.admin_secret))

    def spawn(self, args: list[str], env: dict[str, str] | None = None) -> Any:
        proc = start(args, cwd=self.tmp, env=env or self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     text=True, start_new_session=True)
        self.procs.append(proc)
        return proc

    def run_workflow(self, name: str = "Orkes", timeout: float = 60) -> dict[str, Any]:
        with self.admin() as admin:
            workflow_id = admin.start_workflow("greetings", {"name": name})
            return self.wait_workflow(workflow_id, timeout)

    def wait_workflow(self, workflow_id: str, timeout: float = 60) -> dict[str, Any]:
        with self.admin() as admin:
            deadline = time.monotonic() + timeout
            workflow = admin.get_workflow(workflow_id)
            while workflow.get("status") == "RUNNING" and time.monotonic() < deadline:
                time.sleep(0.1)
                workflow = admin.get_workflow(workflow_id)
            return workflow

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None or group_members(proc.pid):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        # Supervised workers lead process groups of their own: none may outlive its test.
        pids = self.tmp / "pids"
        for pid in (int(p) for p in (pids.read_text().split() if pids.exists() else [])):
            if group_members(pid):
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def lab(sandbox: SandboxProcess, tmp_path: Path) -> Iterator[AgentLab]:
    instance = AgentLab(sandbox, tmp_path)
    yield instance
    instance.cleanup()


def environ_of(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()
