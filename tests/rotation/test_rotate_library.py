"""Rotation as a library call against the sandbox: the happy path, grace, failures and resumption."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from orkes_provision.credentials.delivery import deliveries
from orkes_provision.credentials.stores import CredentialStore, StoredKey
from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.credentials.stores.memory import MemoryStore
from orkes_provision.errors import Conflict, LockHeld, ServerUnavailable, StoreError, UsageError, VerificationFailed
from orkes_provision.locks import app_lock_name, file_lock
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.rotation.record import load_progress, progress_path
from orkes_provision.rotation.rotate import RotationReport, prune_keys, rotate_key
from orkes_provision.sandbox.client import SandboxClient
from orkes_provision.sandbox.harness import SandboxProcess
from tests.rotation.helpers import WorkerApp, active_keys, authenticates, key_statuses

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class FlakyStore(MemoryStore):
    """A store whose first ``failures`` saves fail, as a locked keyring or a full disk would."""

    def __init__(self, spec: str, failures: int) -> None:
        super().__init__()
        self.spec = spec
        self.failures = failures

    def save(self, key: StoredKey) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise StoreError("the disk is full", "free some space")
        super().save(key)


def opener_for(*stores: CredentialStore) -> Callable[[str], CredentialStore]:
    by_spec = {s.spec: s for s in stores}
    return lambda spec: by_spec[spec]


def rotate(admin: OrkesClient, server: str, app: WorkerApp, *stores: CredentialStore,
           **kwargs: Any) -> RotationReport:
    options: dict[str, Any] = {"grace": timedelta(0), "switch_wait": 0.0, "opener": opener_for(*stores),
                              "store_specs": [s.spec for s in stores],
                                  "now": lambda: NOW}
    options.update(kwargs)
    return rotate_key(admin, server=server, app=app.name, actor=admin.key_id, **options)


def test_rotation_puts_a_working_new_key_in_the_env_file_and_leaves_one_active_key(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp], tmp_path: Path) -> None:
    env_store = EnvFileStore(tmp_path / "worker.env")
    app = worker_app([env_store])
    old = app.key

    report = rotate_key(admin, server=server, app=app.name, grace=timedelta(0), switch_wait=0, actor=admin.key_id)

    stored = env_store.load(server, app.name)
    assert stored is not None
    assert stored.key_id == report.new_key_id != old.key_id
    assert authenticates(admin, stored)
    assert not authenticates(admin, old)
    assert key_statuses(admin, app.id) == {stored.key_id: "ACTIVE"}
    assert report.old_key_ids == [old.key_id]
    assert report.deactivated == [old.key_id]
    assert report.pruned.deleted == [old.key_id]
    assert [d.key_id for d in deliveries(server, app.name)] == [stored.key_id]
    assert not progress_path(server, app.name).exists()


def test_default_grace_keeps_the_old_key_inactive_until_prune_runs_after_the_grace(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp]) -> None:
    store = MemoryStore()
    app = worker_app([store])
    old = app.key.key_id

    report = rotate(admin, server, app, store, grace=timedelta(minutes=15))

    assert key_statuses(admin, app.id) == {old: "INACTIVE", report.new_key_id: "ACTIVE"}
    assert [p.key_id for p in report.pruned.pending] == [old]
    early = prune_keys(admin, server=server, app=app.name, grace=timedelta(minutes=15),
                       now=lambda: NOW + timedelta(minutes=14))
    assert early.deleted == []
    assert early.pending[0].delete_after == NOW + timedelta(minutes=15)
    late = prune_keys(admin, server=server, app=app.name, grace=timedelta(minutes=15),
                      now=lambda: NOW + timedelta(minutes=16))
    assert late.deleted == [old]
    assert key_statuses(admin, app.id) == {report.new_key_id: "ACTIVE"}


def test_prune_counts_a_key_found_inactive_from_when_it_was_first_seen(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp]) -> None:
    app = worker_app([MemoryStore()])
    spare = admin.create_key(app.id).id
    admin.toggle_key(app.id, spare)

    first = prune_keys(admin, server=server, app=app.name, grace=timedelta(hours=1), now=lambda: NOW)
    later = prune_keys(admin, server=server, app=app.name, grace=timedelta(hours=1),
                       now=lambda: NOW + timedelta(minutes=61))

    assert (first.deleted, [p.key_id for p in first.pending]) == ([], [spare])
    assert later.deleted == [spare]
    assert key_statuses(admin, app.id) == {app.key.key_id: "ACTIVE"}


@pytest.mark.parametrize("grace", [timedelta(minutes=15), timedelta(0)], ids=["deactivated", "deleted"])
def test_tokens_minted_from_the_old_key_stop_working_once_it_is_deactivated_or_deleted(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp], grace: timedelta) -> None:
    store = MemoryStore()
    app = worker_app([store])
    old_token = admin.exchange_token(app.key.key_id, app.key.secret).get_secret_value()

    def user_info(token: str) -> int:
        return httpx.get(f"{server}/token/userInfo", headers={"X-Authorization": token}, timeout=10).status_code

    assert user_info(old_token) == 200
    report = rotate(admin, server, app, store, grace=grace)
    assert (app.key.key_id in key_statuses(admin, app.id)) == (grace > timedelta(0))
    assert user_info(old_token) == 401
    new_token = admin.exchange_token(report.new_key_id, store.load(server, app.name).secret)  # type: ignore[union-attr]
    assert user_info(new_token.get_secret_value()) == 200


def test_a_failing_store_keeps_the_new_key_where_written_and_a_rerun_finishes(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp]) -> None:
    good, flaky = MemoryStore(), FlakyStore("flaky", failures=0)
    good.spec = "good"
    app = worker_app([good, flaky])
    flaky.failures = 1

    with pytest.raises(StoreError, match="the disk is full") as failure:
        rotate(admin, server, app, good, flaky)

    new_id = good.load(server, app.name).key_id  # type: ignore[union-attr]
    assert new_id != app.key.key_id
    assert new_id in str(failure.value.message)
    assert key_statuses(admin, app.id) == {app.key.key_id: "ACTIVE", new_id: "ACTIVE"}
    assert flaky.load(server, app.name).key_id == app.key.key_id  # type: ignore[union-attr]
    assert load_progress(server, app.name).stores_done == ["good"]  # type: ignore[union-attr]

    report = rotate(admin, server, app, good, flaky)

    assert report.result == "resumed"
    assert report.new_key_id == new_id
    assert flaky.load(server, app.name).key_id == new_id  # type: ignore[union-attr]
    assert key_statuses(admin, app.id) == {new_id: "ACTIVE"}


def test_a_new_key_whose_secret_reached_no_store_is_deleted_and_the_rerun_makes_another(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp]) -> None:
    flaky = FlakyStore("flaky", failures=0)
    app = worker_app([flaky])
    flaky.failures = 1
    with pytest.raises(StoreError):
        rotate(admin, server, app, flaky)
    lost = load_progress(server, app.name).new_key_id  # type: ignore[union-attr]
    assert lost is not None

    report = rotate(admin, server, app, flaky)

    assert report.new_key_id not in (lost, app.key.key_id)
    assert key_statuses(admin, app.id) == {report.new_key_id: "ACTIVE"}
    assert flaky.load(server, app.name).key_id == report.new_key_id  # type: ignore[union-attr]


def test_an_ambiguous_create_failure_leaves_no_extra_key_and_the_old_key_untouched(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp],
        shared_sandbox: SandboxProcess) -> None:
    store = MemoryStore()
    app = worker_app([store])
    shared_sandbox.add_fault("POST", rf"^/api/applications/{app.id}/accessKeys$", action="drop_after_commit")

    with pytest.raises(ServerUnavailable):
        rotate(admin, server, app, store)

    assert key_statuses(admin, app.id) == {app.key.key_id: "ACTIVE"}
    assert store.load(server, app.name).key_id == app.key.key_id  # type: ignore[union-attr]
    report = rotate(admin, server, app, store)
    assert key_statuses(admin, app.id) == {report.new_key_id: "ACTIVE"}


def test_a_new_key_that_fails_verification_leaves_the_old_key_active(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp],
        shared_sandbox: SandboxProcess) -> None:
    store = MemoryStore()
    app = worker_app([store])
    shared_sandbox.add_fault("POST", r"^/api/token$", status=401)

    with pytest.raises(VerificationFailed, match="failed verification"):
        rotate(admin, server, app, store)

    shared_sandbox.clear_faults()
    new_id = store.load(server, app.name).key_id  # type: ignore[union-attr]
    assert key_statuses(admin, app.id) == {app.key.key_id: "ACTIVE", new_id: "ACTIVE"}
    assert load_progress(server, app.name).step == "stored"  # type: ignore[union-attr]
    report = rotate(admin, server, app, store)
    assert report.new_key_id == new_id
    assert active_keys(admin, app.id) == [new_id]


def test_a_second_rotation_of_the_same_application_fails_fast_with_lock_held(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp]) -> None:
    store = MemoryStore()
    app = worker_app([store])
    with file_lock(app_lock_name(server, app.name)), pytest.raises(LockHeld) as held:
        rotate(admin, server, app, store, lock_wait=0.1)
    assert held.value.exit_code == 12
    assert key_statuses(admin, app.id) == {app.key.key_id: "ACTIVE"}


def test_rotation_without_a_delivery_record_or_store_asks_for_a_store(
        admin: OrkesClient, server: str, app_name: str) -> None:
    app = admin.create_application(app_name)
    with pytest.raises(UsageError, match="no record of where the key"):
        rotate_key(admin, server=server, app=app.name, switch_wait=0)
    assert admin.list_keys(app.id) == []


def test_the_switch_waits_and_calls_after_rotation_hooks_before_deactivating(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp]) -> None:
    events: list[str] = []

    class HookedStore(MemoryStore):
        def after_rotation(self, key: StoredKey) -> None:
            events.append(f"hook {key.key_id} old={key_statuses(admin, app.id)[app.key.key_id]}")

    store = HookedStore()
    app = worker_app([store])

    slept: list[float] = []

    def sleep(seconds: float) -> None:
        if not slept:
            events.append(f"sleep old={key_statuses(admin, app.id)[app.key.key_id]}")
        slept.append(seconds)

    report = rotate(admin, server, app, store, switch_wait=7.0, sleep=sleep)

    # No supervisor on this machine: the whole wait is spent (in slices, for the countdown).
    assert events == [f"hook {report.new_key_id} old=ACTIVE", "sleep old=ACTIVE"]
    assert sum(slept) == pytest.approx(7.0)
    assert report.after_rotation == ["memory"]


def test_verification_covers_the_worker_role_and_execute_on_the_granted_tasks(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp]) -> None:
    store = MemoryStore()
    app = worker_app([store], tasks=("greetings",))
    admin.remove_role(app.id, "WORKER")

    with pytest.raises(VerificationFailed, match="lacks the WORKER role") as failure:
        rotate(admin, server, app, store)

    assert f"provision app {app.name} --worker" in failure.value.hint
    assert app.key.key_id in active_keys(admin, app.id)
    admin.add_role(app.id, "WORKER")
    report = rotate(admin, server, app, store)
    assert report.verified
    assert active_keys(admin, app.id) == [report.new_key_id]


def test_a_pending_rotation_refuses_other_stores_until_it_is_finished(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp]) -> None:
    store, other = MemoryStore(), MemoryStore()
    other.spec = "other"
    app = worker_app([store])
    with pytest.raises(VerificationFailed):  # stops the rotation after "stored"
        rotate_with_token_fault(admin, server, app, store)

    with pytest.raises(UsageError, match="is pending for the stores memory"):
        rotate(admin, server, app, store, other)
    report = rotate(admin, server, app, store)
    assert report.resumed_from == "stored"


def rotate_with_token_fault(admin: SandboxClient, server: str, app: WorkerApp, store: CredentialStore) -> None:
    admin.add_fault("POST", r"^/api/token$", status=401)
    try:
        rotate(admin, server, app, store)
    finally:
        admin.clear_faults()


def test_json_and_memory_deliveries_are_reported_as_skipped_not_written(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp], tmp_path: Path) -> None:
    env_store = EnvFileStore(tmp_path / "worker.env")
    app = worker_app([env_store, MemoryStore()])
    with pytest.raises(Conflict) as refused:  # its holder in memory would get no successor
        rotate_key(admin, server=server, app=app.name, grace=timedelta(0), switch_wait=0)
    assert "memory" in refused.value.message and "--retire-undelivered" in refused.value.hint
    assert key_statuses(admin, app.id) == {app.key.key_id: "ACTIVE"}

    report = rotate_key(admin, server=server, app=app.name, grace=timedelta(0), switch_wait=0,
                        retire_undelivered=True)

    assert [d["store"] for d in report.delivered] == [env_store.spec]
    assert [s["store"] for s in report.skipped] == ["memory"]
    assert env_store.load(server, app.name).key_id == report.new_key_id  # type: ignore[union-attr]


def test_start_over_discards_a_pending_rotation_and_retires_its_half_delivered_key_too(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp], tmp_path: Path) -> None:
    good, flaky = MemoryStore(), FlakyStore("flaky", failures=0)
    good.spec = "good"
    app = worker_app([good, flaky])
    flaky.failures = 1
    with pytest.raises(StoreError):
        rotate(admin, server, app, good, flaky)
    half = good.load(server, app.name).key_id  # type: ignore[union-attr]
    env_store = EnvFileStore(tmp_path / "elsewhere.env")

    # The flaky store is left out on purpose: the old key it holds is retired all the same.
    report = rotate(admin, server, app, good, env_store, start_over=True, retire_undelivered=True)

    assert report.result == "rotated"
    assert sorted(report.old_key_ids) == sorted([app.key.key_id, half])
    assert key_statuses(admin, app.id) == {report.new_key_id: "ACTIVE"}
    assert env_store.load(server, app.name).key_id == report.new_key_id  # type: ignore[union-attr]
