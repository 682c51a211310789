"""The switch wait of a rotation: it ends once every local supervisor runs the new key, and says so.

The supervisors here are status files written by ``SupervisorStatus`` on behalf of this test
process (a live pid), switched from inside the rotation's own ``sleep``, so each test controls
exactly when "the worker" switches without waiting for a real one (test_rotate_supervised does that).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest

from orkes_provision import progress
from orkes_provision.credentials.stores.memory import MemoryStore
from orkes_provision.errors import VerificationFailed
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.rotation.rotate import RotationReport, rotate_key
from orkes_provision.workers.status import SupervisorStatus
from tests.rotation.helpers import WorkerApp, key_statuses


@dataclass(frozen=True)
class Event:
    kind: str
    pid: int | None
    key_id: str | None


def rotate_with(admin: OrkesClient, server: str, app: WorkerApp, store: MemoryStore, switch_wait: float,
                sleep: Callable[[float], None]) -> tuple[RotationReport, list[progress.Wait]]:
    notices: list[progress.Wait] = []
    with progress.reporting_to(notices.append):
        report = rotate_key(admin, server=server, app=app.name, store_specs=[store.spec], grace=timedelta(0),
                            switch_wait=switch_wait, opener=lambda spec: store, sleep=sleep, actor=admin.key_id)
    return report, notices


def test_the_switch_wait_ends_once_every_supervised_worker_runs_the_new_key(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp]) -> None:
    store = MemoryStore()
    app = worker_app([store])
    # Two supervisors of the app on this machine, each running one worker on the old key.
    first = SupervisorStatus(server, app.name, pid=os.getpid())
    first.on_event(Event("started", 1001, app.key.key_id))
    second = SupervisorStatus(server, app.name, pid=os.getppid())
    second.on_event(Event("started", 2001, app.key.key_id))
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        new_key = store.load(server, app.name)
        assert new_key is not None
        if len(slept) == 4:  # the first supervisor switches after a second
            first.on_event(Event("started", 1002, new_key.key_id))
            first.on_event(Event("rotated", 1001, None))
        if len(slept) == 8:  # the second one a second later
            second.on_event(Event("started", 2002, new_key.key_id))
            second.on_event(Event("rotated", 2001, None))

    try:
        report, notices = rotate_with(admin, server, app, store, 60.0, sleep)
    finally:
        first.close()
        second.close()

    assert len(slept) == 8
    assert sum(slept) == pytest.approx(2.0)
    assert report.switch_waited < 5  # it did not spend the 60 s
    assert report.to_dict()["switchWaitedSeconds"] == round(report.switch_waited, 2)
    assert key_statuses(admin, app.id) == {report.new_key_id: "ACTIVE"}
    texts = [n.render() for n in notices if n.topic == "switch-wait"]
    assert texts[0] == (f"waiting for the supervised workers of {app.name} to switch to key {report.new_key_id}: "
                        "0 of 2 switched (60s left)")
    assert any(t.endswith("1 of 2 switched (59s left)") for t in texts)
    remaining = [n.remaining for n in notices if n.remaining is not None]
    assert remaining == sorted(remaining, reverse=True)  # a countdown


def test_without_a_local_supervisor_the_whole_wait_is_spent_with_a_countdown(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp]) -> None:
    store = MemoryStore()
    app = worker_app([store])
    slept: list[float] = []

    report, notices = rotate_with(admin, server, app, store, 3.0, slept.append)

    assert sum(slept) == pytest.approx(3.0)
    assert [n.remaining for n in notices] == [3, 2, 1]
    assert "none is supervised on this machine; --switch-wait 0 skips the wait" in notices[0].message
    assert key_statuses(admin, app.id) == {report.new_key_id: "ACTIVE"}


def test_a_supervisor_that_never_switches_keeps_the_full_wait_and_the_old_key(
        admin: OrkesClient, server: str, worker_app: Callable[..., WorkerApp]) -> None:
    store = MemoryStore()
    app = worker_app([store])
    stuck = SupervisorStatus(server, app.name, pid=os.getpid())
    stuck.on_event(Event("started", 1001, app.key.key_id))
    slept: list[float] = []
    try:
        with pytest.raises(VerificationFailed, match="still runs the old key"):
            rotate_with(admin, server, app, store, 2.0, slept.append)
    finally:
        stuck.close()
    assert sum(slept) == pytest.approx(2.0)
    assert key_statuses(admin, app.id)[app.key.key_id] == "ACTIVE"
