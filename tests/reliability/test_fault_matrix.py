"""The fault matrix: every write step of ``provision app``, ``apply`` and ``keys rotate`` x {500, 503,
429 with Retry-After, timeout, connection reset, response lost after commit}.

In every cell the fault hits that step's request once. The run must end with a clear, one-line
``ProvisionError`` or succeed through retries (a 429 always succeeds, after waiting the server's
Retry-After); right after it, no key exists on the server that no store holds, every stored key
is an ACTIVE key of its application, and no application is duplicated. Then a rerun without the
fault converges to the full desired state, and a third run writes nothing. The outcomes are
printed as a table at the end of the test run (``conftest.py``).

The library calls are used rather than the CLI (the CLI adds only rendering, tested elsewhere),
with a client whose sleeps are recorded instead of slept, so the whole matrix takes a minute.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from orkes_provision.access.execute import PartialFailure
from orkes_provision.access.provisioning import provision_app
from orkes_provision.access.spec import app_spec_from_flags
from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.environments.apply import apply_environment, plan_environment
from orkes_provision.environments.environment import load_environment
from orkes_provision.errors import NotFound, ProvisionError
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import app_subject
from orkes_provision.orkes.ratelimit import AdaptiveLimiter
from orkes_provision.rotation.record import load_progress
from orkes_provision.rotation.rotate import rotate_key
from orkes_provision.sandbox.harness import SandboxProcess
from tests.reliability.matrix import (
    FAULTS,
    RETRY_AFTER,
    Cell,
    MatrixClients,
    Step,
    describe_error,
    inject,
    matrix_clients,
    start_cell,
)

_NAMES = itertools.count(1)

APP_STEPS = [
    Step("register task definition", "POST", r"^/api/metadata/taskdefs$"),
    Step("create application", "POST", r"^/api/applications$"),
    Step("tag application", "PUT", r"^/api/applications/[^/]+/tags$"),
    Step("add role", "POST", r"^/api/applications/[^/]+/roles/WORKER$"),
    Step("create key", "POST", r"^/api/applications/[^/]+/accessKeys$"),
    Step("grant EXECUTE", "POST", r"^/api/auth/authorization$"),
]
APPLY_STEPS = [
    Step("register task definition", "POST", r"^/api/metadata/taskdefs$"),
    Step("register workflow", "POST", r"^/api/metadata/workflow$"),
    *APP_STEPS[1:],
]
PRUNE_STEPS = [
    Step("prune: revoke", "DELETE", r"^/api/auth/authorization$"),
    Step("prune: remove role", "DELETE", r"^/api/applications/[^/]+/roles/METADATA_API$"),
    Step("prune: delete application", "DELETE", r"^/api/applications/[^/]+$"),
]
ROTATE_STEPS = [
    Step("create new key", "POST", r"^/api/applications/[^/]+/accessKeys$"),
    Step("deactivate old key", "POST", r"^/api/applications/[^/]+/accessKeys/[^/]+/status$"),
    Step("delete old key", "DELETE", r"^/api/applications/[^/]+/accessKeys/[^/]+$"),
]


@pytest.fixture(scope="module")
def clients(rel_sandbox: SandboxProcess) -> Iterator[MatrixClients]:
    shared = matrix_clients(rel_sandbox)
    try:
        yield shared
    finally:
        shared.close()


def names() -> tuple[str, str]:
    """A fresh application name and task name for one cell (the sandbox is shared)."""
    n = next(_NAMES)
    return f"fm-app-{n}", f"fm-task-{n}"


def run_once(action: Callable[[], object]) -> ProvisionError | None:
    """Run ``action``; a failure must be a ProvisionError with a one-line message and a hint."""
    try:
        action()
    except ProvisionError as err:
        assert err.message and "\n" not in err.message, "one line"
        assert err.hint and "\n" not in err.hint
        assert "Traceback" not in err.message
        return err
    return None


def finish(cell: Cell, error: ProvisionError | None, fault: str, sleeps: list[float]) -> None:
    if fault == "429 Retry-After":
        assert error is None, "a 429 is always retried"
        assert float(RETRY_AFTER) in sleeps, "the client waited the server's Retry-After"
    cell.outcome = "retried, ok" if error is None else f"{describe_error(error)}, rerun ok"


def apps_named(client: OrkesClient, name: str) -> list[str]:
    return [a.id for a in client.list_applications() if a.name == name]


def server_keys(client: OrkesClient, name: str) -> dict[str, str]:
    return {k.id: k.status for app_id in apps_named(client, name) for k in client.list_keys(app_id)}


def assert_no_orphan_and_no_dead_key(client: OrkesClient, sandbox: SandboxProcess, name: str,
                                     store: EnvFileStore, *, old_keys: frozenset[str] = frozenset()) -> None:
    """No duplicate application; every server key is stored (or an old key kept on purpose); the stored key works."""
    assert len(apps_named(client, name)) <= 1, "no duplicate application"
    stored = store.load(sandbox.url, name)
    on_server = server_keys(client, name)
    assert set(on_server) - old_keys <= ({stored.key_id} if stored else set()), "a key whose secret is lost"
    if stored is not None:
        assert on_server.get(stored.key_id) == "ACTIVE", "the stored key is an ACTIVE key of the application"
        assert client.exchange_token(stored.key_id, stored.secret).get_secret_value()


def assert_converged(client: OrkesClient, sandbox: SandboxProcess, name: str, store: EnvFileStore,
                     roles: set[str], grants: dict[tuple[str, str], set[str]]) -> None:
    ids = apps_named(client, name)
    assert len(ids) == 1, "exactly one application"
    stored = store.load(sandbox.url, name)
    assert stored is not None
    assert server_keys(client, name) == {stored.key_id: "ACTIVE"}, "keys on the server == keys in the store"
    assert client.exchange_token(stored.key_id, stored.secret).get_secret_value()
    assert client.get_app_user(ids[0]).role_names == roles
    have = {(g.target.type, g.target.id): set(g.access) for g in client.get_user_permissions(app_subject(ids[0]).id)}
    assert {k: v for k, v in have.items() if v} == grants


def cleanup(client: OrkesClient, *app_names: str) -> None:
    for name in app_names:
        for app_id in apps_named(client, name):
            with contextlib.suppress(NotFound):
                client.delete_application(app_id)


# ----------------------------------------------------------------------------------------- provision app


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("step", APP_STEPS, ids=lambda s: s.name)
def test_provision_app_under_a_fault_then_a_rerun_converges(sandbox_without_faults: SandboxProcess, tmp_path: Path,
                                                            clients: MatrixClients, step: Step, fault: str) -> None:
    sandbox = sandbox_without_faults
    cell = start_cell("provision app", step.name, fault)
    name, task = names()
    spec = app_spec_from_flags(name, roles=("WORKER",), tasks=(task,))
    store = EnvFileStore(tmp_path / "worker.env")
    clients.next_cell()
    client, steady = clients.fault, clients.steady

    def provision(using: OrkesClient) -> object:
        return provision_app(using, server=sandbox.url, spec=spec, store=store, register_tasks=True,
                             actor=sandbox.admin_key_id)

    inject(sandbox, step, fault)
    error = run_once(lambda: provision(client))
    assert sandbox.faults() == [], "the fault was reached"
    assert_no_orphan_and_no_dead_key(steady, sandbox, name, store)
    provision(steady)
    assert_converged(steady, sandbox, name, store, {"WORKER"}, {("TASK_DEF", task): {"EXECUTE"}})
    mark = sandbox.mark()
    provision(steady)
    assert sandbox.write_requests(since=mark) == [], "a third run writes nothing"
    cleanup(steady, name)
    finish(cell, error, fault, clients.sleeps)


# ----------------------------------------------------------------------------------------- apply


def write_environment(directory: Path, env: str, app: str, task: str, *, roles: list[str], access: list[str],
                      extra_app: bool) -> Path:
    flow = {"name": f"{task}-flow", "version": 1, "timeoutSeconds": 60,
            "tasks": [{"name": task, "taskReferenceName": "step", "type": "SIMPLE"}]}
    (directory / "flow.json").write_text(json.dumps(flow))
    text = f"""name = "{env}"

