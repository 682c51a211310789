"""Writing environment files and reading the sandbox's requests.log for the apply tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision


@dataclass
class App:
    name: str
    tasks: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=lambda: ["WORKER"])
    store: str | None = None
    workflows: list[str] = field(default_factory=list)


def env_text(name: str, apps: list[App], *, tasks: dict[str, dict[str, Any]] | None = None,
             workflow_files: list[str] | None = None) -> str:
    lines = [f"name = {json.dumps(name)}", ""]
    for task, fields in (tasks or {}).items():
        lines += ["[[tasks]]", f"name = {json.dumps(task)}"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in fields.items()]
        lines.append("")
    for path in workflow_files or []:
        lines += ["[[workflows]]", f"file = {json.dumps(path)}", ""]
    for app in apps:
        lines += ["[[applications]]", f"name = {json.dumps(app.name)}", f"roles = {json.dumps(app.roles)}"]
        if app.store:
            lines.append(f"store = {json.dumps(app.store)}")
        if app.tasks or app.workflows:
            lines.append("[[applications.grants]]")
            if app.tasks:
                lines.append(f"tasks = {json.dumps(app.tasks)}")
            if app.workflows:
                lines.append(f"workflows = {json.dumps(app.workflows)}")
        lines.append("")
    return "\n".join(lines)


def admin_client(sandbox: SandboxProcess) -> OrkesClient:
    return OrkesClient(Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret))


def run(sandbox: SandboxProcess, cwd: Path, *args: str) -> Any:
    """``provision ARGS`` as the sandbox's admin, in ``cwd``."""
    return provision(list(args), env=dict(sandbox.admin_env), cwd=cwd, timeout=120)


def run_ok(sandbox: SandboxProcess, cwd: Path, *args: str) -> Any:
    result = run(sandbox, cwd, *args)
    assert result.returncode == 0, output(result)
    return result


def timestamp(entry: dict[str, Any]) -> float:
    """When a requests.log entry ended (the line is written when the answer went out)."""
    return datetime.fromisoformat(str(entry["time"]).replace("Z", "+00:00")).timestamp()


def started(entry: dict[str, Any]) -> float:
    return timestamp(entry) - float(entry["durationMs"]) / 1000


def grants_of(client: OrkesClient, app_id: str) -> dict[tuple[str, str], set[str]]:
    return {(g.target.type, g.target.id): set(g.access) for g in client.get_user_permissions(f"app:{app_id}")}


def apps_named(client: OrkesClient, name: str) -> list[Any]:
    return [a for a in client.list_applications() if a.name == name]
