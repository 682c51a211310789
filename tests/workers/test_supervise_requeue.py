"""The supervisor hands the tasks of every worker it stopped back to the queue, under that worker's own id.

Driven in-process with the fake worker (no SDK, no server): the requeue callable records what it
was asked and whether the stopped process group was really gone at that moment. The server side
(search, read, IN_PROGRESS update) is proven in tests/workers/test_requeue_sandbox.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orkes_provision.errors import ServerUnavailable
from orkes_provision.workers.identity import PYTHON_SDK_VARIABLE, WORKER_ID_VARIABLE, assign_worker_id
from orkes_provision.workers.supervise import Timing
from tests.workers.launch_helpers import FakeKey, events, group_members, wait_for
from tests.workers.test_launch_supervise import Harness, key

TIMING = Timing(grace=2.0, settle=0.5, key_poll=0.2, backoff_initial=0.2, backoff_max=1.0,
                backoff_reset_after=30.0, tick=0.05, requeue_recheck=0.6)


@dataclass
class Call:
    key_id: str
    worker_ids: list[str]
    live_groups: list[int]  # pids of worker groups with a process left when the call came
    at: float


@dataclass
class Recorder:
    """A requeue callable: remembers each call, answers one task id per worker id."""

    log: Path
    calls: list[Call] = field(default_factory=list)
    fail: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, current: FakeKey, worker_ids: list[str]) -> list[str]:
        pids = {int(line[1]): line[2] for line in events(self.log, "id")}
        stopped_pids = [pid for pid, wid in pids.items() if wid in worker_ids]
        live = [pid for pid in stopped_pids if group_members(pid)]
        with self.lock:
            self.calls.append(Call(current.key_id, list(worker_ids), live, time.monotonic()))
        if self.fail:
            raise ServerUnavailable("cannot reach http://127.0.0.1:9/api: connection refused")
        return [f"task-of-{wid}" for wid in worker_ids]

    def ids_asked(self) -> list[str]:
        with self.lock:
            return [wid for call in self.calls for wid in call.worker_ids]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.cleanup()


def _ids(harness: Harness) -> dict[int, tuple[str, str]]:
    """pid -> (the Python SDK's worker id variable, ORKES_PROVISION_WORKER_ID), as the worker saw them."""
    return {int(line[1]): (line[2], line[3]) for line in events(harness.log, "id")}


def test_every_process_gets_a_worker_id_of_its_own_in_the_sdk_variable(harness: Harness) -> None:
    keys = [key("key-1")]
    harness.start(replicas=2, current=keys, timing=TIMING)
    wait_for(lambda: len(_ids(harness)) == 2, what="two replicas")
    keys.append(key("key-2"))
    seen = wait_for(lambda: len(_ids(harness)) == 4 and _ids(harness), timeout=15, what="two new workers")

    assert all(sdk == own for sdk, own in seen.values())
    assert len({sdk for sdk, _ in seen.values()}) == 4
    started = {e.pid: e.worker_id for e in harness.events if e.kind == "started"}
    assert started == {pid: sdk for pid, (sdk, _) in seen.items()}


def test_after_a_key_switch_the_old_workers_tasks_are_requeued_with_the_new_key_once_it_is_gone(
        harness: Harness) -> None:
    keys = [key("key-1")]
    recorder = Recorder(harness.log)
    harness.start(current=keys, timing=TIMING, requeue=recorder)
    [(old_pid, (old_id, _))] = wait_for(lambda: list(_ids(harness).items()), what="first worker")
    keys.append(key("key-2"))

    wait_for(lambda: recorder.ids_asked().count(old_id) >= 2, timeout=15, what="two requeue passes")

    first, second = [c for c in recorder.calls if old_id in c.worker_ids][:2]
    assert (first.key_id, first.worker_ids, first.live_groups) == ("key-2", [old_id], [])
    assert second.at - first.at >= TIMING.requeue_recheck - 0.05  # the pass for a lagging search index
    requeued = [e for e in harness.events if e.kind == "requeued"]
    assert requeued[0].task_ids == (f"task-of-{old_id}",)
    assert old_pid not in [e.pid for e in harness.events if e.kind == "started" and e.key_id == "key-2"]
    new_ids = [sdk for pid, (sdk, _) in _ids(harness).items() if pid != old_pid]
    assert new_ids and not set(new_ids) & set(recorder.ids_asked())  # the running worker keeps its tasks


def test_a_crashed_workers_tasks_are_requeued_before_it_is_restarted(harness: Harness) -> None:
    recorder = Recorder(harness.log)
    harness.start(timing=TIMING, requeue=recorder, FAKE_WORKER_EXIT="1", FAKE_WORKER_EXIT_AFTER="0.3")
    wait_for(lambda: len(_ids(harness)) >= 2, timeout=15, what="a restart after the crash")

    first_id = next(sdk for sdk, _ in _ids(harness).values())
    assert recorder.calls[0].worker_ids == [first_id]
    assert recorder.calls[0].live_groups == []


def test_shutdown_requeues_what_every_replica_held(harness: Harness) -> None:
    recorder = Recorder(harness.log)
    harness.start(replicas=3, timing=TIMING, requeue=recorder)
    ids = wait_for(lambda: len(_ids(harness)) == 3 and _ids(harness), what="three replicas")

    assert harness.stop() == 0

    [last] = recorder.calls
    assert sorted(last.worker_ids) == sorted(sdk for sdk, _ in ids.values())
    assert last.live_groups == []


def test_a_failed_requeue_is_a_warning_and_supervision_goes_on(harness: Harness) -> None:
    keys = [key("key-1")]
    recorder = Recorder(harness.log, fail=True)
    harness.start(current=keys, timing=TIMING, requeue=recorder)
    wait_for(lambda: _ids(harness), what="first worker")
    keys.append(key("key-2"))

    wait_for(lambda: recorder.calls, timeout=15, what="a requeue attempt")
    warning = wait_for(lambda: [e for e in harness.events if e.kind == "warning" and "back to the queue" in e.message],
                       what="the warning")[0]
    assert "connection refused" in warning.message and "response timeout" in warning.message
    assert harness.thread is not None and harness.thread.is_alive()
    assert [e.key_id for e in harness.events if e.kind == "rotated"] == ["key-2"]


def test_a_worker_id_set_by_the_environment_is_kept_and_nothing_is_requeued(harness: Harness) -> None:
    recorder = Recorder(harness.log)
    harness.start(timing=TIMING, requeue=recorder, **{"conductor.worker.all.worker_id": "shared-id",
                                                      "FAKE_WORKER_EXIT": "1", "FAKE_WORKER_EXIT_AFTER": "0.2"})
    wait_for(lambda: len(_ids(harness)) >= 2, timeout=15, what="a restart")
    time.sleep(TIMING.requeue_recheck + 0.2)

    assert {sdk for sdk, _ in _ids(harness).values()} == {"-"}  # the supervisor did not override it
    assert recorder.calls == []
    assert any(e.kind == "warning" and "sets its Conductor worker id" in e.message for e in harness.events)


def test_assign_worker_id_keeps_any_conductor_python_worker_id_variable() -> None:
    for pinned in ("conductor.worker.all.worker_id", "conductor.worker.greetings.worker_id",
                   "CONDUCTOR_WORKER_ALL_WORKER_ID", "conductor_worker_worker_id",
                   "CONDUCTOR_WORKER_GREETINGS_WORKER_ID"):
        env = {pinned: "mine"}
        assert assign_worker_id(env, "host-ab12-r0-1") is None
        assert env[pinned] == "mine" and env[WORKER_ID_VARIABLE] == "host-ab12-r0-1"
    env = {"CONDUCTOR_WORKER_ALL_POLL_INTERVAL": "100"}
    assert assign_worker_id(env, "host-ab12-r0-1") == "host-ab12-r0-1"
    assert env[PYTHON_SDK_VARIABLE] == env[WORKER_ID_VARIABLE] == "host-ab12-r0-1"
