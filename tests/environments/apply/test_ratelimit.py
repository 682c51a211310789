"""Adaptive concurrency: the limiter's arithmetic, and the dependency-graph runner's guarantees."""

from __future__ import annotations

import threading
import time

import pytest

from orkes_provision.orkes.ratelimit import AdaptiveLimiter, run_graph


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_429_halves_the_limit_down_to_one_and_pauses_for_retry_after() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(16, clock=clock)
    limiter.rate_limited(2.0)
    assert limiter.limit == 8
    assert limiter.pause_remaining() == pytest.approx(2.0)
    for expected in (4, 2, 1, 1):
        clock.now += 2.5  # each 429 after the previous pause ended is a new burst
        limiter.rate_limited(1.0)
        assert limiter.limit == expected
    assert limiter.stats.lowest_limit == 1
    assert limiter.stats.rate_limited == 5


def test_a_burst_of_429s_from_calls_already_in_flight_cuts_once() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(16, clock=clock)
    for _ in range(16):
        limiter.rate_limited(1.0)
    assert limiter.limit == 8
    assert limiter.stats.cuts == 1
    assert limiter.stats.rate_limited == 16


def test_429_without_retry_after_still_pauses() -> None:
    limiter = AdaptiveLimiter(4, clock=FakeClock())
    limiter.rate_limited(None)
    assert limiter.pause_remaining() > 0


def test_limit_grows_back_by_one_per_window_of_successes_up_to_the_maximum() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(4, clock=clock)
    limiter.rate_limited(0.0)
    assert limiter.limit == 2
    limiter.succeeded()
    assert limiter.limit == 2
    limiter.succeeded()
    assert limiter.limit == 3
    for _ in range(3):
        limiter.succeeded()
    assert limiter.limit == 4
    for _ in range(20):
        limiter.succeeded()
    assert limiter.limit == 4


def test_graph_runs_dependents_after_their_dependencies_and_skips_those_of_failures() -> None:
    finished: list[str] = []
    lock = threading.Lock()

    def run(job: str) -> str:
        if job == "bad":
            raise RuntimeError("boom")
        with lock:
            finished.append(job)
        return job.upper()

    deps = {"grant-a": {"app-a"}, "key-a": {"app-a"}, "grant-b": {"bad"}, "revoke-b": {"grant-b"}}
    outcomes = run_graph(["app-a", "bad", "grant-a", "key-a", "grant-b", "revoke-b"], run, AdaptiveLimiter(4),
                         depends_on=deps)
    assert finished.index("app-a") < finished.index("grant-a")
    assert finished.index("app-a") < finished.index("key-a")
    assert outcomes["grant-a"].result == "GRANT-A"
    assert outcomes["bad"].failed
    assert isinstance(outcomes["bad"].error, RuntimeError)
    assert outcomes["grant-b"].skipped
    assert outcomes["revoke-b"].skipped
    assert "grant-b" not in finished


def test_a_result_judged_failed_skips_dependents_too() -> None:
    outcomes = run_graph(["a", "b"], lambda job: job == "a", AdaptiveLimiter(2), depends_on={"b": {"a"}},
                         failed=lambda ok: ok)
    assert outcomes["a"].failed
    assert outcomes["b"].skipped


def test_graph_never_has_more_jobs_in_flight_than_the_limit() -> None:
    in_flight = 0
    most = 0
    lock = threading.Lock()
    release = threading.Semaphore(0)

    def run(job: int) -> int:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        release.acquire(timeout=5)
        with lock:
            in_flight -= 1
        return job

    def feeder() -> None:
        for _ in range(40):
            time.sleep(0.002)
            release.release()

    thread = threading.Thread(target=feeder)
    thread.start()
    outcomes = run_graph(list(range(40)), run, AdaptiveLimiter(3))
    thread.join()
    assert most <= 3
    assert all(o.ok for o in outcomes.values())


def test_no_job_starts_before_a_pending_pause_ends() -> None:
    limiter = AdaptiveLimiter(4)
    limiter.rate_limited(0.3)
    pause_ends = time.monotonic() + limiter.pause_remaining()
    started: list[float] = []
    run_graph([1, 2, 3], lambda job: started.append(time.monotonic()), limiter)
    assert len(started) == 3
    assert min(started) >= pause_ends - 0.01
