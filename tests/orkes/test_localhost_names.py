"""``*.localhost`` is trusted for plain http only when it resolves to loopback addresses alone."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from orkes_provision.errors import UsageError
from orkes_provision.orkes.urls import is_loopback_host, normalize_server_url
from tests.cli import output, provision
from tests.hostile import Hostile, answer, routes, token_ok


def fake_resolver(table: dict[str, list[str]]) -> Any:
    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0))
                for a in table[host]]
    return getaddrinfo


@pytest.mark.parametrize(("table", "loopback"), [
    ({"sandbox.localhost": ["127.0.0.1"]}, True),
    ({"sandbox.localhost": ["127.0.0.1", "::1"]}, True),
    ({"sandbox.localhost": ["10.0.0.7"]}, False),
    ({"sandbox.localhost": ["127.0.0.1", "10.0.0.7"]}, False),
    ({}, False),
])
def test_a_localhost_subdomain_counts_as_loopback_only_by_its_addresses(monkeypatch: pytest.MonkeyPatch,
                                                                        table: dict[str, list[str]],
                                                                        loopback: bool) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", fake_resolver(table))
    assert is_loopback_host("sandbox.localhost") is loopback
    if loopback:
        assert normalize_server_url("http://sandbox.localhost:8080") == "http://sandbox.localhost:8080/api"
    else:
        with pytest.raises(UsageError) as caught:
            normalize_server_url("http://sandbox.localhost:8080")
        assert "sandbox.localhost" in caught.value.message
        assert normalize_server_url("http://sandbox.localhost:8080", insecure_http=True) == \
            "http://sandbox.localhost:8080/api"


def test_ip_literals_need_no_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", fake_resolver({}))
    assert is_loopback_host("127.0.0.1") and is_loopback_host("::1") and is_loopback_host("[::1]")
    assert not is_loopback_host("10.0.0.1")


def test_the_cli_refuses_plain_http_to_a_localhost_name_that_is_not_loopback(hostile: Hostile) -> None:
    # 'evil.localhost' has no address here: by name alone it used to pass as loopback.
    server = hostile.server(routes({"POST /api/token": token_ok(), "GET /api/applications": answer(200, [])}))
    env = {"CONDUCTOR_AUTH_KEY": "k", "CONDUCTOR_AUTH_SECRET": "localhost-secret-1"}
    result = provision(["--server", f"http://evil.localhost:{server.port}", "apps", "list"], env=env)
    assert result.returncode == 2, output(result)
    assert "evil.localhost" in result.stderr and "--insecure-http" in result.stderr
    result = provision(["--server", f"http://localhost:{server.port}", "apps", "list"], env=env)
    assert result.returncode == 0, output(result)
