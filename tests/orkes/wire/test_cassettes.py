"""Cassettes: the client replays every recorded conversation offline, and no cassette holds a secret.

The committed cassettes (``cassettes/*.yaml``) are replayed with ``record_mode="none"``: a request
the client sends that is not in the cassette fails the test, and so does a recorded request the
client no longer sends. A fresh recording against the sandbox checks the scrubbing on secrets it
knows, and that the committed cassettes still describe what the client does now.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from orkes_provision.orkes.models import Credentials
from orkes_provision.probe.wire.recorder import Recording, capturing_context
from orkes_provision.probe.wire.recording import (
    ADMIN_KEY_PLACEHOLDER,
    JWT,
    NEUTRAL_ORIGIN,
    SCRUBBED,
    SECRET_FIELDS,
    SECRET_REQUEST_HEADERS,
    SECRET_RESPONSE_HEADERS,
    Exchange,
    Scrubber,
    cassette_files,
    header,
    interactions,
    make_vcr,
    request_body,
    response_body,
)
from orkes_provision.probe.wire.scenarios import SCENARIOS, Scenario
from tests.orkes.wire import CASSETTES, INDEX

REPLAY_ADMIN = Credentials(server=NEUTRAL_ORIGIN + "/api", key_id=ADMIN_KEY_PLACEHOLDER, secret=SecretStr(SCRUBBED))
RERECORD = "re-record them: provision --profile sandbox probe --record cassettes (see docs/reliability.md)"


def committed_index() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(INDEX.read_text())
    return data


def test_every_scenario_has_a_committed_cassette_listed_in_the_index() -> None:
    index = committed_index()
    names = {s.name for s in SCENARIOS if s.portable or index["recordedAgainst"] == "sandbox"}
    assert {p.stem for p in cassette_files(CASSETTES)} == names, RERECORD
    assert set(index["scenarios"]) == names
    for name, entry in index["scenarios"].items():
        assert entry["interactions"] == len(interactions(CASSETTES / f"{name}.yaml")), f"{name}: {RERECORD}"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_the_client_replays_the_recorded_conversation_exactly(scenario: Scenario) -> None:
    path = CASSETTES / f"{scenario.name}.yaml"
    if not path.exists():
        assert not scenario.portable and committed_index()["recordedAgainst"] != "sandbox", RERECORD
        pytest.skip(f"{scenario.name} is recorded against the sandbox only; these cassettes come from a real server")
    sink: list[Exchange] = []
    player = make_vcr(CASSETTES, record_mode="none", scrubber=Scrubber({}))
    with player.use_cassette(scenario.name) as cassette:
        scenario.run(capturing_context(REPLAY_ADMIN, sink))  # its own assertions check the recorded answers
    assert cassette.all_played, f"the client no longer sends every recorded request of {scenario.name}; {RERECORD}"
    assert len(sink) == len(cassette.data)
    assert all(e.path.startswith("/api/") for e in sink)


def _secret_field_values(node: Any) -> list[Any]:
    found: list[Any] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                (found.append(value) if key in SECRET_FIELDS else stack.append(value))
        elif isinstance(item, list):
            stack.extend(item)
    return found


@pytest.mark.parametrize("path", cassette_files(CASSETTES), ids=lambda p: p.stem)
def test_a_committed_cassette_holds_no_token_secret_jwt_or_real_host(path: Path) -> None:
    text = path.read_text()
    assert not JWT.search(text), "a JWT-shaped string"
    for interaction in interactions(path):
        request, response = interaction["request"], interaction["response"]
        assert request["uri"].startswith(NEUTRAL_ORIGIN + "/api/"), "the recording host must be normalised"
        for name in SECRET_REQUEST_HEADERS:
            assert header(request["headers"], name) in ("", SCRUBBED), f"request header {name}"
        for name in SECRET_RESPONSE_HEADERS:
            assert header(response["headers"], name) in ("", SCRUBBED), f"response header {name}"
        for raw in (request_body(interaction), response_body(interaction)):
            try:
                data = json.loads(raw) if raw.strip() else None
            except ValueError:
                continue
            assert all(v in (SCRUBBED, None, "") for v in _secret_field_values(data)), "an unscrubbed secret field"
        if request["uri"].endswith("/api/token"):
            assert json.loads(request_body(interaction))["keySecret"] == SCRUBBED


def test_a_fresh_recording_scrubs_every_token_and_secret_the_run_saw(fresh_recording: Recording) -> None:
    assert fresh_recording.failed == {}
    # The admin secret, a token per client, and the secrets of the keys the scenarios created.
    assert fresh_recording.secrets_checked >= 6
    assert fresh_recording.leaks == []
    assert {p.stem for p in fresh_recording.files} == {s.name for s in SCENARIOS}


def test_the_committed_cassettes_describe_what_the_client_sends_today(fresh_recording: Recording) -> None:
    committed = committed_index()
    if committed["recordedAgainst"] != "sandbox":
        pytest.skip("the committed cassettes come from a real Orkes server; their replay is the check")
    fresh = fresh_recording.index["scenarios"]
    for name, entry in committed["scenarios"].items():
        now = fresh[name]
        assert (entry["operations"], entry["interactions"]) == (now["operations"], now["interactions"]), \
            f"{name} changed since it was recorded: {RERECORD}"
