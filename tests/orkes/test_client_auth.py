"""Token exchange as an httpx.Auth flow: minting, reuse, refresh before exp, one replay on token errors."""

from __future__ import annotations

import threading

import httpx
import pytest
from pydantic import SecretStr

from orkes_provision.errors import AuthenticationError, ConfigError, PermissionDenied
from orkes_provision.orkes.auth import DEFAULT_LIFETIME, OrkesTokenAuth, jwt_claims, jwt_lifetime
from tests.orkes.helpers import KEY_ID, SECRET, FakeOrkes, error_body, make_client, make_jwt, token_error

APPS = "/api/applications"


def test_first_call_exchanges_the_key_for_a_token_and_sends_it_in_x_authorization() -> None:
    fake = FakeOrkes()
    fake.route("GET", APPS, httpx.Response(200, json=[]))
    with make_client(fake) as client:
        assert client.list_applications() == []
    token_call, call = fake.seen
    assert token_call.path == "/api/token"
    assert token_call.body == {"keyId": KEY_ID, "keySecret": SECRET}
    assert "x-authorization" not in token_call.headers
    assert call.headers["X-Authorization"] == fake.tokens[0]


def test_one_token_serves_many_calls() -> None:
    fake = FakeOrkes()
    fake.route("GET", APPS, httpx.Response(200, json=[]))
    with make_client(fake) as client:
        for _ in range(3):
            client.list_applications()
        assert client.request_count == 4
    assert len(fake.calls("POST", "/api/token")) == 1


@pytest.mark.parametrize(("status", "code"), [(401, "EXPIRED_TOKEN"), (401, "INVALID_TOKEN"), (403, "INVALID_TOKEN"),
                                              (403, "EXPIRED_TOKEN")])
def test_a_token_error_refreshes_once_and_replays_the_request_with_the_new_token(status: int, code: str) -> None:
    fake = FakeOrkes()
    fake.script("POST", APPS, token_error(status, code))
    fake.route("POST", APPS, httpx.Response(200, json={"id": "a1", "name": "w"}))
    with make_client(fake) as client:
        created = client.create_application("w")
    assert created.id == "a1"
    first, second = fake.calls("POST", APPS)
    assert first.headers["X-Authorization"] == fake.tokens[0]
    assert second.headers["X-Authorization"] == fake.tokens[1]
    assert len(fake.tokens) == 2


def test_a_second_token_error_after_the_refresh_is_an_authentication_error_not_a_loop() -> None:
    fake = FakeOrkes()
    fake.route("GET", APPS, token_error(401, "EXPIRED_TOKEN"))
    with make_client(fake) as client, pytest.raises(AuthenticationError) as caught:
        client.list_applications()
    assert len(fake.calls("GET", APPS)) == 2
    assert len(fake.tokens) == 2
    assert KEY_ID in caught.value.message


def test_a_permission_403_without_token_error_code_is_not_refreshed() -> None:
    fake = FakeOrkes()
    fake.route("GET", APPS, error_body(403, "You don't have permissions to list applications"))
    with make_client(fake) as client, pytest.raises(PermissionDenied) as caught:
        client.list_applications()
    assert len(fake.tokens) == 1
    assert len(fake.calls("GET", APPS)) == 1
    assert "You don't have permissions to list applications" in caught.value.message
    assert "ADMIN" in caught.value.hint


@pytest.mark.parametrize("reply", [
    httpx.Response(401, json={"message": "Invalid access key"}),
    httpx.Response(401, json={"message": "Token cannot be null or empty", "error": "INVALID_TOKEN"}),
    httpx.Response(403, json={"message": "Invalid key", "error": "INVALID_TOKEN", "timestamp": 1}),
    httpx.Response(403, json={"status": 403, "message": "Forbidden", "instance": "x", "retryable": False}),
    httpx.Response(401, text="Unauthorized"),
    httpx.Response(401, text=""),
], ids=["plain-401", "auth-filter-401", "auth-filter-403", "error-response-403", "text-401", "empty-401"])
def test_a_rejected_key_names_the_key_id_and_how_to_fix_it_whatever_the_body(reply: httpx.Response) -> None:
    fake = FakeOrkes()
    fake.route("POST", "/api/token", reply)
    with make_client(fake) as client, pytest.raises(AuthenticationError) as caught:
        client.list_applications()
    assert caught.value.message == f"the server rejected key {KEY_ID}"
    assert "ACTIVE" in caught.value.hint
    assert caught.value.exit_code == 4
    assert fake.calls("GET", APPS) == []


