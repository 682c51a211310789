"""The audit log: every provisioning and rotation action, done or failed, is one JSON line with time,
actor (the provisioning key id), server, action, target and result (key ids only), and
``provision audit --since ... --json`` shows them. Runs the real CLI against the shared sandbox."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orkes_provision.audit import audit_path
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision

REQUIRED = {"time", "actor", "server", "action", "target", "result"}


def run(sandbox: SandboxProcess, *args: str, cwd: Path | None = None, expect: int = 0) -> Any:
    result = provision(list(args), env=dict(sandbox.admin_env), cwd=cwd, timeout=120)
    assert result.returncode == expect, output(result)
    return result


def audit_entries(sandbox: SandboxProcess, *extra: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads(run(sandbox, "audit", "--json", *extra).stdout)
    return entries


def actions(entries: list[dict[str, Any]], app: str) -> list[tuple[str, str]]:
    return [(e["action"], e["result"]) for e in entries if e.get("app") == app]


def assert_well_formed(entries: list[dict[str, Any]], sandbox: SandboxProcess) -> None:
    secret = sandbox.admin_secret.get_secret_value()
    now = datetime.now(UTC)
    for entry in entries:
        assert REQUIRED | {"prev", "hash"} <= set(entry) <= REQUIRED | {"app", "keyId", "prev", "hash"}, entry
        assert entry["actor"] == sandbox.admin_key_id
        assert entry["server"] == sandbox.url
        assert now - timedelta(minutes=10) < datetime.fromisoformat(entry["time"]) <= now
        assert secret not in json.dumps(entry)


def test_provision_app_and_key_commands_record_each_action_with_key_ids(rel_sandbox: SandboxProcess,
                                                                        tmp_path: Path) -> None:
    app, store = "audit-app", f"env-file:{tmp_path / 'w.env'}"
    run(rel_sandbox, "app", app, "--worker", "--grant", "audit-task", "--register-tasks", "--store", store)
    created = json.loads(run(rel_sandbox, "keys", "create", app, "--store", f"env-file:{tmp_path / 'w2.env'}",
                             "--json").stdout)["keyId"]
    run(rel_sandbox, "keys", "deactivate", app, created, "--yes")
    run(rel_sandbox, "keys", "activate", app, created)
    run(rel_sandbox, "keys", "delete", app, created, "--yes")
    run(rel_sandbox, "grant", app, "audit-task", "--access", "READ")
    run(rel_sandbox, "revoke", app, "audit-task", "--access", "READ", "--yes")
    entries = audit_entries(rel_sandbox, "--since", "1h")
    assert_well_formed(entries, rel_sandbox)
    done = actions(entries, app)
    # provision app: the application first, then its role, key and grant (the last three run concurrently).
    assert done[0] == ("create_app", "ok")
    assert sorted(done[1:4]) == [("add_role", "ok"), ("create_key", "ok"), ("grant", "ok")]
    assert done[4:] == [("create_key", "ok"), ("deactivate_key", "ok"), ("activate_key", "ok"), ("delete_key", "ok"),
                        ("grant", "ok"), ("revoke", "ok")]
    assert ("register_task", "ok", "audit-task") in [(e["action"], e["result"], e["target"]) for e in entries]
    stored = (tmp_path / "w.env").read_text()
    first_key = next(e["keyId"] for e in entries if e["action"] == "create_key")
    assert f"CONDUCTOR_AUTH_KEY={first_key}" in stored
    assert [e["keyId"] for e in entries if e["action"] in ("deactivate_key", "activate_key", "delete_key")] \
        == [created] * 3
    assert audit_path().exists() and stat.S_IMODE(os.stat(audit_path()).st_mode) == 0o600


def test_apply_with_prune_and_apps_delete_record_each_change(rel_sandbox: SandboxProcess, tmp_path: Path) -> None:
    env = tmp_path / "env.toml"
    body = 'name = "audit-env"\n[[tasks]]\nname = "audit-env-task"\n'
    app = '[[applications]]\nname = "audit-env-app"\nroles = {roles}\n[[applications.grants]]\n' \
          'tasks = ["audit-env-task"]\naccess = {access}\n'
    env.write_text(body + app.format(roles='["WORKER", "METADATA_API"]', access='["EXECUTE", "READ"]')
                   + '[[applications]]\nname = "audit-env-extra"\nroles = []\n')
    run(rel_sandbox, "apply", "-f", str(env), "--auto-approve")
    env.write_text(body + app.format(roles='["WORKER"]', access='["EXECUTE"]'))
    run(rel_sandbox, "apply", "-f", str(env), "--auto-approve", "--prune")
    run(rel_sandbox, "apps", "delete", "audit-env-app", "--yes")
    entries = audit_entries(rel_sandbox, "--since", "1h")
    assert_well_formed(entries, rel_sandbox)
    assert sorted(actions(entries, "audit-env-app")) == sorted([
        ("create_app", "ok"), ("add_role", "ok"), ("add_role", "ok"), ("grant", "ok"),
        ("revoke", "ok"), ("remove_role", "ok"), ("delete_app", "ok")])
    assert actions(entries, "audit-env-extra") == [("create_app", "ok"), ("delete_app", "ok")]
    assert ("register_task", "ok") in [(e["action"], e["result"]) for e in entries if e["target"] == "audit-env-task"]


def test_a_rotation_records_every_step_and_a_failed_one_says_so(sandbox_without_faults: SandboxProcess,
                                                                tmp_path: Path) -> None:
    rel_sandbox = sandbox_without_faults
    app, store = "audit-rotate", f"env-file:{tmp_path / 'w.env'}"
    run(rel_sandbox, "app", app, "--worker", "--grant", "audit-task", "--register-tasks", "--store", store)
    rel_sandbox.add_fault("POST", r"^/api/applications/[^/]+/accessKeys/[^/]+/status$", count=10, status=409)
    run(rel_sandbox, "keys", "rotate", app, "--grace", "0s", "--switch-wait", "0", expect=7)
    rel_sandbox.clear_faults()
    run(rel_sandbox, "keys", "rotate", app, "--grace", "0s", "--switch-wait", "0")
    entries = audit_entries(rel_sandbox, "--since", "1h")
    assert_well_formed(entries, rel_sandbox)
    steps = actions(entries, app)[4:]  # after the four of 'provision app'
    assert steps == [("rotate_start", "ok"), ("create_key", "ok"), ("store_key", "ok"), ("verify_key", "ok"),
                     ("rotate", "failed"), ("deactivate_key", "ok"), ("delete_key", "ok"), ("rotate", "ok")]
    mine = [e for e in entries if e.get("app") == app]
    new_key = next(e["keyId"] for e in mine if e["action"] == "store_key")
    assert [e["keyId"] for e in mine if e["action"] == "rotate"] == [new_key, new_key]
    old_key = next(e["keyId"] for e in mine if e["action"] == "create_key")
    assert [e["keyId"] for e in mine if e["action"] in ("deactivate_key", "delete_key")] == [old_key, old_key]


def test_failed_direct_changes_are_recorded_as_failed(sandbox_without_faults: SandboxProcess, tmp_path: Path) -> None:
    rel_sandbox = sandbox_without_faults
    app = "audit-fail"
    run(rel_sandbox, "app", app, "--role", "METADATA_API", "--store", f"env-file:{tmp_path / 'w.env'}")
    run(rel_sandbox, "keys", "delete", app, "no-such-key", expect=6)
    rel_sandbox.add_fault("POST", r"^/api/auth/authorization$", count=10, status=500)
    run(rel_sandbox, "grant", app, "audit-task", expect=8)
    rel_sandbox.add_fault("POST", r"^/api/applications/[^/]+/accessKeys$", count=1, status=500)
    run(rel_sandbox, "keys", "create", app, "--store", f"env-file:{tmp_path / 'w2.env'}", expect=8)
    rel_sandbox.clear_faults()
    entries = audit_entries(rel_sandbox)
    assert_well_formed(entries, rel_sandbox)
    assert actions(entries, app)[-3:] == [("delete_key", "failed"), ("grant", "failed"), ("create_key", "failed")]
    assert [e.get("keyId") for e in entries if e.get("app") == app][-3] == "no-such-key"


def test_audit_since_filters_and_renders(rel_sandbox: SandboxProcess) -> None:
    run(rel_sandbox, "keys", "list", "sandbox-admin")  # reads are not audited
    assert audit_entries(rel_sandbox) == []
    run(rel_sandbox, "app", "audit-since", "--role", "METADATA_API", "--store", "json", "--json")
    entries = audit_entries(rel_sandbox, "--since", "1h")
    # add_role and create_key both wait only for create_app and run at once: either may be logged first.
    assert entries[0]["action"] == "create_app"
    assert sorted(e["action"] for e in entries[1:]) == ["add_role", "create_key"]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert audit_entries(rel_sandbox, "--since", future) == []
    text = run(rel_sandbox, "audit", "--since", "15m").stdout.splitlines()
    assert len(text) == 3 and all("audit-since" in line for line in text)
    key_line = next(i for i, e in enumerate(entries) if e["action"] == "create_key")
    assert f"key {entries[key_line]['keyId']}" in text[key_line]
    bad = provision(["audit", "--since", "yesterday"])
    assert bad.returncode == 2 and bad.stderr.startswith("error: --since 'yesterday'")


@pytest.mark.parametrize("line", ['{"torn": ', "not json", '{"time": "2026-01-01T00:00:00+00:00"}', "[1, 2]",
                                  '{"time": 5, "action": "x"}', '{"time": "2099-01-01T00:00:00", "action": "naive"}',
                                  '{"time": "2026-11-01T00:00:00+00:00", "action": "hand", "result": [1]}'])
def test_a_damaged_line_in_the_log_does_not_break_the_listing(rel_sandbox: SandboxProcess, line: str) -> None:
    app = f"audit-damaged-{abs(hash(line)) % 10**6}"
    run(rel_sandbox, "app", app, "--role", "METADATA_API", "--store", "json", "--json")
    with audit_path().open("a") as handle:
        handle.write(line + "\n")
    for args in (["audit", "--json"], ["audit", "--json", "--since", "1h"], ["audit"], ["audit", "--since", "7d"]):
        result = provision(args)
        assert result.returncode == 0, output(result)
        assert "Traceback" not in result.stderr
    listed = json.loads(provision(["audit", "--json", "--since", "1h"]).stdout)
    actions = [e["action"] for e in listed]
    # add_role and create_key both wait only for create_app and run at once: either may be logged first.
    assert actions[0] == "create_app" and sorted(actions[1:]) == ["add_role", "create_key"], actions
