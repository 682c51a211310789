"""Adaptive concurrency: run many independent calls at once, and back off when the server says 429.

``AdaptiveLimiter`` is additive-increase / multiplicative-decrease (as TCP does it): a 429 halves
the number of calls allowed in flight (never below one) and pauses new calls for the server's
``Retry-After``; each run of ``limit`` successes in a row allows one more call, up to the maximum
given by ``--parallelism``. Sixteen calls that hit the same 429 at once cut the limit once, not
sixteen times: cuts closer together than the pause they caused count as one.

``run_graph`` runs jobs that depend on each other (an application before its grants) with the
limiter deciding how many run at once. It never starts a job before its dependencies finished,
skips jobs whose dependency failed, and returns when every job has an outcome.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import httpx

from orkes_provision.orkes.retry import retry_after_seconds

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")

# When the server says 429 without Retry-After, wait this long before starting new calls.
DEFAULT_PAUSE = 1.0
# Never wait longer than this for a pause: the client gives up on longer Retry-After values anyway.
MAX_PAUSE = 60.0


@dataclass
class LimiterStats:
    rate_limited: int = 0
    cuts: int = 0
    lowest_limit: int = 0
    paused_seconds: float = 0.0


class AdaptiveLimiter:
    """How many calls may be in flight now, and until when new calls must wait (thread-safe)."""

    def __init__(self, maximum: int, *, minimum: int = 1, clock: Callable[[], float] = time.monotonic) -> None:
        if maximum < 1 or minimum < 1 or minimum > maximum:
            raise ValueError("need 1 <= minimum <= maximum")
        self.maximum = maximum
        self.minimum = minimum
        self._clock = clock
        self._lock = threading.Lock()
        self._limit = maximum
        self._successes = 0
        self._paused_until = 0.0
        self.stats = LimiterStats(lowest_limit=maximum)

    @property
    def limit(self) -> int:
        with self._lock:
            return self._limit

    def pause_remaining(self) -> float:
        """Seconds until new calls may start (0 when they may start now)."""
        with self._lock:
            return max(0.0, self._paused_until - self._clock())

    def rate_limited(self, retry_after: float | None) -> None:
        """The server answered 429: cut the limit (once per burst) and pause new calls."""
        pause = min(MAX_PAUSE, DEFAULT_PAUSE if retry_after is None else max(0.0, retry_after))
        with self._lock:
            now = self._clock()
            self.stats.rate_limited += 1
            self._successes = 0
            if now >= self._paused_until:
                # A new burst: the calls that were already in flight when it began report it too.
                self._limit = max(self.minimum, self._limit // 2)
                self.stats.cuts += 1
                self.stats.lowest_limit = min(self.stats.lowest_limit, self._limit)
            until = now + pause
            if until > self._paused_until:
                self.stats.paused_seconds += until - max(now, self._paused_until)
                self._paused_until = until

    def succeeded(self) -> None:
        """A call went through: after ``limit`` of them in a row, allow one more in flight."""
        with self._lock:
            if self._limit >= self.maximum:
                return
            self._successes += 1
            if self._successes >= self._limit:
                self._limit += 1
                self._successes = 0


@dataclass
class JobOutcome(Generic[R]):
    """How a job ended: ran (``result``), raised (``error``), judged failed, or skipped (a dependency failed)."""

    result: R | None = None
    error: BaseException | None = None
    failed: bool = False
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped


def run_graph(jobs: Sequence[K], run: Callable[[K], R], limiter: AdaptiveLimiter, *,
              depends_on: Mapping[K, Iterable[K]] | None = None, failed: Callable[[R], bool] | None = None,
              on_done: Callable[[K, JobOutcome[R]], None] | None = None) -> dict[K, JobOutcome[R]]:
    """Run every job once its dependencies are done, at most ``limiter.limit`` at a time.

    Jobs start in the order given among those that are ready, so put the ones that unlock the
    most work first. A job that raised, or whose result ``failed`` says is a failure, makes its
    dependents (and theirs) skipped. ``on_done`` is called once per job, one call at a time.

    Worker threads take the next ready job themselves as soon as they finish one: no central
    thread has to wake up per request, which matters when hundreds of requests are in flight.
    """
    graph = _Graph(jobs, depends_on or {}, on_done)
    workers = [threading.Thread(target=graph.work, args=(run, limiter, failed), name=f"apply-{n}", daemon=True)
               for n in range(max(1, min(limiter.maximum, len(jobs))))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for job in jobs:  # only if a worker died unexpectedly: report the job rather than lose it
        if job not in graph.outcomes:
            graph.outcomes[job] = JobOutcome(error=RuntimeError("not run: the scheduler stopped"), failed=True)
    return graph.outcomes


# How long an idle worker sleeps before looking again, even without being notified.
_IDLE_RECHECK = 0.5


class _Graph(Generic[K, R]):
    """The shared state of ``run_graph``: what is ready, running and done, under one condition."""

    def __init__(self, jobs: Sequence[K], depends_on: Mapping[K, Iterable[K]],
                 on_done: Callable[[K, JobOutcome[R]], None] | None) -> None:
        known = set(jobs)
        self.total = len(known)
        self.waiting_on = {job: {d for d in depends_on.get(job, ()) if d in known and d != job} for job in jobs}
        self.dependents: dict[K, list[K]] = {}
        for job, needs in self.waiting_on.items():
            for need in needs:
                self.dependents.setdefault(need, []).append(job)
        self.order = {job: index for index, job in enumerate(jobs)}
        self.ready = [(self.order[job], job) for job in jobs if not self.waiting_on[job]]
        heapq.heapify(self.ready)
        self.outcomes: dict[K, JobOutcome[R]] = {}
        self.in_flight = 0
        self.cond = threading.Condition()
        self.on_done = on_done

    def work(self, run: Callable[[K], R], limiter: AdaptiveLimiter, failed: Callable[[R], bool] | None) -> None:
        with self.cond:
            # Bounded: every pass takes a job, or waits (at most _IDLE_RECHECK) for one to finish,
            # for a pause to end or for the limit to grow; it ends once every job has an outcome.
            while len(self.outcomes) < self.total:
                pause = limiter.pause_remaining()
                if not self.ready or pause > 0 or self.in_flight >= limiter.limit:
                    self.cond.wait(timeout=min(pause, _IDLE_RECHECK) if pause > 0 else _IDLE_RECHECK)
                    continue
                job = heapq.heappop(self.ready)[1]
                self.in_flight += 1
                self.cond.release()
                try:
                    outcome = self._run(job, run, limiter, failed)
                finally:
                    self.cond.acquire()
                    self.in_flight -= 1
                woken = self._settle(job, outcome)
                self.cond.notify(woken + 1)
            self.cond.notify_all()

    @staticmethod
    def _run(job: K, run: Callable[[K], R], limiter: AdaptiveLimiter,
             failed: Callable[[R], bool] | None) -> JobOutcome[R]:
        try:
            value = run(job)
        except Exception as err:  # a job's failure is its outcome, not the scheduler's
            return JobOutcome(error=err, failed=True)
        if failed is not None and failed(value):
            return JobOutcome(result=value, failed=True)
        limiter.succeeded()
        return JobOutcome(result=value)

    def _settle(self, job: K, outcome: JobOutcome[R]) -> int:
        """Record an outcome (with the condition held); return how many jobs became ready."""
        became_ready = 0
        todo = [(job, outcome)]  # iterative: a long chain of skipped dependents cannot exhaust the stack
        while todo:
            current, result = todo.pop()
            if current in self.outcomes:
                continue
            self.outcomes[current] = result
            if self.on_done is not None:
                self.on_done(current, result)
            for dependent in self.dependents.get(current, []):
                if dependent in self.outcomes:
                    continue
                if not result.ok:
                    todo.append((dependent, JobOutcome(skipped=True)))
                    continue
                self.waiting_on[dependent].discard(current)
                if not self.waiting_on[dependent]:
                    heapq.heappush(self.ready, (self.order[dependent], dependent))
                    became_ready += 1
        return became_ready


class RateLimitObserver(httpx.BaseTransport):
    """An httpx transport that tells a limiter about every 429 on its way to the client.

    The client still retries the request itself (honouring ``Retry-After``); this only lets the
    limiter slow down everything else. Give it to ``OrkesClient(transport=...)``.
    """

    def __init__(self, limiter: AdaptiveLimiter, inner: httpx.BaseTransport | None = None, *,
                 tls: bool = True) -> None:
        """``tls=False`` is for a plain-http server: the inner transport then skips loading the CA
        bundle (a tenth of a second), which it would never use; redirects are not followed."""
        self.limiter = limiter
        self._inner = inner or httpx.HTTPTransport(verify=tls)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if response.status_code == 429:
            self.limiter.rate_limited(retry_after_seconds(response))
        return response

    def close(self) -> None:
        self._inner.close()
