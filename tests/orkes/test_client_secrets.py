"""No secret or token ever reaches an exception, a repr or a log record, even at DEBUG."""

from __future__ import annotations

import logging

import httpx
import pytest
from pydantic import SecretStr

from orkes_provision.errors import ProvisionError
from tests.orkes.helpers import KEY_ID, SECRET, FakeOrkes, error_body, make_client

OTHER_SECRET = "Other-Sentinel-77c1"
KEY_SECRET = "Created-Key-Sentinel-9d2e"


def _echo_secrets(request: httpx.Request) -> httpx.Response:
    # A hostile or buggy server that quotes what it was sent.
    return error_body(400, f"rejected {request.content.decode()}", validationErrors=[
        {"path": "keySecret", "message": f"bad value {SECRET}", "invalidValue": SECRET}])


def test_secrets_tokens_and_new_key_secrets_stay_out_of_errors_reprs_and_debug_logs(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeOrkes()
    fake.route("POST", "/api/applications/a1/accessKeys", httpx.Response(200, json={"id": "k9", "secret": KEY_SECRET}))
    fake.route("POST", "/api/applications", _echo_secrets)
    fake.route("GET", "/api/applications", httpx.ReadError(f"reset while sending {SECRET}"))
    fake.route("DELETE", "/api/applications/a1/accessKeys/k9", error_body(500, f"boom {KEY_SECRET}"))
    texts: list[str] = []
    with make_client(fake, max_retries=1) as client:
        created = client.create_key("a1")
        texts += [repr(created), str(created), repr(client)]
        for call in (lambda: client.create_application("x"), client.list_applications,
                     lambda: client.delete_key("a1", "k9")):
            with pytest.raises(ProvisionError) as caught:
                call()
            texts += [caught.value.message, caught.value.hint, str(caught.value), repr(caught.value)]
        fake.route("POST", "/api/token", httpx.Response(401, json={"message": f"bad secret {OTHER_SECRET}"}))
        with pytest.raises(ProvisionError) as caught:
            client.exchange_token("other", SecretStr(OTHER_SECRET))
        texts += [caught.value.message, caught.value.hint]
    texts.append(caplog.text)
    everything = "\n".join(texts)
    for secret in (SECRET, OTHER_SECRET, KEY_SECRET, *fake.tokens):
        assert secret not in everything
    assert KEY_ID in repr(client)
    # The request log lines exist: method, path, status (and duration).
    assert "POST /api/applications -> 400" in caplog.text
    assert "POST /api/token -> 200" in caplog.text


def test_request_logs_are_info_lines_on_the_orkes_provision_http_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="orkes_provision.http")
    fake = FakeOrkes()
    fake.route("GET", "/api/applications", httpx.Response(200, json=[]))
    with make_client(fake) as client:
        client.list_applications()
    records = [r for r in caplog.records if r.name == "orkes_provision.http"]
    lines = [r.getMessage().split(" (")[0] for r in records]
    assert lines == ["POST /api/token -> 200", "GET /api/applications -> 200"]
