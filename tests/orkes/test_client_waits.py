"""A call that keeps waiting on retries says so on the progress channel, once its wait passes a second."""

from __future__ import annotations

import socket

import httpx

from orkes_provision import progress
from orkes_provision.errors import ServerUnavailable
from tests.cli import provision
from tests.orkes.helpers import SERVER, FakeOrkes, Sleeps, error_body, make_client

APPS = "/api/applications"


def test_retries_are_silent_until_the_call_has_waited_a_second_then_each_says_why() -> None:
    fake = FakeOrkes()
    fake.script("GET", APPS, *[error_body(503, "down")] * 4)
    fake.route("GET", APPS, httpx.Response(200, json=[]))
    sleeps, notices = Sleeps(), []
    with progress.reporting_to(notices.append), make_client(fake, sleeps=sleeps) as client:
        assert client.list_applications() == []
    assert len(sleeps) == 4
    told = [i for i in range(4) if sum(sleeps[: i + 1]) >= 1.0]
    assert told  # four back-offs of 0.1-1.6 s add up to more than a second
    assert [n.message for n in notices] == [
        f"{SERVER} answered 503 to GET /api/applications; retrying in {sleeps[i]:.1f}s (retry {i + 1} of 4)"
        for i in told]
    assert {n.topic for n in notices} == {"retry"}


def test_a_retry_after_of_a_second_is_told_at_once() -> None:
    fake = FakeOrkes()
    fake.script("GET", APPS, httpx.Response(429, headers={"Retry-After": "1"}, json={"message": "slow down"}))
    fake.route("GET", APPS, httpx.Response(200, json=[]))
    notices: list[progress.Wait] = []
    with progress.reporting_to(notices.append), make_client(fake) as client:
        client.list_applications()
    assert [n.message for n in notices] == [
        f"{SERVER} answered 429 to GET /api/applications; retrying in 1.0s (retry 1 of 4)"]


def test_a_broken_reporter_does_not_break_the_call() -> None:
    fake = FakeOrkes()
    fake.script("GET", APPS, httpx.Response(429, headers={"Retry-After": "1"}, json={"message": "slow down"}))
    fake.route("GET", APPS, httpx.Response(200, json=[]))

    def broken(wait: progress.Wait) -> None:
        raise OSError("stderr is closed")

    with progress.reporting_to(broken), make_client(fake) as client:
        assert client.list_applications() == []


def test_the_cli_prints_the_connection_retries_on_stderr_before_giving_up() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = f"http://127.0.0.1:{port}/api"
    result = provision(["apps", "list"], env={"CONDUCTOR_SERVER_URL": server, "CONDUCTOR_AUTH_KEY": "k",
                                              "CONDUCTOR_AUTH_SECRET": "s3cret-value"})
    assert result.returncode == ServerUnavailable.exit_code
    lines = result.stderr.splitlines()
    retries = [line for line in lines if "; retrying in " in line]
    assert retries, result.stderr
    assert all(line.startswith(f"cannot reach {server}: connection refused (POST /api/token); retrying in ")
               for line in retries)
    assert retries[-1].endswith("(retry 4 of 4)")
    assert lines[-2:] == [f"error: cannot reach {server}: connection refused (POST /api/token)",
                          f"hint: {ServerUnavailable.default_hint}"]
