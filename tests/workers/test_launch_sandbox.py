"""Launching against the sandbox: the preflight's verdicts, the Python template running for real
(conductor-python 2.0.0) under 'provision worker run', and 'make demo' end to end."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials, TaskDef
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import run_provision, start
from tests.workers.launch_helpers import PROVISION, REPO, alive, group_members

APP = "greetings-worker"
WORKFLOW = {
    "name": "greetings", "version": 1, "schemaVersion": 2, "ownerEmail": "test@example.com",
    "tasks": [{"name": "greetings", "taskReferenceName": "greetings_ref", "type": "SIMPLE",
               "inputParameters": {"name": "${workflow.input.name}"}}],
    "outputParameters": {"greeting": "${greetings_ref.output.greeting}"},
}

pytestmark = pytest.mark.slow


class Lab:
    """A sandbox, an env-file store, a scaffolded Python project, and provision runs against them."""

    def __init__(self, sandbox: SandboxProcess, tmp_path: Path) -> None:
        self.sandbox = sandbox
        self.tmp = tmp_path
        self.store = f"env-file:{tmp_path / 'worker.env'}"
        self.project = tmp_path / "greetings"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDUCTOR_", "ORKES_PROVISION_"))}
        self.env.update(sandbox.admin_env)
        self.env.update({"ORKES_PROVISION_CONFIG": str(tmp_path / "config.toml"),
                         "ORKES_PROVISION_STATE_DIR": str(tmp_path / "state"),
                         # the template runs 'python3 main.py': the Python that has conductor-python
                         "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
        self.workers: list[subprocess.Popen[str]] = []

    def admin(self) -> OrkesClient:
        return OrkesClient(Credentials(server=self.sandbox.url, key_id=self.sandbox.admin_key_id,
                                       secret=self.sandbox.admin_secret))

    def provision(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                  timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run_provision(args, cwd=cwd or self.tmp, env=env or self.env, timeout=timeout)

    def init(self, language: str = "python") -> None:
        result = self.provision("init", "--lang", language, str(self.project))
        assert result.returncode == 0, result.stderr

    def start_worker(self, *args: str) -> subprocess.Popen[str]:
        proc = start([str(PROVISION), "worker", "run", "greetings", "--store", self.store, *args],
                     cwd=self.project, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                     text=True, start_new_session=True)
        self.workers.append(proc)
        return proc

    def cleanup(self) -> None:
        for proc in self.workers:
            if proc.poll() is None or group_members(proc.pid):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def lab(sandbox: SandboxProcess, tmp_path: Path) -> Iterator[Lab]:
    instance = Lab(sandbox, tmp_path)
    yield instance
    instance.cleanup()


def test_preflight_refuses_a_worker_whose_application_lacks_the_grant_and_names_the_fix(lab: Lab) -> None:
    with lab.admin() as admin:
        admin.register_task_defs([TaskDef(name="greetings")])
    lab.init()
    made = lab.provision("app", APP, "--worker", "--store", lab.store)  # WORKER role and a key, but no grant
    assert made.returncode == 0, made.stderr
    result = lab.provision("worker", "run", "greetings", "--store", lab.store, cwd=lab.project)
    assert result.returncode == 11
    assert f"error: preflight: {APP} lacks EXECUTE on task greetings" in result.stderr
    assert f"hint: fix it (or pass --no-preflight to start the worker anyway): provision grant {APP} greetings" \
        in result.stderr
    assert "started pid" not in result.stderr
    secret = EnvFileStore(lab.tmp / "worker.env").load(lab.sandbox.url, APP)
    assert secret is not None
    assert secret.secret.get_secret_value() not in result.stdout + result.stderr


def test_preflight_without_provisioning_credentials_checks_what_the_key_itself_can_see(lab: Lab) -> None:
    made = lab.provision("app", "no-role-app", "--store", lab.store)  # a key, but no WORKER role
    assert made.returncode == 0, made.stderr
    worker_only = {k: v for k, v in lab.env.items() if k not in ("CONDUCTOR_AUTH_KEY", "CONDUCTOR_AUTH_SECRET")}
    refused = lab.provision("run", "--app", "no-role-app", "--store", lab.store, "--", "true", env=worker_only)
    assert refused.returncode == 11
    assert "preflight: no-role-app lacks the WORKER role" in refused.stderr
    assert "provision app no-role-app --worker" in refused.stderr
    assert lab.provision("app", "no-role-app", "--worker", "--store", lab.store).returncode == 0
    allowed = lab.provision("run", "--app", "no-role-app", "--store", lab.store, "--", "true", env=worker_only)
    assert allowed.returncode == 0, allowed.stderr
    assert "authenticates and has WORKER; EXECUTE grants not checked" in allowed.stderr
    assert "EXECUTE grants not checked (no provisioning credentials: CONDUCTOR_AUTH_KEY" in allowed.stderr


def run_greetings_workflow(lab: Lab, *worker_args: str) -> tuple[dict[str, Any], str, int]:
    """Provision the app, start the template's worker, run the workflow; stop the worker after."""
    made = lab.provision("app", "--worker", "--grant", "greetings", "--register-tasks", "--store", lab.store,
                         cwd=lab.project)
    assert made.returncode == 0, made.stderr
    with lab.admin() as admin:
        admin.register_workflow_def(WORKFLOW)
        proc = lab.start_worker(*worker_args)
        workflow_id = admin.start_workflow("greetings", {"name": "Orkes"})
        deadline = time.monotonic() + 60
        workflow = admin.get_workflow(workflow_id)
        while workflow.get("status") == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.2)
            workflow = admin.get_workflow(workflow_id)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=20)
    return workflow, output, proc.returncode


