"""Two ``provision app`` runs for the same new name, started together, create one application;
so do a ``provision app`` and a ``provision apply`` declaring it (one lock per server and name).

``provision_app`` holds a local lock per server and application name (``locks.file_lock``, under the
state directory): the second run waits, then finds what the first created. To make "started
together" exact rather than likely, both processes get a ``sitecustomize`` (on their PYTHONPATH)
that makes each wait at a file barrier until the other has arrived, right before taking the lock.
The control test also removes the lock, and makes both processes read the server before either
creates: it gets two applications, so the lock, not timing, is what keeps the name unique.
Across machines there is no such lock (Orkes has no unique names and no conditional create):
docs/reliability.md says so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import provision

PROVISION = str(Path(sys.executable).with_name("provision"))
RACE_HOOK = '''"""Test hook: line both provision processes up at a file barrier; RACE_NO_LOCK=1 also drops the lock."""
import contextlib
import os
import time

import orkes_provision.locks as locks

_real_lock = locks.file_lock


def _barrier(name):
    directory = os.environ["RACE_BARRIER_DIR"]
    open(os.path.join(directory, f"{name}.{os.getpid()}"), "w").close()
    deadline = time.monotonic() + float(os.environ.get("RACE_BARRIER_SECONDS", "30"))
    while time.monotonic() < deadline:
        if len([f for f in os.listdir(directory) if f.startswith(name + ".")]) >= 2:
            return
        time.sleep(0.01)


@contextlib.contextmanager
def _lock(name, **options):
    _barrier("start")
    if os.environ.get("RACE_NO_LOCK") == "1":
        yield
        return
    with _real_lock(name, **options):
        yield


locks.file_lock = _lock
if os.environ.get("RACE_NO_LOCK") == "1" or os.environ.get("RACE_CREATE_BARRIER") == "1":
    import orkes_provision.orkes.client as client

    _real_create = client.OrkesClient.create_application

    def _create_after_both_read(self, name):
        _barrier("create")
        return _real_create(self, name)

    client.OrkesClient.create_application = _create_after_both_read
'''


def admin(sandbox: SandboxProcess) -> OrkesClient:
    return OrkesClient(Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret))


def start_together(sandbox: SandboxProcess, tmp_path: Path, name: str, stores: list[Path], *,
                   lock: bool = True) -> list[subprocess.CompletedProcess[str]]:
    """One ``provision app NAME`` per store, lined up at the barrier; wait for all (bounded)."""
    hook, barrier = tmp_path / "hook", tmp_path / "barrier"
    hook.mkdir()
    barrier.mkdir()
    (hook / "sitecustomize.py").write_text(RACE_HOOK)
    env = {**os.environ, **sandbox.admin_env, "PYTHONPATH": str(hook), "RACE_BARRIER_DIR": str(barrier),
           "RACE_NO_LOCK": "0" if lock else "1"}
    # Without the lock the runs stand for two machines (where no lock can help), so each gets a state
    # directory of its own: sharing one, each would take the other's in-flight key creation for one a
    # killed run left behind, and retire that key, which the lock prevents on one machine.
    envs = [env if lock else {**env, "ORKES_PROVISION_STATE_DIR": str(tmp_path / f"state-{i}")}
            for i in range(len(stores))]
    procs = [subprocess.Popen([PROVISION, "app", name, "--worker", "--grant", f"{name}-task", "--register-tasks",
                               "--store", f"env-file:{store}", "--json"], env=run_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
             for store, run_env in zip(stores, envs, strict=True)]
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=10)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    assert len(list(barrier.glob("start.*"))) == 2, "both runs reached the lock"
    return results


def applications_named(client: OrkesClient, name: str) -> list[str]:
    return [a.id for a in client.list_applications() if a.name == name]


def test_two_runs_for_the_same_new_name_with_one_store_make_one_application_and_one_key(
        rel_sandbox: SandboxProcess, tmp_path: Path) -> None:
    store = tmp_path / "worker.env"
    results = start_together(rel_sandbox, tmp_path, "race-one-store", [store, store])
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    with admin(rel_sandbox) as client:
        (app_id,) = applications_named(client, "race-one-store")
        stored = EnvFileStore(store).load(rel_sandbox.url, "race-one-store")
        assert stored is not None
        assert [k.id for k in client.list_keys(app_id)] == [stored.key_id], "the second run reused the first's key"
    assert sorted('"changed": true' in r.stdout for r in results) == [False, True], "one run did the work"


def test_two_runs_with_different_stores_share_one_application_and_each_store_holds_a_live_key(
        rel_sandbox: SandboxProcess, tmp_path: Path) -> None:
    stores = [tmp_path / "a.env", tmp_path / "b.env"]
    results = start_together(rel_sandbox, tmp_path, "race-two-stores", stores)
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    with admin(rel_sandbox) as client:
        (app_id,) = applications_named(client, "race-two-stores")
        held = {EnvFileStore(s).load(rel_sandbox.url, "race-two-stores").key_id for s in stores}  # type: ignore[union-attr]
        assert {k.id for k in client.list_keys(app_id) if k.status == "ACTIVE"} == held
        assert len(held) == 2


def test_control_without_the_lock_the_same_race_makes_two_applications(rel_sandbox: SandboxProcess,
                                                                        tmp_path: Path) -> None:
    results = start_together(rel_sandbox, tmp_path, "race-no-lock", [tmp_path / "a.env", tmp_path / "b.env"],
                             lock=False)
    assert [r.returncode for r in results] == [0, 0], [(r.stdout, r.stderr) for r in results]
    with admin(rel_sandbox) as client:
        duplicates = applications_named(client, "race-no-lock")
        assert len(duplicates) == 2, "without the lock both runs create the application"
        # What a user then gets (the limit across machines, where no lock can help): a stop, no guess.
        again = provision(["app", "race-no-lock", "--worker", "--store", f"env-file:{tmp_path / 'a.env'}"],
                          env=dict(rel_sandbox.admin_env))
        assert again.returncode == 7
        assert "2 applications are named 'race-no-lock'" in again.stderr and "nothing was changed" in again.stderr
        for app_id in duplicates:
            client.delete_application(app_id)


def test_app_and_an_apply_declaring_the_same_new_name_create_one_application(
        rel_sandbox: SandboxProcess, tmp_path: Path) -> None:
    # Both line up at the lock; past it, each waits (at most 5 s) at create_application for the other.
    # With one lock per server and application name the second never gets there while the first
    # holds it, so it finds the application made; with a lock per command both would create it.
    hook, barrier = tmp_path / "hook", tmp_path / "barrier"
    hook.mkdir()
    barrier.mkdir()
    (hook / "sitecustomize.py").write_text(RACE_HOOK)
    (tmp_path / "env.toml").write_text(
        'name = "race"\n\n[[tasks]]\nname = "race-mixed-task"\n\n[[applications]]\nname = "race-mixed"\n'
        'roles = ["WORKER"]\nstore = "env-file:b.env"\n[[applications.grants]]\ntasks = ["race-mixed-task"]\n')
    env = {**os.environ, **rel_sandbox.admin_env, "PYTHONPATH": str(hook), "RACE_BARRIER_DIR": str(barrier),
           "RACE_CREATE_BARRIER": "1", "RACE_BARRIER_SECONDS": "5"}
    commands = [[PROVISION, "app", "race-mixed", "--worker", "--grant", "race-mixed-task", "--register-tasks",
                 "--store", "env-file:a.env"],
                [PROVISION, "apply", "-f", "env.toml", "--auto-approve"]]
    procs = [subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True) for cmd in commands]
    errors = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=10)
        errors.append((proc.returncode, err))
    assert [code for code, _ in errors] == [0, 0], errors
    with admin(rel_sandbox) as client:
        assert len(applications_named(client, "race-mixed")) == 1
