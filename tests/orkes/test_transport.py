"""The transport's own rules: which proxy a server gets (NO_PROXY as curl reads it), and the deadline."""

from __future__ import annotations

import time

import pytest

from orkes_provision.errors import UsageError
from orkes_provision.orkes.transport import deadline_scope, proxy_for

PROXY = "http://proxy.internal:3128"


@pytest.fixture
def proxies(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "no_proxy", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("https_proxy", PROXY)
    monkeypatch.setenv("http_proxy", PROXY)
    return monkeypatch


@pytest.mark.parametrize("server", ["http://127.0.0.1:8080/api", "http://localhost:8080/api", "http://[::1]:8080/api",
                                    "https://127.0.0.1:8443/api"])
def test_loopback_never_gets_a_proxy(proxies: pytest.MonkeyPatch, server: str) -> None:
    proxies.setenv("ALL_PROXY", PROXY)
    assert proxy_for(server) is None


@pytest.mark.parametrize(("no_proxy", "server", "bypassed"), [
    ("orkes.example.com", "https://orkes.example.com/api", True),
    (".example.com", "https://orkes.example.com/api", True),
    ("example.com", "https://orkes.example.com/api", True),
    ("*.example.com", "https://orkes.example.com/api", True),
    ("ample.com", "https://orkes.example.com/api", False),
    ("orkes.example.com:443", "https://orkes.example.com/api", True),
    ("orkes.example.com:8443", "https://orkes.example.com/api", False),
    ("10.0.0.0/8", "https://10.1.2.3/api", True),
    ("10.1.2.3", "https://10.1.2.3/api", True),
    ("10.0.0.0/8", "https://11.1.2.3/api", False),
    ("*", "https://anything.example/api", True),
    ("", "https://orkes.example.com/api", False),
])
def test_no_proxy_as_curl_reads_it(proxies: pytest.MonkeyPatch, no_proxy: str, server: str, bypassed: bool) -> None:
    proxies.setenv("no_proxy", no_proxy)
    assert proxy_for(server) == (None if bypassed else PROXY)


def test_plain_http_through_a_proxy_is_refused_unless_insecure_http(proxies: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError) as caught:
        proxy_for("http://orkes.internal:8080/api")
    assert "proxy.internal:3128" in caught.value.message and "--insecure-http" in caught.value.hint
    assert proxy_for("http://orkes.internal:8080/api", insecure_http=True) == PROXY


def test_a_proxy_password_is_never_shown(proxies: pytest.MonkeyPatch) -> None:
    proxies.setenv("http_proxy", "http://user:hunter2@proxy.internal:3128")
    with pytest.raises(UsageError) as caught:
        proxy_for("http://orkes.internal:8080/api")
    assert "hunter2" not in caught.value.message + caught.value.hint


def test_an_uppercase_http_proxy_is_ignored_in_a_cgi_request(proxies: pytest.MonkeyPatch) -> None:
    # "httpoxy": in CGI, HTTP_PROXY comes from the request's Proxy header.
    proxies.delenv("http_proxy")
    proxies.setenv("HTTP_PROXY", PROXY)
    proxies.setenv("REQUEST_METHOD", "GET")
    assert proxy_for("http://orkes.internal:8080/api", insecure_http=True) is None


def test_a_nested_deadline_keeps_the_earlier_one_and_the_first_start() -> None:
    with deadline_scope(5.0) as outer:
        time.sleep(0.01)
        with deadline_scope(60.0) as inner:
            assert inner.deadline == outer.deadline
            assert inner.started == outer.started
        with deadline_scope(None) as unbounded:
            assert unbounded.deadline == outer.deadline
    with deadline_scope(None) as none:
        assert none.left() is None


@pytest.mark.parametrize("value", ["http://[bad", "::::", "http://user:hunter2@[bad"])
def test_a_malformed_proxy_setting_is_a_usage_error_that_does_not_echo_it(proxies: pytest.MonkeyPatch,
                                                                          value: str) -> None:
    proxies.setenv("https_proxy", value)
    with pytest.raises(UsageError) as caught:
        proxy_for("https://orkes.example.com/api")
    assert "not a URL" in caught.value.message
    assert "hunter2" not in caught.value.message + caught.value.hint
