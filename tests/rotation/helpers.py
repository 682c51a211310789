"""Helpers for the rotation tests: a worker application with a delivered key, and checks on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orkes_provision.access.keys import create_and_store_key, key_authenticates
from orkes_provision.credentials.stores import CredentialStore, StoredKey
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Application, Target, TaskDef, app_subject
from tests.cli import run_provision

PROVISION = str(Path(sys.executable).with_name("provision"))
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class WorkerApp:
    app: Application
    key: StoredKey

    @property
    def id(self) -> str:
        return self.app.id

    @property
    def name(self) -> str:
        return self.app.name


def make_worker_app(client: OrkesClient, server: str, name: str, stores: Sequence[CredentialStore],
                    tasks: tuple[str, ...] = ()) -> WorkerApp:
    """An application with WORKER, EXECUTE on ``tasks`` and one key delivered to ``stores``, as
    ``provision app NAME --worker --grant TASK`` leaves it."""
    app = client.create_application(name)
    client.add_role(app.id, "WORKER")
    if tasks:
        client.register_task_defs([TaskDef(name=task) for task in tasks])
    for task in tasks:
        client.grant(app_subject(app.id), Target(type="TASK_DEF", id=task), ["EXECUTE"])
    key = create_and_store_key(client, server=server, app_name=name, app_id=app.id, stores=list(stores),
                               known_key_ids=set(), actor=client.key_id)
    return WorkerApp(app=app, key=key)


def key_statuses(client: OrkesClient, app_id: str) -> dict[str, str]:
    return {k.id: k.status for k in client.list_keys(app_id)}


def active_keys(client: OrkesClient, app_id: str) -> list[str]:
    return [k for k, status in key_statuses(client, app_id).items() if status == "ACTIVE"]


# The library's own check, under the name the rotation tests read best with.
authenticates = key_authenticates


def cli_env(sandbox_env: Mapping[str, str], state_dir: Path, home: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``provision`` subprocess: admin credentials, private state and home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDUCTOR_", "ORKES_PROVISION_"))}
    env.update(sandbox_env)
    env.update({"ORKES_PROVISION_STATE_DIR": str(state_dir), "HOME": str(home),
                "XDG_CONFIG_HOME": str(home / ".config"), **extra})
    return env


def provision(args: Sequence[str], env: Mapping[str, str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return run_provision(args, env=env, timeout=timeout, cwd=REPO)


def json_out(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.stdout.strip(), f"no output; stderr: {result.stderr}"
    return json.loads(result.stdout)
