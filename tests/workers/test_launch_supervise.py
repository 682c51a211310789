"""The supervisor, driven in-process with a fake worker script (no SDK, no server)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from orkes_provision.workers.launch import CommandNotFound, worker_environment
from orkes_provision.workers.supervise import HasPolled, Requeue, Supervisor, SupervisorEvent, Timing, exit_status
from tests.workers.launch_helpers import (
    FAKE_WORKER,
    FakeKey,
    alive,
    events,
    fake_worker_env,
    group_members,
    log_lines,
    wait_for,
)

FAST = Timing(grace=2.0, settle=0.5, key_poll=0.2, backoff_initial=0.2, backoff_max=1.0,
              backoff_reset_after=30.0, tick=0.05)


def key(key_id: str, secret: str = "s3cret-value") -> FakeKey:
    return FakeKey("http://127.0.0.1:9/api", "app", key_id, SecretStr(secret))


class Harness:
    """Runs a Supervisor in a thread; always stops it and every process it started."""

    def __init__(self, tmp_path: Path) -> None:
        self.log = tmp_path / "worker.log"
        self.events: list[SupervisorEvent] = []
        self.thread: threading.Thread | None = None
        self.result: list[int] = []
        self.errors: list[BaseException] = []
        self.supervisor: Supervisor[FakeKey] | None = None

    def start(self, *, replicas: int = 1, restart: str = "on-failure", current: list[FakeKey] | None = None,
              timing: Timing = FAST, requeue: Requeue[FakeKey] | None = None,
              has_polled: HasPolled[FakeKey] | None = None, **worker_env: str) -> Supervisor[FakeKey]:
        keys = current if current is not None else [key("key-1")]
        base = fake_worker_env(self.log, **worker_env)
        supervisor: Supervisor[FakeKey] = Supervisor(
            [sys.executable, str(FAKE_WORKER)],
            lambda k: worker_environment(base, k, "python"),
            replicas=replicas, restart_policy=restart,  # type: ignore[arg-type]
            key_watch=lambda: keys[-1], initial_key=keys[-1], name="fake",
            timing=timing, on_event=self.events.append, requeue=requeue, has_polled=has_polled)
        self.supervisor = supervisor

        def target() -> None:
            try:
                self.result.append(supervisor.run())
            except BaseException as err:  # surfaced by the test via .errors
                self.errors.append(err)

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()
        return supervisor

    def stop(self) -> int:
        assert self.supervisor is not None
        assert self.thread is not None
        self.supervisor.request_stop(signal.SIGTERM)
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "supervisor did not stop within 15 s"
        assert not self.errors, self.errors
        return self.result[0]

    def cleanup(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            self.stop()
        for line in log_lines(self.log):
            pid = int(line[2] if line[0] in ("start", "stop", "refused") else line[1])
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.cleanup()


def test_a_worker_killed_with_sigkill_is_restarted_with_a_new_pid(harness: Harness) -> None:
    harness.start()
    first = wait_for(lambda: events(harness.log, "start"), what="first start")[0]
    os.kill(int(first[2]), signal.SIGKILL)
    starts = wait_for(lambda: len(events(harness.log, "start")) >= 2 and events(harness.log, "start"),
                      what="restart after SIGKILL")
    assert starts[1][2] != first[2]
    assert alive(int(starts[1][2]))
    kinds = [e.kind for e in harness.events]
    assert "exited" in kinds
    assert "restarting" in kinds
    exited = next(e for e in harness.events if e.kind == "exited")
    assert exited.exit_code == 128 + signal.SIGKILL
    assert harness.stop() == 0
    assert not alive(int(starts[1][2]))


def test_stop_ends_every_process_of_the_group_including_forked_children(harness: Harness) -> None:
    harness.start(FAKE_WORKER_CHILD="1")
    start = wait_for(lambda: events(harness.log, "start"), what="start")[0]
    child = int(events(harness.log, "child")[0][1])
    leader = int(start[2])
    assert set(group_members(leader)) == {leader, child}
    assert harness.stop() == 0
    assert group_members(leader) == []
    assert events(harness.log, "stop")[0][2] == str(leader)


def test_a_worker_ignoring_sigterm_is_killed_after_the_grace_period(harness: Harness) -> None:
    harness.start(timing=Timing(grace=0.5, tick=0.05, key_poll=60), FAKE_WORKER_IGNORE_TERM="1")
    leader = int(wait_for(lambda: events(harness.log, "start"), what="start")[0][2])
    assert harness.stop() == 0
    assert not alive(leader)
    assert any(e.kind == "warning" and "killing" in e.message for e in harness.events)


def test_a_changed_key_starts_the_new_worker_before_stopping_the_old_one(harness: Harness) -> None:
    keys = [key("key-1")]
    harness.start(current=keys)
    old = wait_for(lambda: events(harness.log, "start"), what="first start")[0]
    keys.append(key("key-2", "another-secret"))
    wait_for(lambda: any(e.kind == "rotated" for e in harness.events), what="old worker stopped")
    lines = log_lines(harness.log)
    new_start = next(i for i, line in enumerate(lines) if line[0] == "start" and line[1] == "key-2")
    old_stop = next(i for i, line in enumerate(lines) if line[0] == "stop")
    assert old[1] == "key-1"
    assert lines[old_stop][1:3] == ["key-1", old[2]]
    assert new_start < old_stop, lines
    new_pid = int(lines[new_start][2])
    assert alive(new_pid)
    assert not alive(int(old[2]))
    assert [e.kind for e in harness.events if e.kind in ("key-changed", "rotated")] == ["key-changed", "rotated"]
    assert harness.stop() == 0


def test_a_new_worker_that_dies_while_starting_leaves_the_old_one_running(harness: Harness) -> None:
    keys = [key("key-1")]
    harness.start(current=keys, FAKE_WORKER_FAIL_KEY="key-bad")
    old = int(wait_for(lambda: events(harness.log, "start"), what="first start")[0][2])
    keys.append(key("key-bad"))
    wait_for(lambda: any(e.kind == "error" and "keeping the old one" in e.message for e in harness.events),
             what="rotation refused")
    assert alive(old)
    assert events(harness.log, "stop") == []
    assert harness.stop() == 0


def test_replicas_each_get_their_index_and_the_key(harness: Harness) -> None:
    harness.start(replicas=2)
    starts = wait_for(lambda: len(events(harness.log, "start")) == 2 and events(harness.log, "start"),
                      what="two replicas")
    assert sorted(line[3] for line in starts) == ["0", "1"]
    assert {line[1] for line in starts} == {"key-1"}
    assert harness.stop() == 0


def test_restart_never_returns_the_workers_exit_status(harness: Harness) -> None:
    harness.start(restart="never", FAKE_WORKER_EXIT="3")
    assert harness.thread is not None
    harness.thread.join(timeout=10)
    assert harness.result == [3]
    assert len(events(harness.log, "start")) == 1


def test_on_failure_does_not_restart_a_clean_exit_but_restarts_a_failing_one(harness: Harness) -> None:
    harness.start(restart="on-failure", FAKE_WORKER_EXIT="0")
    assert harness.thread is not None
    harness.thread.join(timeout=10)
    assert harness.result == [0]
    assert len(events(harness.log, "start")) == 1


def test_a_crashing_worker_is_restarted_with_growing_back_off(harness: Harness) -> None:
    harness.start(restart="on-failure", FAKE_WORKER_EXIT="2")
    wait_for(lambda: len(events(harness.log, "start")) >= 3, what="three starts")
    delays = [float(e.message.rsplit(" in ", 1)[1].rstrip("s")) for e in harness.events if e.kind == "restarting"]
    assert delays[:2] == [0.2, 0.4]
    assert harness.stop() == 0


def test_a_missing_command_fails_before_anything_starts(tmp_path: Path) -> None:
    supervisor: Supervisor[FakeKey] = Supervisor(
        [str(tmp_path / "no-such-program")], lambda k: {"PATH": "/usr/bin"}, initial_key=key("key-1"), timing=FAST)
    with pytest.raises(CommandNotFound) as caught:
        supervisor.run()
    assert caught.value.exit_code == 127
    assert "no-such-program" in caught.value.message


def test_exit_status_maps_signals_like_a_shell() -> None:
    assert exit_status(0) == 0
    assert exit_status(3) == 3
    assert exit_status(-signal.SIGTERM) == 143


@pytest.mark.parametrize(("grace", "drained"), [(4.0, True), (0.3, False)])
def test_a_worker_finishing_its_task_after_sigterm_is_killed_only_once_the_stop_grace_is_over(
        harness: Harness, grace: float, drained: bool) -> None:
    timing = Timing(grace=grace, settle=0.5, key_poll=60, tick=0.05)
    harness.start(timing=timing, FAKE_WORKER_DRAIN="1.0")
    started = wait_for(lambda: events(harness.log, "start"), what="the worker to start")
    pid = int(started[0][2])
    assert harness.stop() == 0
    assert bool(events(harness.log, "stop")) is drained
    killed = [e for e in harness.events if e.kind == "warning" and "killing it" in e.message]
    assert bool(killed) is not drained
    assert group_members(pid) == []


POLL_FAST = Timing(grace=2.0, settle=0.5, poll_wait=3.0, poll_check=0.1, key_poll=0.2, backoff_initial=0.2,
                   backoff_max=1.0, backoff_reset_after=30.0, tick=0.05)


def test_a_rotated_in_worker_replaces_the_old_one_only_once_the_server_saw_it_poll(harness: Harness) -> None:
    polled: set[str] = set()
    asked: list[str] = []

    def has_polled(current: FakeKey, worker_id: str) -> bool:
        asked.append(worker_id)
        return worker_id in polled

    keys = [key("key-1")]
    harness.start(current=keys, timing=POLL_FAST, has_polled=has_polled)
    old = int(wait_for(lambda: events(harness.log, "start"), what="first start")[0][2])
    keys.append(key("key-2", "another-secret"))
    new_id = wait_for(lambda: [e.worker_id for e in harness.events if e.kind == "started" and e.key_id == "key-2"],
                      what="the new worker")[0]
    wait_for(lambda: new_id in asked, what="the poll data to be read for the new worker")
    assert alive(old)  # alive for well past 'settle' (0.5 s), not yet proven: the old one stays
    assert not any(e.kind == "rotated" for e in harness.events)
    polled.add(str(new_id))
    wait_for(lambda: any(e.kind == "rotated" for e in harness.events), what="old worker stopped")
    assert not alive(old)
    assert harness.stop() == 0


def test_a_rotated_in_worker_that_never_polls_is_stopped_and_the_old_one_keeps_its_key(harness: Harness) -> None:
    keys = [key("key-1")]
    harness.start(current=keys, timing=POLL_FAST, has_polled=lambda current, worker_id: False)
    old = int(wait_for(lambda: events(harness.log, "start"), what="first start")[0][2])
    keys.append(key("key-2", "another-secret"))
    refused = wait_for(lambda: [e for e in harness.events if e.kind == "error" and "did not poll" in e.message],
                       what="the new worker given up")
    assert "keeping the old one on key key-1" in refused[0].message
    assert alive(old)
    new = [e for e in harness.events if e.kind == "started" and e.key_id == "key-2"]
    assert len(new) == 1 and new[0].pid is not None
    assert not alive(new[0].pid)
    assert not any(e.kind == "rotated" for e in harness.events)
    time.sleep(POLL_FAST.key_poll * 3)  # the store still holds key-2: not tried again, nothing else started
    assert len([e for e in harness.events if e.kind == "started"]) == 2
    assert harness.stop() == 0


def test_a_worker_failing_again_and_again_is_given_up_with_one_line_and_its_exit_status(harness: Harness) -> None:
    timing = Timing(grace=2.0, key_poll=60, backoff_initial=0.05, backoff_max=0.2, give_up_after=3,
                    give_up_window=30.0, tick=0.05)
    harness.start(timing=timing, FAKE_WORKER_EXIT="7")
    assert harness.thread is not None
    harness.thread.join(timeout=20)
    assert harness.result == [7]  # the supervisor ends by itself, with the worker's status
    assert len(events(harness.log, "start")) == 3
    given_up = [e for e in harness.events if e.kind == "error"]
    assert len(given_up) == 1
    assert given_up[0].message == ("worker fake[0] failed 3 times in a row within 30s (last: exited with code 7); "
                                   "not restarting it: fix what its output says, then start it again")
    assert [e.kind for e in harness.events].count("restarting") == 2


def test_failures_spread_wider_than_the_window_never_add_up_to_giving_up(harness: Harness) -> None:
    # Each run lasts 0.3 s; only failures within 0.5 s of one another count as 'in a row'.
    timing = Timing(grace=2.0, key_poll=60, backoff_initial=0.3, backoff_max=0.3, give_up_after=3,
                    give_up_window=0.5, tick=0.05)
    harness.start(timing=timing, FAKE_WORKER_EXIT="7", FAKE_WORKER_EXIT_AFTER="0.3")
    wait_for(lambda: len(events(harness.log, "start")) >= 5, timeout=30, what="five starts")
    assert not [e for e in harness.events if e.kind == "error"]
    assert harness.stop() == 0
