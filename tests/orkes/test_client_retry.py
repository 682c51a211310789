"""Retries: safe calls on transport errors, 429 and 502/503/504; non-idempotent POSTs only when provably unsent."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest
from pydantic import SecretStr

from orkes_provision.errors import NotFound, RateLimited, ServerUnavailable
from orkes_provision.orkes.models import Subject, Target
from orkes_provision.orkes.retry import RetryPolicy, retry_after_seconds
from tests.orkes.helpers import FakeOrkes, Sleeps, error_body, make_client

APPS = "/api/applications"
OK_APP = httpx.Response(200, json={"id": "a1", "name": "w"})


def _request() -> httpx.Request:
    return httpx.Request("GET", "https://x/api/applications")


def test_429_on_a_get_waits_the_retry_after_seconds_then_succeeds() -> None:
    fake = FakeOrkes()
    fake.script("GET", APPS, httpx.Response(429, headers={"Retry-After": "2"}, json={"message": "slow down"}))
    fake.route("GET", APPS, httpx.Response(200, json=[{"id": "a1", "name": "w"}]))
    sleeps = Sleeps()
    with make_client(fake, sleeps=sleeps) as client:
        apps = client.list_applications()
    assert [a.id for a in apps] == ["a1"]
    assert sleeps == [2.0]
    assert len(fake.calls("GET", APPS)) == 2


def test_retry_after_as_an_http_date_is_honoured() -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    response = httpx.Response(429, headers={"Retry-After": later}, request=_request())
    assert 28 <= (retry_after_seconds(response) or 0) <= 30
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "soon"}, request=_request())) is None
    assert retry_after_seconds(httpx.Response(429, request=_request())) is None


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_gateway_error_on_a_get_is_retried_with_back_off(status: int) -> None:
    fake = FakeOrkes()
    fake.script("GET", APPS, error_body(status, "down"), error_body(status, "down"))
    fake.route("GET", APPS, httpx.Response(200, json=[]))
    sleeps = Sleeps()
    with make_client(fake, sleeps=sleeps) as client:
        assert client.list_applications() == []
    assert len(fake.calls("GET", APPS)) == 3
    assert len(sleeps) == 2
    assert 0.1 <= sleeps[0] <= 0.2
    assert 0.2 <= sleeps[1] <= 0.4


def test_a_get_that_keeps_failing_gives_up_after_max_retries_with_server_unavailable() -> None:
    fake = FakeOrkes()
    fake.route("GET", APPS, error_body(503, "maintenance"))
    sleeps = Sleeps()
    with make_client(fake, sleeps=sleeps, max_retries=3) as client, pytest.raises(ServerUnavailable) as caught:
        client.list_applications()
    assert len(fake.calls("GET", APPS)) == 4
    assert len(sleeps) == 3
    assert "503" in caught.value.message
    assert "maintenance" in caught.value.message


def test_create_application_is_not_retried_on_503() -> None:
    fake = FakeOrkes()
    fake.script("POST", APPS, error_body(503, "unavailable"))
    fake.route("POST", APPS, OK_APP)
    with make_client(fake) as client, pytest.raises(ServerUnavailable) as caught:
        client.create_application("w")
    assert len(fake.calls("POST", APPS)) == 1
    assert "may have been applied" in caught.value.hint


@pytest.mark.parametrize("error", [httpx.ReadError("reset"), httpx.RemoteProtocolError("closed"),
                                   httpx.ReadTimeout("slow")])
def test_create_application_is_not_retried_when_its_answer_was_lost(error: Exception) -> None:
    fake = FakeOrkes()
    fake.script("POST", APPS, error)
    fake.route("POST", APPS, OK_APP)
    with make_client(fake) as client, pytest.raises(ServerUnavailable) as caught:
        client.create_application("w")
    assert len(fake.calls("POST", APPS)) == 1
    assert "may have been applied" in caught.value.hint


def test_create_key_and_toggle_key_are_not_retried_on_a_lost_answer() -> None:
    fake = FakeOrkes()
    fake.route("POST", "/api/applications/a1/accessKeys", httpx.ReadError("reset"))
    fake.route("POST", "/api/applications/a1/accessKeys/k1/status", error_body(502, "bad gateway"))
    with make_client(fake) as client:
        with pytest.raises(ServerUnavailable):
            client.create_key("a1")
        with pytest.raises(ServerUnavailable):
            client.toggle_key("a1", "k1")
    assert len(fake.calls("POST", "/api/applications/a1/accessKeys")) == 1
    assert len(fake.calls("POST", "/api/applications/a1/accessKeys/k1/status")) == 1


@pytest.mark.parametrize("error", [httpx.ConnectError("refused"), httpx.ConnectTimeout("no route")])
def test_create_application_is_retried_when_the_connection_was_never_made(error: Exception) -> None:
    fake = FakeOrkes()
    fake.script("POST", APPS, error)
    fake.route("POST", APPS, OK_APP)
    with make_client(fake) as client:
        assert client.create_application("w").id == "a1"
    assert len(fake.calls("POST", APPS)) == 2


def test_create_application_is_retried_on_429_which_the_server_rejected_unprocessed() -> None:
    fake = FakeOrkes()
    fake.script("POST", APPS, httpx.Response(429, headers={"Retry-After": "1"}))
    fake.route("POST", APPS, OK_APP)
    sleeps = Sleeps()
    with make_client(fake, sleeps=sleeps) as client:
        assert client.create_application("w").id == "a1"
    assert sleeps == [1.0]
    assert len(fake.calls("POST", APPS)) == 2


@pytest.mark.parametrize("error", [httpx.ReadError("reset"), httpx.ReadTimeout("slow")])
def test_a_get_is_retried_after_a_lost_answer(error: Exception) -> None:
    fake = FakeOrkes()
    fake.script("GET", APPS, error)
    fake.route("GET", APPS, httpx.Response(200, json=[]))
    with make_client(fake) as client:
        assert client.list_applications() == []
    assert len(fake.calls("GET", APPS)) == 2


def test_idempotent_posts_grant_and_add_role_are_retried_on_503() -> None:
    fake = FakeOrkes()
    fake.script("POST", "/api/auth/authorization", error_body(503, "busy"))
    fake.route("POST", "/api/auth/authorization", httpx.Response(200, json={"message": "Granted permission"}))
    fake.script("POST", "/api/applications/a1/roles/WORKER", httpx.ReadError("reset"))
    fake.route("POST", "/api/applications/a1/roles/WORKER", httpx.Response(200, json={}))
    with make_client(fake) as client:
        client.grant(Subject(type="USER", id="app:a1"), Target(type="TASK_DEF", id="t"), ["EXECUTE"])
        client.add_role("a1", "WORKER")
    assert len(fake.calls("POST", "/api/auth/authorization")) == 2
    assert len(fake.calls("POST", "/api/applications/a1/roles/WORKER")) == 2


def test_a_429_that_never_ends_is_rate_limited_after_the_retries() -> None:
    fake = FakeOrkes()
    fake.route("GET", APPS, httpx.Response(429, headers={"Retry-After": "0"}))
    with make_client(fake, max_retries=2) as client, pytest.raises(RateLimited) as caught:
        client.list_applications()
    assert len(fake.calls("GET", APPS)) == 3
    assert caught.value.exit_code == 9


def test_a_retry_after_beyond_the_limit_fails_at_once_instead_of_hanging() -> None:
    fake = FakeOrkes()
    fake.route("GET", APPS, httpx.Response(429, headers={"Retry-After": "3600"}))
    sleeps = Sleeps()
    with make_client(fake, sleeps=sleeps) as client, pytest.raises(RateLimited):
        client.list_applications()
    assert sleeps == []


def test_a_failing_token_exchange_is_retried_even_inside_a_non_idempotent_call() -> None:
    fake = FakeOrkes()
    fake.script("POST", "/api/token", error_body(503, "busy"), httpx.ReadError("reset"))
    fake.route("POST", APPS, OK_APP)
    with make_client(fake) as client:
        assert client.create_application("w").id == "a1"
    assert len(fake.calls("POST", "/api/token")) == 3
    assert len(fake.calls("POST", APPS)) == 1


def test_connection_refused_everywhere_is_server_unavailable_naming_the_server() -> None:
    fake = FakeOrkes()
    fake.route("POST", "/api/token", httpx.ConnectError("[Errno 111] Connection refused"))
    with make_client(fake, max_retries=1) as client, pytest.raises(ServerUnavailable) as caught:
        client.list_applications()
    assert caught.value.message.startswith("cannot reach https://orkes.example.com/api: connection refused")
    assert caught.value.exit_code == 8


def test_back_off_is_jittered_exponential_and_capped() -> None:
    policy = RetryPolicy(base=0.2, cap=5.0)
    for attempt, full in [(0, 0.2), (1, 0.4), (2, 0.8), (3, 1.6), (6, 5.0), (20, 5.0)]:
        delays = {policy.backoff(attempt) for _ in range(50)}
        assert all(full / 2 <= d <= full for d in delays)
        assert len(delays) > 1  # jittered


def test_exchange_token_of_a_key_is_a_safe_call() -> None:
    fake = FakeOrkes()
    fake.script("POST", "/api/token", httpx.ReadTimeout("slow"))
    with make_client(fake) as client:
        assert client.exchange_token("k2", SecretStr("s2")).get_secret_value() == fake.tokens[0]


@pytest.mark.parametrize("first", [httpx.ReadError("reset"), error_body(504, "gateway timeout")],
                         ids=["lost-answer", "gateway-timeout"])
def test_a_delete_whose_answer_was_lost_and_whose_retry_finds_nothing_is_done(first: object) -> None:
    fake = FakeOrkes()
    fake.script("DELETE", "/api/applications/a1/accessKeys/k1", first)
    fake.route("DELETE", "/api/applications/a1/accessKeys/k1", error_body(404, "Access key 'k1' not found"))
    with make_client(fake) as client:
        client.delete_key("a1", "k1")
    assert len(fake.calls("DELETE", "/api/applications/a1/accessKeys/k1")) == 2


def test_a_delete_of_something_that_never_existed_is_still_not_found() -> None:
    fake = FakeOrkes()
    fake.script("DELETE", "/api/applications/a1", httpx.ConnectError("refused"))
    fake.route("DELETE", "/api/applications/a1", error_body(404, "Application 'a1' not found"))
    with make_client(fake) as client, pytest.raises(NotFound):
        client.delete_application("a1")
