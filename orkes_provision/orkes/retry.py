"""When to retry a request, and how long to wait: jittered exponential back-off and Retry-After.

A request is *safe* to repeat when repeating it cannot do anything twice: reads, PUT, DELETE and
the POSTs that are idempotent by nature (token exchange, grant, add role, register task
definitions). Those are retried on connection failures, timeouts, 429 and 502/503/504.
A non-idempotent POST (create application, create key, toggle key status, start workflow) may
have been committed even when its answer was lost, so it is retried only when the server
provably did not act on it: a 429, or a connection that was never established.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass

import httpx

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# Errors raised before a single byte of the request left this machine.
NOT_SENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Errors after which the request may or may not have reached the server.
MAYBE_SENT_ERRORS: tuple[type[Exception], ...] = (httpx.TimeoutException, httpx.NetworkError,
                                                  httpx.RemoteProtocolError)


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry and how long to wait in between.

    ``base * 2**attempt`` seconds, capped at ``cap``, with full jitter (a uniform draw between
    half and all of it) so that sixteen threads hitting the same 429 do not come back together.
    A ``Retry-After`` longer than ``max_retry_after`` is not waited for: the call fails instead.
    """

    max_retries: int = 4
    base: float = 0.2
    cap: float = 5.0
    max_retry_after: float = 60.0

    def backoff(self, attempt: int) -> float:
        delay = min(self.cap, self.base * (2 ** attempt))
        return float(delay / 2 + random.uniform(0, delay / 2))

    def should_retry_status(self, status: int, *, safe: bool) -> bool:
        if status == 429:
            return True
        return safe and status in RETRYABLE_STATUSES

    def should_retry_error(self, err: Exception, *, safe: bool) -> bool:
        if isinstance(err, NOT_SENT_ERRORS):
            return True
        return safe and isinstance(err, MAYBE_SENT_ERRORS)


def retry_after_seconds(response: httpx.Response, *, now: float | None = None) -> float | None:
    """The server's ``Retry-After`` in seconds (delta-seconds or an HTTP date), or ``None``."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
