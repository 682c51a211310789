"""Apply under server faults (the sandbox's fault plan): partial failures converge on rerun, 429 slows it down."""

from __future__ import annotations

import json
from pathlib import Path

from orkes_provision.credentials.stores import StoredKey
from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.environments.apply import apply_environment, plan_environment
from orkes_provision.environments.environment import load_environment
from orkes_provision.errors import StoreError
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output
from tests.environments.apply.helpers import (
    App,
    admin_client,
    apps_named,
    env_text,
    grants_of,
    run,
    run_ok,
    started,
    timestamp,
)

APPS = [App(f"app-{i}", tasks=[f"t{i}a", f"t{i}b"], store=f"env-file:keys/app-{i}.env") for i in range(3)]
TASKS = {t: {} for app in APPS for t in app.tasks}


def write_env(directory: Path) -> None:
    (directory / "env.toml").write_text(env_text("faulty", APPS, tasks=TASKS))


def assert_converged(sandbox: SandboxProcess, directory: Path) -> None:
    """One application per name, each with its role, grants and exactly the key in its env file."""
    with admin_client(sandbox) as client:
        for app in APPS:
            (found,) = apps_named(client, app.name)
            assert client.get_app_user(found.id).role_names == {"WORKER"}
            assert grants_of(client, found.id) == {("TASK_DEF", t): {"EXECUTE"} for t in app.tasks}
            key_id = (directory / "keys" / f"{app.name}.env").read_text().split("CONDUCTOR_AUTH_KEY=")[1].split()[0]
            assert [k.id for k in client.list_keys(found.id)] == [key_id]


def test_partial_failure_reports_what_was_and_was_not_done_and_a_rerun_converges(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    write_env(tmp_path)
    sandbox.add_fault("POST", r"^/api/applications$", count=1, status=500)
    sandbox.add_fault("POST", r"^/api/auth/authorization$", count=2, status=500)
    failed = run(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    assert failed.returncode == 8, output(failed)  # ServerUnavailable: the server failed (5xx)
    report = failed.stdout.splitlines()
    assert sum(line.startswith("FAILED: ") for line in report) == 3
    assert {line.split(":")[1].strip().split(" ")[0] for line in report if line.startswith("SKIPPED: ")} == {
        "add", "create", "grant"}  # the failed application's role, key and grants
    assert any(line.startswith("Apply INCOMPLETE: ") for line in report)
    assert failed.stderr.startswith("error: 3 of ")
    assert "rerun the same command" in failed.stderr
    rerun = run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    assert "Apply complete" in rerun.stdout
    assert_converged(sandbox, tmp_path)
    mark = sandbox.mark()
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    assert sandbox.write_requests(mark) == []


def test_lost_answers_to_creations_leave_no_duplicates_and_a_rerun_converges(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    write_env(tmp_path)
    # The server commits the change but the answer never arrives: the client cannot know it happened.
    sandbox.add_fault("POST", r"^/api/applications$", count=1, action="drop_after_commit")
    sandbox.add_fault("POST", r"^/api/applications/[^/]+/accessKeys$", count=1, action="drop_after_commit")
    failed = run(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    assert failed.returncode != 0
    assert "Traceback" not in output(failed)
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    assert_converged(sandbox, tmp_path)
    with admin_client(sandbox) as client:
        assert sorted(a.name for a in client.list_applications() if a.name.startswith("app-")) == [
            "app-0", "app-1", "app-2"]


def test_429_with_retry_after_is_honoured_and_lowers_parallelism(sandbox: SandboxProcess, tmp_path: Path) -> None:
    write_env(tmp_path)
    sandbox.add_fault("POST", r"^/api/applications/[^/]+/roles/WORKER$", count=1, status=429, retry_after=1)
    result = run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve", "--json")
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["rateLimited"] == 1
    assert report["lowestParallelism"] == 8
    log = sandbox.requests()
    (limited,) = [e for e in log if e["status"] == 429]
    retries = [e for e in log if e["path"] == limited["path"] and e["method"] == "POST" and e["status"] == 200]
    assert len(retries) == 1
    waited = started(retries[0]) - timestamp(limited)
    assert waited >= 0.98, f"the retry came {waited:.3f}s after the 429, before Retry-After (1s)"
    # Nothing new started while the pause was on (slack for the answer's trip to a busy client).
    paused = [e for e in log if timestamp(limited) + 0.3 < started(e) < timestamp(limited) + 0.9]
    assert paused == []
    assert_converged(sandbox, tmp_path)


class FailingEnvFileStore(EnvFileStore):
    def save(self, key: StoredKey) -> None:
        raise StoreError("disk full while writing the key")


def test_a_key_that_cannot_be_stored_is_deleted_on_the_server_and_a_rerun_converges(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    write_env(tmp_path)
    env = load_environment(tmp_path / "env.toml")
    with admin_client(sandbox) as client:
        env_plan = plan_environment(client, env, server=sandbox.url)
        broken = env_plan.stores["app-1"]
        env_plan.stores["app-1"] = FailingEnvFileStore(broken.spec.partition(":")[2])
        result = apply_environment(client, env_plan, actor=None)
        (failed,) = result.applied.failed
        assert failed.change.kind == "create_key"
        assert failed.error is not None
        assert "was deleted on the server" in failed.error.message
        (app,) = apps_named(client, "app-1")
        assert client.list_keys(app.id) == [], "no key may exist whose secret was lost"
        assert len(result.applied.done) == len(env_plan.plan.changes) - 1
    run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
    assert_converged(sandbox, tmp_path)