@pytest.mark.parametrize("reply", [
    httpx.Response(404, text="Not Found"),
    httpx.Response(405, text="Method Not Allowed"),
    httpx.Response(200, text="<!doctype html><title>Orkes</title>", headers={"content-type": "text/html"}),
    httpx.Response(200, json={"status": "UP"}),
], ids=["404", "405", "html-ui", "json-without-token"])
def test_a_token_endpoint_that_is_not_one_means_the_url_is_not_an_orkes_api(reply: httpx.Response) -> None:
    fake = FakeOrkes()
    fake.route("POST", "/api/token", reply)
    with make_client(fake) as client, pytest.raises(ConfigError) as caught:
        client.list_applications()
    assert "not an Orkes API" in caught.value.message
    assert "/api" in caught.value.hint


def test_exchange_token_verifies_another_key_without_touching_the_clients_own_token() -> None:
    fake = FakeOrkes()
    fake.route("GET", APPS, httpx.Response(200, json=[]))
    with make_client(fake) as client:
        client.list_applications()
        token = client.exchange_token("other-key", SecretStr(" other-secret\n"))
        client.list_applications()
    assert isinstance(token, SecretStr)
    assert token.get_secret_value() == fake.tokens[1]
    other = fake.calls("POST", "/api/token")[1]
    assert other.body == {"keyId": "other-key", "keySecret": "other-secret"}
    assert "x-authorization" not in other.headers
    # The client's own calls still use its own first token.
    assert [c.headers["X-Authorization"] for c in fake.calls("GET", APPS)] == [fake.tokens[0]] * 2


def test_exchange_token_for_a_rejected_key_raises_authentication_error_naming_that_key() -> None:
    fake = FakeOrkes()
    fake.route("POST", "/api/token", httpx.Response(401, json={"message": "bad key"}))
    with make_client(fake) as client, pytest.raises(AuthenticationError) as caught:
        client.exchange_token("worker-key", SecretStr("nope"))
    assert "worker-key" in caught.value.message


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _auth_client(lifetime: float, clock: Clock) -> tuple[httpx.Client, list[str], OrkesTokenAuth]:
    minted: list[str] = []

    def exchange(key_id: str, secret: SecretStr) -> SecretStr:
        minted.append(make_jwt(lifetime, iat=50_000.0))  # iat far from the local clock: skew must not matter
        return SecretStr(minted[-1])

    auth = OrkesTokenAuth("k", SecretStr("s"), exchange, clock=clock)
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json={})), auth=auth)
    return client, minted, auth


def test_the_token_is_refreshed_a_minute_before_it_expires() -> None:
    clock = Clock()
    client, minted, _ = _auth_client(3600, clock)
    with client:
        client.get("https://x/api/a")
        clock.now += 3600 - 61
        client.get("https://x/api/a")
        assert len(minted) == 1
        clock.now += 2
        response = client.get("https://x/api/a")
    assert len(minted) == 2
    assert response.request.headers["X-Authorization"] == minted[1]


def test_short_lived_tokens_are_refreshed_a_fifth_of_their_lifetime_early() -> None:
    clock = Clock()
    client, minted, _ = _auth_client(10, clock)
    with client:
        client.get("https://x/api/a")
        clock.now += 7.9
        client.get("https://x/api/a")
        assert len(minted) == 1
        clock.now += 0.2
        client.get("https://x/api/a")
    assert len(minted) == 2


def test_a_token_without_exp_is_trusted_for_the_default_lifetime() -> None:
    assert jwt_lifetime("not-a-jwt") is None
    assert jwt_claims("a.b.c") == {}
    clock = Clock()
    minted: list[str] = []

    def exchange(key_id: str, secret: SecretStr) -> SecretStr:
        minted.append("opaque-token")
        return SecretStr("opaque-token")

    auth = OrkesTokenAuth("k", SecretStr("s"), exchange, clock=clock)
    auth.token()
    clock.now += DEFAULT_LIFETIME - 61
    auth.token()
    clock.now += 2
    auth.token()
    assert len(minted) == 2


def test_threads_that_all_see_an_expired_token_mint_only_one_new_token() -> None:
    fake = FakeOrkes()
    lock = threading.Lock()

    def answer(request: httpx.Request) -> httpx.Response:
        with lock:
            first = fake.tokens[0]
        if request.headers["X-Authorization"] == first:
            return token_error(401, "EXPIRED_TOKEN")
        return httpx.Response(200, json=[])

    fake.route("GET", APPS, answer)
    with make_client(fake) as client:
        client.exchange_token(KEY_ID, SecretStr(SECRET))  # fake.tokens[0] is not the client's token...
        fake.tokens.clear()
        results: list[object] = []
        barrier = threading.Barrier(16)

        def work() -> None:
            barrier.wait(timeout=10)
            results.append(client.list_applications())

        threads = [threading.Thread(target=work) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert results == [[]] * 16
    assert len(fake.tokens) == 2  # the first token, then exactly one refresh


def test_the_auth_flow_repr_shows_the_key_id_but_not_the_secret() -> None:
    auth = OrkesTokenAuth(KEY_ID, SecretStr(SECRET), lambda k, s: SecretStr("t"))
    assert KEY_ID in repr(auth)
    assert SECRET not in repr(auth)
