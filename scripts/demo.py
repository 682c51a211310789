"""``make demo``: from nothing to a worker that completes a workflow, with no Orkes account.

Starts the local sandbox (free port, temporary data directory), registers the task and the
workflow ``greetings``, scaffolds a Python worker with ``provision init``, provisions its
application with ``provision app --worker --grant greetings`` (key into the keyring, or into an
env file where no keyring works), starts it with ``provision worker run greetings``, runs the
workflow with ``{"name": "Orkes"}``, prints its status and output, then stops everything and
checks that no process it started is left. One line per step; the commands' own output goes to
a log file in the temporary directory, shown only when a step fails.

Exit status: 0 when the workflow completed with ``Hello, Orkes`` and nothing was left running.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orkes_provision.errors import ProvisionError
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials, TaskDef
from orkes_provision.sandbox.harness import SandboxProcess

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROVISION = BIN / "provision"
APP = "greetings-worker"
MARKER = "ORKES_PROVISION_DEMO"
WORKFLOW = {
    "name": "greetings", "version": 1, "schemaVersion": 2, "ownerEmail": "demo@example.com",
    "description": "One SIMPLE task: greet the name given as input.",
    "tasks": [{"name": "greetings", "taskReferenceName": "greetings_ref", "type": "SIMPLE",
               "inputParameters": {"name": "${workflow.input.name}"}}],
    "outputParameters": {"greeting": "${greetings_ref.output.greeting}"},
}


class DemoFailed(Exception):
    pass


class Demo:
    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="orkes-provision-demo-"))
        self.log_path = self.tmp / "demo.log"
        self.run_id = f"{os.getpid()}-{int(time.time())}"
        self.sandbox: SandboxProcess | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.store_args: list[str] = []
        self.keyring_used = False
        self.env: dict[str, str] = {}

    # ----- output ------------------------------------------------------------------------------

    @staticmethod
    def say(message: str) -> None:
        print(message, flush=True)

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[dict[str, str]]:
        """Print ``title ... result`` on one line; the body sets ``result['text']``."""
        print(f"{title} ... ", end="", flush=True)
        result = {"text": "ok"}
        try:
            yield result
        except BaseException:
            print("FAILED", flush=True)
            raise
        print(result["text"], flush=True)

    def provision(self, *args: str, cwd: Path | None = None, timeout: float = 60) -> str:
        """Run ``provision ARGS`` with the demo's environment; its output goes to the log."""
        with self.log_path.open("a") as log:
            log.write(f"\n$ provision {' '.join(args)}\n")
            log.flush()
            result = subprocess.run([str(PROVISION), *args], cwd=cwd or self.tmp, env=self.env, timeout=timeout,
                                    stdout=subprocess.PIPE, stderr=log, text=True, check=False)
            log.write(result.stdout)
        if result.returncode != 0:
            raise DemoFailed(f"'provision {' '.join(args)}' exited with {result.returncode}")
        return result.stdout

    # ----- steps -------------------------------------------------------------------------------

    def run(self) -> int:
        with self.step("Starting the sandbox (a local Orkes-compatible server) on a free port") as out:
            self.sandbox = SandboxProcess(self.tmp / "sandbox", env={**os.environ, MARKER: self.run_id}).start()
            out["text"] = f"{self.sandbox.url} (admin key in {self.sandbox.admin_env_path})"
        sandbox = self.sandbox
        self.env = self._environment(sandbox)
        admin = OrkesClient(Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret))
        with admin:
            with self.step("Registering the task 'greetings' and the workflow 'greetings'"):
                admin.register_task_defs([TaskDef(name="greetings", description="Greet someone by name",
                                                  response_timeout_seconds=30, timeout_seconds=60)])
                admin.register_workflow_def(WORKFLOW)
            project = self.tmp / "greetings"
            with self.step("provision init --lang python greetings") as out:
                self.provision("init", "--lang", "python", str(project))
                out["text"] = f"worker project in {project}"
            self._provision_app(project)
            title = " ".join(["provision worker run greetings", *self.store_args, "(in the background)"])
            with self.step(title) as out:
                out["text"] = self._start_worker(project)
            with self.step('Starting the workflow greetings with {"name": "Orkes"}') as out:
                workflow_id = admin.start_workflow("greetings", {"name": "Orkes"})
                out["text"] = f"workflow {workflow_id}"
            workflow = self._wait_for_workflow(admin, workflow_id)
        status = str(workflow.get("status"))
        greeting = (workflow.get("output") or {}).get("greeting")
        self.say(f"Workflow status: {status}")
        self.say(f"Workflow output: {greeting}")
        if status != "COMPLETED" or greeting != "Hello, Orkes":
            raise DemoFailed(f"expected COMPLETED and 'Hello, Orkes', got {status} and {greeting!r}")
        return 0

    def _environment(self, sandbox: SandboxProcess) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDUCTOR_", "ORKES_PROVISION_"))}
        env.update(sandbox.admin_env)  # provision app uses the sandbox's admin application
        env[MARKER] = self.run_id  # inherited by every process the demo starts: see check_process_table
        env["ORKES_PROVISION_CONFIG"] = str(self.tmp / "config.toml")  # leave the user's profiles alone
        env["ORKES_PROVISION_STATE_DIR"] = str(self.tmp / "state")
        # The template's command is 'python3 main.py': make that the Python that has conductor-python.
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', os.defpath)}"
        return env

    def _provision_app(self, project: Path) -> None:
        from orkes_provision.credentials.stores.keyring_store import usable_keyring

        title = "provision app --worker --grant greetings"
        if usable_keyring() is not None:
            with self.step(f"{title} (key into the keyring)") as out:
                try:
                    out["text"] = self._app_summary(self.provision("--json", "app", "--worker", "--grant", "greetings",
                                                                   cwd=project))
                    self.keyring_used = True
                    return
                except DemoFailed:
                    out["text"] = "the keyring refused the key; falling back to an env file"
        else:
            self.say("No keyring backend here (no Secret Service): the key goes to an env file instead.")
        worker_env = self.tmp / "worker.env"
        self.store_args = ["--store", f"env-file:{worker_env}"]
        with self.step(f"{title} --store env-file:{worker_env}") as out:
            out["text"] = self._app_summary(self.provision("--json", "app", "--worker", "--grant", "greetings",
                                                           *self.store_args, cwd=project))

    @staticmethod
    def _app_summary(stdout: str) -> str:
        result = json.loads(stdout)
        return (f"application {result['app']}, role WORKER, key {result['keyId']} in {result['store']}, "
                f"EXECUTE on greetings")

    def _start_worker(self, project: Path) -> str:
        worker_log = self.tmp / "worker.log"
        with worker_log.open("ab") as log:
            self.worker = subprocess.Popen([str(PROVISION), "worker", "run", "greetings", *self.store_args],
                                           cwd=project, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = worker_log.read_text(errors="replace")
            if self.worker.poll() is not None:
                raise DemoFailed(f"'provision worker run greetings' exited with {self.worker.returncode}:\n{text}")
            if "started pid" in text:
                pid = text.split("started pid", 1)[1].split()[0]
                return f"preflight passed, worker pid {pid} (log: {worker_log})"
            time.sleep(0.1)
        raise DemoFailed("the worker did not start within 30 s")

    def _wait_for_workflow(self, admin: OrkesClient, workflow_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 40
        while True:
            workflow = admin.get_workflow(workflow_id)
            if workflow.get("status") not in ("RUNNING", "PAUSED") or time.monotonic() >= deadline:
                return workflow
            time.sleep(0.2)

    # ----- clean-up ----------------------------------------------------------------------------

    def stop(self) -> list[str]:
        """Stop the worker and the sandbox; return what is still running (should be nothing)."""
        if self.worker is not None and self.worker.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.worker.pid, signal.SIGTERM)  # provision stops its worker group, then exits
            try:
                self.worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.worker.pid, signal.SIGKILL)
                self.worker.wait(timeout=10)
        if self.sandbox is not None:
            if self.keyring_used:
                self._forget_keyring_entry(self.sandbox.url)
            self.sandbox.stop()
        return self._leftovers(timeout=10)

    def _forget_keyring_entry(self, server: str) -> None:
        # The demo's key is for a server that is about to vanish: do not leave it in the keyring.
        with contextlib.suppress(ProvisionError):
            from orkes_provision.credentials.stores import open_store

            open_store("keyring").delete(server, APP)

    def _leftovers(self, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = processes_with_marker(MARKER, self.run_id)
            if not found or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        for pid, _ in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return [f"{pid} {cmd}" for pid, cmd in found]


def processes_with_marker(name: str, value: str) -> list[tuple[int, str]]:
    """Live processes whose environment has ``name=value`` (every process the demo started has it)."""
    needle = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                found.append((int(entry.name), cmd))
        except (OSError, IndexError):  # gone meanwhile, or a stat line cut short
            continue
    return found


def main() -> int:
    started = time.monotonic()
    demo = Demo()
    code = 1
    try:
        code = demo.run()
    except (DemoFailed, ProvisionError, subprocess.TimeoutExpired, OSError) as err:
        message = err.message if isinstance(err, ProvisionError) else str(err)
        print(f"demo failed: {message}", file=sys.stderr)
        with contextlib.suppress(OSError):
            print(f"--- end of {demo.log_path}:\n{demo.log_path.read_text()[-3000:]}", file=sys.stderr)
        with contextlib.suppress(OSError):
            print(f"--- end of worker log:\n{(demo.tmp / 'worker.log').read_text()[-3000:]}", file=sys.stderr)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        code = 130
    finally:
        print("Stopping the worker and the sandbox ... ", end="", flush=True)
        leftovers = demo.stop()
        if leftovers:
            print("FAILED: still running (now killed): " + "; ".join(leftovers), flush=True)
            code = code or 1
        else:
            print("ok, no process left", flush=True)
    if code == 0:
        shutil.rmtree(demo.tmp, ignore_errors=True)
        print(f"Demo finished in {time.monotonic() - started:.1f}s.")
    else:
        print(f"Logs kept in {demo.tmp}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
