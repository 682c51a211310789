"""``provision keys``: the status commands only toggle when the status differs, even when an
answer is lost, because the server's only status call flips it."""

from __future__ import annotations

import json
from pathlib import Path

from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision


def _app_with_key(sandbox: SandboxProcess) -> tuple[OrkesClient, str, str]:
    client = OrkesClient(Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret))
    app = client.create_application("keyed")
    return client, app.id, client.create_key(app.id).id


def _status(client: OrkesClient, app_id: str, key_id: str) -> str:
    return {k.id: k.status for k in client.list_keys(app_id)}[key_id]


def test_deactivate_twice_toggles_once_and_reports_unchanged(sandbox: SandboxProcess, tmp_path: Path) -> None:
    client, app_id, key_id = _app_with_key(sandbox)
    first = provision(["keys", "deactivate", "keyed", key_id, "--json", "--yes"], env=sandbox.admin_env, cwd=tmp_path)
    assert first.returncode == 0, output(first)
    assert json.loads(first.stdout)["changed"] is True
    mark = sandbox.mark()
    second = provision(["keys", "deactivate", "keyed", key_id, "--json"], env=sandbox.admin_env, cwd=tmp_path)
    assert json.loads(second.stdout)["changed"] is False
    assert sandbox.write_requests(since=mark) == []
    assert _status(client, app_id, key_id) == "INACTIVE"


def test_a_lost_toggle_answer_is_not_toggled_back(sandbox: SandboxProcess, tmp_path: Path) -> None:
    client, app_id, key_id = _app_with_key(sandbox)
    sandbox.add_fault("POST", r"/accessKeys/[^/]+/status$", count=1, action="drop_after_commit")
    result = provision(["keys", "deactivate", "keyed", key_id, "--yes"], env=sandbox.admin_env, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert _status(client, app_id, key_id) == "INACTIVE"


def test_activate_an_unknown_key_names_the_listing_command(sandbox: SandboxProcess, tmp_path: Path) -> None:
    _app_with_key(sandbox)
    result = provision(["keys", "activate", "keyed", "no-such-key"], env=sandbox.admin_env, cwd=tmp_path)
    assert result.returncode == 6
    assert "keyed has no key no-such-key" in result.stderr
    assert "provision keys list keyed" in result.stderr
