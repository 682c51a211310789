"""Every request the client sends is an operation of the Orkes OpenAPI document, with a body and query
parameters that document accepts. The only calls outside it are the sandbox's own test hooks; the
document lacks ``/api/roles``, which the checked subset adds as conductor-python calls it."""

from __future__ import annotations

import inspect
import json

import pytest
from pydantic import SecretStr

from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.probe.wire.recorder import Recording, capturing_context
from orkes_provision.probe.wire.recording import (
    ADMIN_KEY_PLACEHOLDER,
    NEUTRAL_ORIGIN,
    SCRUBBED,
    Exchange,
    Scrubber,
    make_vcr,
)
from orkes_provision.probe.wire.scenarios import (
    ENDPOINTS,
    FROM_AN_SDK,
    NOT_ENDPOINTS,
    OUTSIDE_THE_SPEC,
    SCENARIOS,
    WORKER_CALLS,
)
from tests.orkes.wire import CASSETTES, INDEX
from tests.orkes.wire.openapi_check import FULL_DOCUMENT, check, in_full_document
from tests.sandbox.conformance import schemas

REPLAY_ADMIN = Credentials(server=NEUTRAL_ORIGIN + "/api", key_id=ADMIN_KEY_PLACEHOLDER, secret=SecretStr(SCRUBBED))


def replayed_requests() -> list[Exchange]:
    """What the client sends today for every committed cassette (replayed: no server involved)."""
    sink: list[Exchange] = []
    player = make_vcr(CASSETTES, record_mode="none", scrubber=Scrubber({}))
    for scenario in SCENARIOS:
        if (CASSETTES / f"{scenario.name}.yaml").exists():
            with player.use_cassette(scenario.name):
                scenario.run(capturing_context(REPLAY_ADMIN, sink))
    return sink


def test_every_public_client_call_is_listed_and_exercised_by_a_cassette() -> None:
    public = {name for name, _ in inspect.getmembers(OrkesClient) if not name.startswith("_")}
    assert public - NOT_ENDPOINTS == set(ENDPOINTS), "a new OrkesClient method needs a wire scenario (scenarios.py)"
    index = json.loads(INDEX.read_text())
    recorded = {op for entry in index["scenarios"].values() for op in entry["operations"]}
    wanted = set(ENDPOINTS.values())
    if index["recordedAgainst"] != "sandbox":
        wanted -= OUTSIDE_THE_SPEC
    assert wanted <= recorded, f"endpoints without a cassette: {sorted(wanted - recorded)}"


def test_every_request_the_client_sends_matches_the_openapi_document() -> None:
    exchanges = replayed_requests()
    problems = {}
    outside: set[str] = set()
    seen: set[str] = set()
    for exchange in exchanges:
        name, found = check(exchange)
        seen.add(name)
        if schemas.operation(exchange.method, exchange.path) is None:
            outside.add(name)
        if found:
            problems[name] = found
    assert problems == {}
    assert outside == OUTSIDE_THE_SPEC
    assert seen - OUTSIDE_THE_SPEC - WORKER_CALLS == set(ENDPOINTS.values())


def test_live_requests_and_answers_against_the_sandbox_match_the_document(fresh_recording: Recording) -> None:
    checked = 0
    for exchange in fresh_recording.exchanges:
        name, problems = check(exchange)
        assert problems == [], name
        if name not in OUTSIDE_THE_SPEC and exchange.status == 200:
            schemas.validate(schemas.Exchange(exchange.method, exchange.path, exchange.body, exchange.status,
                                              exchange.response_body, exchange.content_type))
            checked += 1
    assert checked > 40


def test_the_checker_flags_requests_the_document_refuses() -> None:
    def exchange(method: str, path: str, body: object = None, query: list[tuple[str, str]] | None = None,
                 token: bool = True) -> Exchange:
        raw = json.dumps(body).encode() if body is not None else b""
        headers = {"content-type": "application/json"} | ({"x-authorization": "t"} if token else {})
        return Exchange(method, path, query or [], headers, raw, 200, b"", "application/json")

    assert check(exchange("POST", "/api/auth/authorization", {"subject": {"type": "USER", "id": "app:x"}}))[1]
    assert check(exchange("GET", "/api/applications", query=[("apps", "true")]))[1]
    assert check(exchange("GET", "/api/metadata/workflow/w", query=[("version", "one")]))[1]
    assert check(exchange("POST", "/api/applications"))[1] == ["the operation requires a body and none was sent"]
    assert check(exchange("GET", "/api/applications", token=False))[1] == ["no X-Authorization header"]
    good = exchange("POST", "/api/auth/authorization", {"subject": {"type": "USER", "id": "app:x"},
                                                        "target": {"type": "TASK_DEF", "id": "t"},
                                                        "access": ["EXECUTE"]})
    assert check(good) == ("POST /api/auth/authorization", [])


@pytest.mark.skipif(not FULL_DOCUMENT.exists(), reason="the full Orkes OpenAPI document is not beside this checkout")
def test_the_trimmed_subset_agrees_with_the_full_document_on_what_is_outside_it() -> None:
    for name in set(ENDPOINTS.values()):
        assert in_full_document(name) is (name not in OUTSIDE_THE_SPEC | FROM_AN_SDK), name
