"""What plan and drift read: the applications' roles from one list of users when there are many applications.

With more declared applications than reads in flight, one ``GET /api/users?apps=true`` (each
application's user comes with its roles) replaces one ``GET /api/users/app:<id>`` per application;
with few, the reads take one round trip anyway and the list is not read. Either way, a role added
or removed by hand is found.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from orkes_provision.access.state import app_roles
from orkes_provision.orkes.models import Application, Role, User
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output
from tests.environments.apply.helpers import App, admin_client, apps_named, env_text, run, run_ok

APPS = [App("reads-a", roles=["WORKER"]), App("reads-b", roles=["WORKER", "METADATA_API"]), App("reads-c", roles=[])]


def _user_reads(sandbox: SandboxProcess, mark: int) -> tuple[int, int]:
    """(lists of users, reads of one application's user) since ``mark``."""
    gets = [r["path"] for r in sandbox.requests()[mark:] if r["method"] == "GET"]
    lists = sum(1 for p in gets if p == "/api/users")
    one_by_one = sum(1 for p in gets if p.startswith("/api/users/app:") and not p.endswith("/permissions"))
    return lists, one_by_one


def _changed_by_hand(sandbox: SandboxProcess, tmp_path: Path) -> None:
    (tmp_path / "env.toml").write_text(env_text("reads", APPS))
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    with admin_client(sandbox) as client:
        client.remove_role(apps_named(client, "reads-b")[0].id, "METADATA_API")
        client.add_role(apps_named(client, "reads-c")[0].id, "USER")


def _role_changes(plan: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    return sorted((c["action"], c["app"], c["target"]) for c in plan["changes"] if "role" in c["action"])


def test_many_applications_read_their_roles_from_one_list_and_a_hand_made_change_is_found(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    _changed_by_hand(sandbox, tmp_path)
    mark = sandbox.mark()
    planned = run(sandbox, tmp_path, "plan", "-f", "env.toml", "--prune", "--json", "--parallelism", "2")
    assert planned.returncode == 0, output(planned)
    assert _role_changes(json.loads(planned.stdout)) == [("add_role", "reads-b", "METADATA_API"),
                                                         ("remove_role", "reads-c", "USER")]
    assert _user_reads(sandbox, mark) == (1, 0)

    mark = sandbox.mark()
    drift = run(sandbox, tmp_path, "drift", "-f", "env.toml", "--json", "--parallelism", "2")
    assert drift.returncode == 2, output(drift)
    kinds = sorted((d["kind"], d["subject"]) for d in json.loads(drift.stdout)["differences"])
    assert kinds == [("role_extra", "application reads-c"), ("role_missing", "application reads-b")]
    assert _user_reads(sandbox, mark) == (1, 0)


def test_few_applications_read_each_user_and_not_the_list(sandbox: SandboxProcess, tmp_path: Path) -> None:
    _changed_by_hand(sandbox, tmp_path)
    mark = sandbox.mark()
    planned = run(sandbox, tmp_path, "plan", "-f", "env.toml", "--prune", "--json")
    assert _role_changes(json.loads(planned.stdout)) == [("add_role", "reads-b", "METADATA_API"),
                                                         ("remove_role", "reads-c", "USER")]
    assert _user_reads(sandbox, mark) == (0, 3)


class _Users:
    """A client whose list of users lacks one application's user (created after the list was read)."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def get_app_user(self, app_id: str) -> User:
        self.read.append(app_id)
        return User(id=f"app:{app_id}", roles=[Role(name="WORKER")], application_user=True)


def test_an_application_missing_from_the_list_is_read_on_its_own() -> None:
    apps = [Application(id="a1", name="one"), Application(id="a2", name="two")]
    listed = [User(id="app:a1", roles=[Role(name="USER")], application_user=True),
              User(id="ada@example.com", roles=[Role(name="ADMIN")])]
    client = _Users()
    with ThreadPoolExecutor(2) as pool:
        roles = app_roles(client, pool, apps, listed)  # type: ignore[arg-type]
    assert roles == {"a1": {"USER"}, "a2": {"WORKER"}}
    assert client.read == ["a2"]
