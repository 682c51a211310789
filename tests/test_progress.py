"""How the CLI shows the library's wait notices on stderr: a redrawn line on a terminal, few lines elsewhere."""

from __future__ import annotations

import io

import pytest

from orkes_provision import progress
from orkes_provision.cli.common import WAITS, StderrWaits, info


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def countdown(seconds: int, message: str = "waiting for the workers to switch") -> None:
    for left in range(seconds, 0, -1):
        progress.waiting(message, topic="switch-wait", remaining=left)


def test_off_a_terminal_a_countdown_prints_its_first_line_and_again_when_the_message_changes(
        capsys: pytest.CaptureFixture[str]) -> None:
    with progress.reporting_to(StderrWaits(every=5.0)):
        countdown(15)
        countdown(3, "waiting for the workers to switch: 1 of 2 switched")
        progress.waiting("cannot reach the server; retrying in 1.2s", topic="retry")
    assert capsys.readouterr().err.splitlines() == [
        "waiting for the workers to switch (15s left)",
        "waiting for the workers to switch: 1 of 2 switched (3s left)",
        "cannot reach the server; retrying in 1.2s",
    ]


def test_on_a_terminal_a_countdown_redraws_one_line_and_the_next_output_starts_on_a_new_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    screen = Terminal()
    monkeypatch.setattr("sys.stderr", screen)
    with progress.reporting_to(WAITS):  # the reporter 'provision' installs
        countdown(3)
        info("every supervised worker runs the new key")
    assert screen.getvalue() == ("\r\x1b[Kwaiting for the workers to switch (3s left)"
                                 "\r\x1b[Kwaiting for the workers to switch (2s left)"
                                 "\r\x1b[Kwaiting for the workers to switch (1s left)\n"
                                 "every supervised worker runs the new key\n")


def test_without_a_reporter_the_notice_goes_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    with progress.reporting_to(None), caplog.at_level("INFO", logger="orkes_provision.progress"):
        progress.waiting("waiting for the sandbox", remaining=2.4)
    assert caplog.messages == ["waiting for the sandbox (2s left)"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_parallel_countdowns_share_one_line_per_interval(capsys: pytest.CaptureFixture[str]) -> None:
    # keys rotate --all --parallelism 5: five switch waits count down at once (issue 25, item 8).
    clock = Clock()
    apps = [f"app-{i}" for i in range(5)]
    with progress.reporting_to(StderrWaits(every=5.0, clock=clock)):
        for left in range(15, 0, -1):
            for app in apps:
                progress.waiting(f"waiting for workers of {app} to switch", topic="switch-wait", remaining=left)
            clock.now += 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[:5] == [f"waiting for workers of {app} to switch (15s left)" for app in apps]  # each new wait once
    assert lines[5:] == ["waiting for workers of app-0 to switch (10s left)",  # then one line per 5 s in all
                         "waiting for workers of app-0 to switch (5s left)"]


def test_on_a_terminal_parallel_countdowns_redraw_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = Terminal()
    monkeypatch.setattr("sys.stderr", screen)
    with progress.reporting_to(StderrWaits()):
        for left in (2, 1):
            for app in ("a", "b"):
                progress.waiting(f"waiting for {app}", topic="switch-wait", remaining=left)
    assert "\n" not in screen.getvalue()
    assert screen.getvalue().count("\r\x1b[K") == 4
