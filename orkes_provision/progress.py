"""Saying what a long wait is for, without the library knowing about terminals.

Library code that waits (the client's retry back-off, rotation's switch wait, the sandbox
starting in the background) calls :func:`waiting`. The CLI installs a reporter that prints the
notice on stderr (``cli/common.py``); without one the notice goes to the log, so a library user
who wants it can have it either way. A reporter that fails never stops the work it reports on.

A countdown is one wait reported several times: same ``topic``, ``remaining`` going down. A
reporter may redraw one line for it on a terminal and print less often elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

log = logging.getLogger("orkes_provision.progress")


@dataclass(frozen=True)
class Wait:
    """One notice: ``message`` says what is waited for; ``remaining`` (seconds) makes it a countdown."""

    message: str
    topic: str = "wait"
    remaining: float | None = None

    def render(self) -> str:
        if self.remaining is None:
            return self.message
        return f"{self.message} ({max(0, round(self.remaining))}s left)"


Reporter = Callable[[Wait], None]

_lock = threading.Lock()
_reporter: Reporter | None = None


def set_reporter(reporter: Reporter | None) -> Reporter | None:
    """Install ``reporter`` for every thread (``None``: log only); returns the one it replaces."""
    global _reporter
    with _lock:
        previous, _reporter = _reporter, reporter
    return previous


@contextlib.contextmanager
def reporting_to(reporter: Reporter | None) -> Iterator[None]:
    """Use ``reporter`` inside the block, then put the previous one back."""
    previous = set_reporter(reporter)
    try:
        yield
    finally:
        set_reporter(previous)


def waiting(message: str, *, topic: str = "wait", remaining: float | None = None) -> None:
    """Report that the caller is about to wait for ``message`` (``remaining`` seconds, when known)."""
    notice = Wait(message=message, topic=topic, remaining=remaining)
    with _lock:
        reporter = _reporter
    if reporter is None:
        log.info("%s", notice.render())
        return
    try:
        reporter(notice)
    except Exception as err:  # a broken stderr must not fail a rotation half-way
        log.debug("progress reporter failed: %s", type(err).__name__)