def test_the_python_template_worker_under_worker_run_completes_a_workflow(lab: Lab) -> None:
    lab.init()
    workflow, output, returncode = run_greetings_workflow(lab, "-vv")  # every request logged: still no secret
    assert workflow["status"] == "COMPLETED"
    assert workflow["output"] == {"greeting": "Hello, Orkes"}
    assert returncode == 0
    assert "preflight: ok" in output
    assert "GET /api/" in output or "GET /" in output, output[:2000]
    started = [int(line.rsplit(" ", 1)[1]) for line in output.splitlines() if " started pid " in line]
    assert len(started) == 1
    assert not alive(started[0])
    assert group_members(started[0]) == []
    key = EnvFileStore(lab.tmp / "worker.env").load(lab.sandbox.url, APP)
    assert key is not None
    assert key.secret.get_secret_value() not in output


def start_py(lab: Lab, name: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """The template's start.py as its README runs it: 'provision run -- python3 start.py NAME'."""
    return lab.provision("run", "--store", lab.store, "--", "python3", "start.py", name, cwd=lab.project,
                         timeout=120, **kwargs)


def test_the_python_template_start_py_registers_starts_and_prints_the_greetings_workflow(lab: Lab) -> None:
    lab.init()
    made = lab.provision("app", "--worker", "--role", "METADATA_API", "--grant", "greetings", "--register-tasks",
                         "--store", lab.store, cwd=lab.project)
    assert made.returncode == 0, made.stderr
    proc = lab.start_worker()
    try:
        first = start_py(lab, "Ada")
        again = start_py(lab, "Bo")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert first.returncode == 0, first.stdout + first.stderr
    assert re.fullmatch(r'Workflow \S+ COMPLETED: \{"greeting": "Hello, Ada"\}\n', first.stdout)
    assert "Registered the workflow greetings (version 1)" in first.stderr
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.endswith('COMPLETED: {"greeting": "Hello, Bo"}\n')
    assert "Registered" not in again.stderr  # the definition is there now: left as it is
    with lab.admin() as admin:
        definition = admin.get_workflow_def("greetings")
    assert [t["name"] for t in definition["tasks"]] == ["greetings"]
    key = EnvFileStore(lab.tmp / "worker.env").load(lab.sandbox.url, APP)
    assert key is not None
    assert key.secret.get_secret_value() not in first.stdout + first.stderr


def test_start_py_without_metadata_api_names_the_role_it_needs_instead_of_a_traceback(lab: Lab) -> None:
    lab.init()
    made = lab.provision("app", "--worker", "--grant", "greetings", "--register-tasks", "--store", lab.store,
                         cwd=lab.project)
    assert made.returncode == 0, made.stderr
    result = start_py(lab, "Ada")
    assert result.returncode == 1
    assert "error: the server has no workflow greetings and this application may not register one" in result.stderr
    assert "hint: give it the METADATA_API role (provision app --role METADATA_API)" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_ctrl_c_while_start_py_waits_for_a_worker_exits_130_without_a_traceback(lab: Lab) -> None:
    lab.init()
    made = lab.provision("app", "--worker", "--role", "METADATA_API", "--grant", "greetings", "--register-tasks",
                         "--store", lab.store, cwd=lab.project)
    assert made.returncode == 0, made.stderr
    # No worker runs: the workflow stays RUNNING and start.py waits until Ctrl-C.
    proc = start([str(PROVISION), "run", "--store", lab.store, "--", "python3", "start.py"],
                 cwd=lab.project, env=lab.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stderr is not None
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(line.startswith("waiting up to") for line in seen):
            seen.append(proc.stderr.readline())
        assert any(line.startswith("Started workflow greetings: ") for line in seen), seen
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
        rest = proc.stderr.read()
        assert proc.wait(timeout=20) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert rest.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in "".join(seen) + rest
    assert group_members(proc.pid) == []


def test_make_demo_prints_completed_and_hello_orkes_and_leaves_nothing_running() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDUCTOR_", "ORKES_PROVISION_"))}
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Workflow status: COMPLETED" in result.stdout
    assert "Workflow output: Hello, Orkes" in result.stdout
    assert "ok, no process left" in result.stdout
    assert time.monotonic() - started < 60
    # One readable line per step, in order.
    steps = [line.split(" ... ")[0] for line in result.stdout.splitlines() if " ... " in line]
    assert steps[0].startswith("Starting the sandbox")
    assert steps[-1] == "Stopping the worker and the sandbox"
    assert any(step.startswith("provision app --worker --grant greetings") for step in steps)