[[tasks]]
name = "{task}"
timeoutSeconds = 120

[[workflows]]
file = "flow.json"

[[applications]]
name = "{app}"
roles = {json.dumps(roles)}
store = "env-file:{app}.env"

[[applications.grants]]
tasks = ["{task}"]
access = {json.dumps(access)}
"""
    if extra_app:
        text += f'\n[[applications]]\nname = "{app}-extra"\nroles = []\n'
    path = directory / "env.toml"
    path.write_text(text)
    return path


def apply_file(client: OrkesClient, sandbox: SandboxProcess, path: Path, *, prune: bool,
               limiter: AdaptiveLimiter | None = None) -> None:
    env_plan = plan_environment(client, load_environment(path), server=sandbox.url, prune=prune, parallelism=4)
    result = apply_environment(client, env_plan, actor=sandbox.admin_key_id, parallelism=4, limiter=limiter)
    if not result.ok:
        raise PartialFailure(result.applied)  # as 'provision apply' does


def plan_is_empty(client: OrkesClient, sandbox: SandboxProcess, path: Path, *, prune: bool) -> bool:
    return plan_environment(client, load_environment(path), server=sandbox.url, prune=prune).empty


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("step", APPLY_STEPS + PRUNE_STEPS, ids=lambda s: s.name)
def test_apply_under_a_fault_then_a_rerun_converges(sandbox_without_faults: SandboxProcess, tmp_path: Path,
                                                    clients: MatrixClients, step: Step, fault: str) -> None:
    sandbox = sandbox_without_faults
    cell = start_cell("apply", step.name, fault)
    app, task = names()
    env = app.replace("fm-app", "fm-env")
    store = EnvFileStore(tmp_path / f"{app}.env")
    pruning = step in PRUNE_STEPS
    limiter = clients.next_cell()
    client, steady = clients.fault, clients.steady
    if pruning:
        # First the state to prune from: an extra role, an extra access, an application no longer declared.
        before = write_environment(tmp_path, env, app, task, roles=["WORKER", "METADATA_API"],
                                   access=["EXECUTE", "READ"], extra_app=True)
        apply_file(steady, sandbox, before, prune=False)
    path = write_environment(tmp_path, env, app, task, roles=["WORKER"], access=["EXECUTE"], extra_app=False)
    inject(sandbox, step, fault)
    error = run_once(lambda: apply_file(client, sandbox, path, prune=pruning, limiter=limiter))
    assert sandbox.faults() == [], "the fault was reached"
    assert_no_orphan_and_no_dead_key(steady, sandbox, app, store)
    assert len(apps_named(steady, f"{app}-extra")) <= 1
    apply_file(steady, sandbox, path, prune=pruning)
    assert_converged(steady, sandbox, app, store, {"WORKER"}, {("TASK_DEF", task): {"EXECUTE"}})
    assert apps_named(steady, f"{app}-extra") == []
    assert steady.get_task_def(task).timeout_seconds == 120
    assert steady.get_workflow_def(f"{task}-flow", 1)["name"] == f"{task}-flow"
    assert plan_is_empty(steady, sandbox, path, prune=pruning), "a third run has nothing to do"
    cleanup(steady, app, f"{app}-extra")
    finish(cell, error, fault, clients.sleeps)


# ----------------------------------------------------------------------------------------- keys rotate


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("step", ROTATE_STEPS, ids=lambda s: s.name)
def test_keys_rotate_under_a_fault_then_a_rerun_converges(sandbox_without_faults: SandboxProcess, tmp_path: Path,
                                                          clients: MatrixClients, step: Step, fault: str) -> None:
    sandbox = sandbox_without_faults
    cell = start_cell("keys rotate", step.name, fault)
    name, task = names()
    store = EnvFileStore(tmp_path / "worker.env")
    clients.next_cell()
    client, steady = clients.fault, clients.steady
    provision_app(steady, server=sandbox.url, spec=app_spec_from_flags(name, roles=("WORKER",), tasks=(task,)),
                  store=store, register_tasks=True, actor=sandbox.admin_key_id)
    old = store.load(sandbox.url, name)
    assert old is not None

    def rotate(using: OrkesClient) -> object:
        return rotate_key(using, server=sandbox.url, app=name, store_specs=[store.spec], grace=timedelta(0),
                          switch_wait=0, sleep=lambda seconds: None, actor=sandbox.admin_key_id)

    inject(sandbox, step, fault)
    error = run_once(lambda: rotate(client))
    assert sandbox.faults() == [], "the fault was reached"
    # The old key may stay (ACTIVE or INACTIVE) until the rotation finishes; no other stray key may.
    assert_no_orphan_and_no_dead_key(steady, sandbox, name, store, old_keys=frozenset({old.key_id}))
    rotate(steady)
    assert load_progress(sandbox.url, name) is None, "no rotation left pending"
    assert_converged(steady, sandbox, name, store, {"WORKER"}, {("TASK_DEF", task): {"EXECUTE"}})
    stored = store.load(sandbox.url, name)
    assert stored is not None and stored.key_id != old.key_id
    cleanup(steady, name)
    finish(cell, error, fault, clients.sleeps)
