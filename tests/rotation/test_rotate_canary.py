"""``keys rotate --all --canary N``: N applications first, proven by their supervised workers running the new key,
then the rest; the first failure leaves the remaining applications untouched and reported. Real ``provision run
--supervise`` processes stand in for the workers."""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.sandbox.harness import SandboxProcess
from orkes_provision.workers.status import supervised_workers
from tests.cli import process_group
from tests.rotation.helpers import (
    PROVISION,
    REPO,
    WorkerApp,
    cli_env,
    json_out,
    key_statuses,
    make_worker_app,
    provision,
)
from tests.rotation.test_rotate_supervised import wait_for_supervisor

pytestmark = pytest.mark.slow

FAST = ["--grace", "0s", "--switch-wait", "10s", "--canary-wait", "10s"]


@pytest.fixture
def env(shared_sandbox: SandboxProcess, state_dir: Path, tmp_path: Path) -> dict[str, str]:
    return cli_env(shared_sandbox.admin_env, state_dir, tmp_path / "home")


def fleet_of(admin: OrkesClient, server: str, tmp_path: Path, count: int) -> list[tuple[WorkerApp, EnvFileStore]]:
    prefix = f"can-{uuid.uuid4().hex[:6]}"
    out = []
    for i in range(count):
        store = EnvFileStore(tmp_path / f"w{i}.env")
        out.append((make_worker_app(admin, server, f"{prefix}-{i}", [store]), store))
    return out


@contextlib.contextmanager
def supervised(app: WorkerApp, store: EnvFileStore, env: dict[str, str], log: Path) -> Iterator[None]:
    cmd = [PROVISION, "run", "--app", app.name, "--store", store.spec, "--no-preflight", "--no-agent", "--supervise",
           "--",
           "sh", "-c", "exec sleep 120"]
    with process_group(cmd, env=env, cwd=REPO, log=log, append=False, stop_timeout=15):
        yield


def by_app(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["app"]: row for row in doc["applications"]}


def rotate_all(apps: list[tuple[WorkerApp, EnvFileStore]], env: dict[str, str], *extra: str,
               ) -> subprocess.CompletedProcess[str]:
    return provision(["keys", "rotate", "--all", *(a.name for a, _ in apps), *FAST, "--json", *extra], env,
                     timeout=120)


def test_the_canary_is_proven_by_its_supervised_worker_then_the_rest_rotate(
        admin: OrkesClient, server: str, tmp_path: Path, env: dict[str, str], state_dir: Path) -> None:
    apps = fleet_of(admin, server, tmp_path, 3)
    canary, store = apps[0]
    with supervised(canary, store, env, tmp_path / "supervisor.log"):
        wait_for_supervisor(server, canary, canary.key.key_id)
        result = rotate_all(apps, env, "--canary", "1")
        assert result.returncode == 0, result.stderr
        doc = json_out(result)
        new_key = by_app(doc)[canary.name]["rotation"]["newKeyId"]
        assert [s.keys_in_use for s in supervised_workers(server, canary.name)] == [{new_key}]
    assert doc["canaries"] == [canary.name]
    assert {row["result"] for row in doc["applications"]} == {"rotated"}
    # The canary's rotation ended before any other application's began (the audit log's order).
    records = [json.loads(line) for line in (state_dir / "audit.log").read_text().splitlines()]
    steps = [(r["app"], r["action"]) for r in records if r.get("app") in {a.name for a, _ in apps}
             and r["action"] in ("rotate_start", "rotate")]
    assert steps[:2] == [(canary.name, "rotate_start"), (canary.name, "rotate")]
    assert sorted(steps[2:]) == sorted((a.name, action) for a, _ in apps[1:] for action in ("rotate", "rotate_start"))


def test_a_canary_with_no_reporting_worker_stops_the_job_and_leaves_the_rest_untouched(
        admin: OrkesClient, server: str, tmp_path: Path, env: dict[str, str]) -> None:
    apps = fleet_of(admin, server, tmp_path, 3)
    result = rotate_all(apps, env, "--canary", "1", "--canary-wait", "1s", "--switch-wait", "0s")
    assert result.returncode == 11, result.stderr
    doc = json_out(result)
    rows = by_app(doc)
    assert rows[apps[0][0].name]["result"] == "failed"
    assert "no supervised worker or agent" in rows[apps[0][0].name]["error"]["message"]
    for app, _ in apps[1:]:
        assert rows[app.name]["result"] == "skipped"
        assert rows[app.name]["reason"] == f"not started: {apps[0][0].name} failed first"
        assert key_statuses(admin, app.id) == {app.key.key_id: "ACTIVE"}
    assert doc["counts"]["skipped"] == 2
    human = provision(["keys", "rotate", "--all", *(a.name for a, _ in apps[1:]), *FAST, "--canary", "1",
                       "--canary-wait", "1s", "--switch-wait", "0s"], env, timeout=120)
    assert human.returncode == 11
    assert f"{apps[2][0].name}: untouched (not started: {apps[1][0].name} failed first)" in human.stdout
    assert "1 left untouched" in human.stderr


def test_after_the_canary_the_first_failure_stops_the_rest(
        admin: OrkesClient, server: str, tmp_path: Path, env: dict[str, str], shared_sandbox: SandboxProcess) -> None:
    apps = fleet_of(admin, server, tmp_path, 3)
    canary, store = apps[0]
    failing = apps[1][0]
    shared_sandbox.add_fault("POST", rf"^/api/applications/{failing.id}/accessKeys$", count=20, status=500)
    try:
        with supervised(canary, store, env, tmp_path / "supervisor.log"):
            wait_for_supervisor(server, canary, canary.key.key_id)
            result = rotate_all(apps, env, "--canary", "1", "--parallelism", "1")
    finally:
        shared_sandbox.clear_faults()
    assert result.returncode == 8, result.stderr
    rows = by_app(json_out(result))
    assert [rows[a.name]["result"] for a, _ in apps] == ["rotated", "failed", "skipped"]
    last = apps[2][0]
    assert key_statuses(admin, last.id) == {last.key.key_id: "ACTIVE"}


def test_canary_needs_all(env: dict[str, str]) -> None:
    result = provision(["keys", "rotate", "some-app", "--canary", "1"], env)
    assert result.returncode == 2
    assert "--canary chooses among many applications: it needs --all" in result.stderr
