"""The one translation of HTTP failures into ProvisionError subclasses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from orkes_provision.errors import (
    AuthenticationError,
    Conflict,
    NotFound,
    PermissionDenied,
    ProvisionError,
    RateLimited,
    ServerError,
    ServerUnavailable,
    UsageError,
)
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Subject, Target
from tests.orkes.helpers import KEY_ID, FakeOrkes, error_body, make_client

CASES: list[tuple[str, httpx.Response | Exception, type[ProvisionError], list[str], list[str]]] = [
    ("400 with validation errors", error_body(400, "Validation failed", validationErrors=[
        {"path": "name", "message": "must not be blank", "invalidValue": "  "}]),
     UsageError, ["POST /api/applications", "Validation failed", "name: must not be blank"], ["check"]),
    ("401 on a call", httpx.Response(401, json={"message": "Token expired", "error": "SOMETHING"}),
     AuthenticationError, [f"the server rejected key {KEY_ID}"], ["key id and secret"]),
    ("403 permission", error_body(403, "You don't have permissions to create application"),
     PermissionDenied, ["You don't have permissions to create application", "POST /api/applications"], ["ADMIN"]),
    ("404", error_body(404, "Application 'x' not found"), NotFound, ["Application 'x' not found"], ["apps list"]),
    ("409", error_body(409, "already exists"), Conflict, ["already exists"], ["rerun"]),
    ("500", error_body(500, "NullPointerException"), ServerUnavailable,
     ["https://orkes.example.com/api failed with 500 on POST /api/applications", "NullPointerException"],
     ["may have been applied", "rerun"]),
    ("418", httpx.Response(418, text="teapot"), ServerError, ["unexpected answer 418"], ["-v"]),
    ("302", httpx.Response(302, headers={"Location": "https://login.example.com/"}), ServerError,
     ["redirected (302) to https://login.example.com/"], ["redirects to"]),
    ("multi-line message", error_body(403, "line one\n\tline two"), PermissionDenied, ["line one line two"], []),
]


@pytest.mark.parametrize(("name", "reply", "kind", "in_message", "in_hint"), CASES, ids=[c[0] for c in CASES])
def test_http_errors_become_one_line_provision_errors(name: str, reply: httpx.Response | Exception,
                                                       kind: type[ProvisionError], in_message: list[str],
                                                       in_hint: list[str]) -> None:
    fake = FakeOrkes()
    fake.route("POST", "/api/applications", reply)
    with make_client(fake, max_retries=0) as client, pytest.raises(ProvisionError) as caught:
        client.create_application("w")
    err = caught.value
    assert type(err) is kind
    assert "\n" not in err.message
    for text in in_message:
        assert text in err.message
    for text in in_hint:
        assert text in err.hint


def test_the_validation_errors_invalid_value_is_never_quoted() -> None:
    fake = FakeOrkes()
    fake.route("POST", "/api/applications", error_body(400, "bad", validationErrors=[
        {"path": "keySecret", "message": "bad", "invalidValue": "TopSecretValue"}]))
    with make_client(fake) as client, pytest.raises(UsageError) as caught:
        client.create_application("w")
    assert "TopSecretValue" not in caught.value.message


def test_a_long_server_message_is_shortened() -> None:
    fake = FakeOrkes()
    fake.route("GET", "/api/applications/a1", error_body(404, "x" * 1000))
    with make_client(fake) as client, pytest.raises(NotFound) as caught:
        client.get_application("a1")
    assert len(caught.value.message) < 400


@pytest.mark.parametrize(("path", "call", "role"), [
    ("/api/metadata/taskdefs", lambda c: c.register_task_defs([]), "METADATA_API"),
    ("/api/auth/authorization",
     lambda c: c.grant(Subject(type="USER", id="app:a"), Target(type="TASK_DEF", id="t"), ["EXECUTE"]), "ADMIN"),
    ("/api/workflow", lambda c: c.start_workflow("wf", {}), "EXECUTE on the workflow"),
])
def test_a_403_hint_names_the_role_that_is_probably_missing(path: str, call: Callable[[OrkesClient], object],
                                                            role: str) -> None:
    fake = FakeOrkes()
    fake.route("POST", path, error_body(403, "You don't have permissions"))
    with make_client(fake) as client, pytest.raises(PermissionDenied) as caught:
        call(client)
    assert role in caught.value.hint


def test_429_after_retries_is_rate_limited() -> None:
    fake = FakeOrkes()
    fake.route("GET", "/api/applications", httpx.Response(429))
    with make_client(fake, max_retries=0) as client, pytest.raises(RateLimited):
        client.list_applications()


@pytest.mark.parametrize(("error", "reason"), [
    (httpx.ConnectError("[Errno 111] Connection refused"), "connection refused"),
    (httpx.ConnectError("[Errno -2] Name or service not known"), "Name or service not known"),
    (httpx.ReadTimeout("timed out"), "no answer within 10s"),
    (httpx.RemoteProtocolError("Server disconnected"), "the connection closed before an answer"),
])
def test_transport_failures_are_server_unavailable_with_the_reason(error: Exception, reason: str) -> None:
    fake = FakeOrkes()
    fake.route("GET", "/api/applications", error)
    with make_client(fake, max_retries=0) as client, pytest.raises(ServerUnavailable) as caught:
        client.list_applications()
    assert caught.value.message == f"cannot reach https://orkes.example.com/api: {reason} (GET /api/applications)"


@pytest.mark.parametrize(("reply", "expected"), [
    (httpx.Response(200, text="<html>login</html>"), "not JSON"),
    (httpx.Response(200, json=[{"name": "no id"}]), "0.id"),
    (httpx.Response(200, json={"not": "a list"}), "unexpected answer"),
])
def test_a_malformed_success_answer_is_a_server_error_not_a_traceback(reply: httpx.Response, expected: str) -> None:
    fake = FakeOrkes()
    fake.route("GET", "/api/applications", reply)
    with make_client(fake) as client, pytest.raises(ServerError) as caught:
        client.list_applications()
    assert expected in caught.value.message


def test_no_httpx_exception_escapes_the_client() -> None:
    fake = FakeOrkes()
    errors: list[Any] = [httpx.ConnectError("x"), httpx.ReadError("x"), httpx.WriteError("x"), httpx.PoolTimeout("x"),
                         httpx.ProxyError("x"), httpx.UnsupportedProtocol("x"), httpx.DecodingError("x")]
    for error in errors:
        fake.route("GET", "/api/applications", error)
        with make_client(fake, max_retries=0) as client, pytest.raises(ProvisionError):
            client.list_applications()
