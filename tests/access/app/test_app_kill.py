"""Kill test: ``provision app`` SIGKILLed at every request of a first run converges on one rerun.

A proxy on loopback (``holding_proxy``) forwards the run to the sandbox and, cell by cell, holds
the answer of one kind of request: the server has done the work, the client never hears of it,
and the test SIGKILLs the process group right then. One rerun of the same command must then leave
exactly one ACTIVE key for the application, held by the env file it was delivered to, accepted
by the server. A kill while ``POST .../accessKeys`` is answered is the case that used to leave an
orphan: an ACTIVE key whose secret is in no store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from orkes_provision.credentials.stores.envfile import parse_env
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.sandbox.harness import SandboxProcess
from tests import kill_cells
from tests.access.app.holding_proxy import HoldingProxy
from tests.cli import PROVISION, start


@pytest.fixture
def proxy(sandbox: SandboxProcess) -> Iterator[HoldingProxy]:
    holding = HoldingProxy(sandbox.url)
    yield holding
    holding.close()


def command(app: str, task: str) -> list[str]:
    return [PROVISION, "app", app, "--worker", "--grant", task, "--register-tasks", "--store", f"env-file:{app}.env"]


def environment(sandbox: SandboxProcess, proxy: HoldingProxy) -> dict[str, str]:
    return {**os.environ, **sandbox.admin_env, "CONDUCTOR_SERVER_URL": proxy.url}


def names(app: str, task: str) -> dict[str, str]:
    return {app: "{app}", task: "{task}"}


def killed_run(cmd: list[str], env: dict[str, str], cwd: Path, proxy: HoldingProxy) -> bool:
    """Start ``cmd``; SIGKILL its group once the proxy holds an answer. False if it ended first."""
    proc = start(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                 start_new_session=True)
    try:
        while not proxy.held.wait(timeout=0.05):
            if proc.poll() is not None:
                return False
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        return True
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        proxy.release.set()


def test_provision_app_killed_at_every_request_of_a_first_run_converges_on_one_rerun(
        sandbox: SandboxProcess, proxy: HoldingProxy, tmp_path: Path) -> None:
    env = environment(sandbox, proxy)
    probe_app, probe_task = "kill-probe", "kill-probe-task"
    proxy.arm(None, names(probe_app, probe_task))
    first = subprocess.run(command(probe_app, probe_task), env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=120, check=False)
    assert first.returncode == 0, first.stderr
    kinds = list(dict.fromkeys(proxy.kinds))
    assert any(k.endswith("/accessKeys") and k.startswith("POST") for k in kinds), kinds

    admin = OrkesClient(Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret))
    failures: list[str] = []
    for kind in kinds:
        cell = kill_cells.record("provision app (first run)", kind)
        app, task = f"k-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
        proxy.arm(kind, names(app, task))
        if not killed_run(command(app, task), env, tmp_path, proxy):
            cell.outcome = "FAILED: the run ended before that request"
            failures.append(kind)
            continue
        proxy.arm(None, names(app, task))
        rerun = subprocess.run(command(app, task), env=env, cwd=tmp_path, capture_output=True, text=True,
                               timeout=120, check=False)
        cell.rerun = f"exit {rerun.returncode}"
        if rerun.returncode != 0:
            cell.outcome = f"FAILED: {rerun.stderr.strip().splitlines()[-2:]}"
            failures.append(kind)
            continue
        (application,) = [a for a in admin.list_applications() if a.name == app]
        active = [k.id for k in admin.list_keys(application.id) if k.status == "ACTIVE"]
        cell.active_keys = str(len(active))
        stored = parse_env((tmp_path / f"{app}.env").read_text())
        held = stored.get("CONDUCTOR_AUTH_KEY")
        cell.stores = "env file: yes" if active == [held] else f"env file: {held}"
        works = admin.exchange_token(stored["CONDUCTOR_AUTH_KEY"], SecretStr(stored["CONDUCTOR_AUTH_SECRET"]))
        cell.authenticates = "yes" if works else "no"
        if len(active) == 1 and active == [held] and works:
            cell.outcome = "ok"
        else:
            failures.append(kind)
    admin.close()
    assert not failures, f"cells that did not converge: {failures}\n{kill_cells.render(kill_cells.CELLS)}"
