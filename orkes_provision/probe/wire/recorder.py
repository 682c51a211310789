"""Record the wire scenarios into cassettes, then check the files for every secret the run saw.

``record(admin, directory, against=...)`` is what ``provision probe --record`` and the recording
test run. It records each scenario into ``<directory>/<scenario>.yaml`` (scrubbed before writing,
see ``recording``), writes ``index.json`` (what each cassette covers), and then reads every file
back looking for the tokens and secrets that crossed the wire during this very run (it knows them:
``CaptureTransport`` kept them in memory) and for anything shaped like a JWT. A leak is reported,
never printed.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from orkes_provision import __version__
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.probe.wire.recording import (
    ADMIN_KEY_PLACEHOLDER,
    JWT,
    CaptureTransport,
    Exchange,
    Scrubber,
    make_vcr,
    secrets_seen,
)
from orkes_provision.probe.wire.scenarios import SCENARIOS, Scenario, WireContext, fast_policy


@dataclass
class Recording:
    directory: Path
    against: str
    exchanges: list[Exchange] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    secrets_checked: int = 0
    leaks: list[str] = field(default_factory=list)  # "file: what", never the secret itself
    index: dict[str, Any] = field(default_factory=dict)


@functools.cache
def _templates() -> list[tuple[re.Pattern[str], str, str]]:
    """(regex, method, template) of every operation of the Orkes document, literal templates first."""
    # The sandbox ships the document's operation list; reading it needs no sandbox dependency.
    data = json.loads(resources.files("orkes_provision.sandbox").joinpath("orkes_api.json").read_text())
    ops = sorted(data["operations"], key=lambda o: str(o["path"]).count("{"))
    return [(re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(o["path"])) + "$"), o["method"], o["path"])
            for o in ops]


def operation_of(method: str, path: str) -> str:
    """``METHOD /api/template`` for a request path as sent (percent-encoded); the literal path when unknown."""
    found = next((t for regex, m, t in _templates() if m == method.upper() and regex.match(path)), None)
    return f"{method.upper()} {found or path}"


def capturing_context(admin: Credentials, sink: list[Exchange]) -> WireContext:
    def make_client(credentials: Credentials, cls: type[OrkesClient] = OrkesClient) -> OrkesClient:
        return cls(credentials, timeout=30.0, transport=CaptureTransport(sink=sink),
                           retry_policy=fast_policy(), sleep=lambda seconds: None)

    return WireContext(admin=admin, make_client=make_client,
                       make_http=lambda: httpx.Client(timeout=30.0, transport=CaptureTransport(sink=sink)))


def record(admin: Credentials, directory: Path, *, against: str,
           scenarios: tuple[Scenario, ...] = SCENARIOS) -> Recording:
    """Record ``scenarios`` (only the portable ones unless ``against == "sandbox"``) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    chosen = [s for s in scenarios if s.portable or against == "sandbox"]
    result = Recording(directory=directory, against=against)
    scrubber = Scrubber({admin.key_id: ADMIN_KEY_PLACEHOLDER})
    recorder = make_vcr(directory, record_mode="all", scrubber=scrubber)
    covered: dict[str, Any] = {}
    for scenario in chosen:
        path = directory / f"{scenario.name}.yaml"
        path.unlink(missing_ok=True)
        sink: list[Exchange] = []
        try:
            with recorder.use_cassette(scenario.name):
                scenario.run(capturing_context(admin, sink))
        except Exception as err:  # reported per scenario: one server quirk should not stop the rest
            result.failed[scenario.name] = f"{type(err).__name__}: {err}"
        result.exchanges.extend(sink)
        if path.exists():
            result.files.append(path)
            covered[scenario.name] = {
                "portable": scenario.portable, "interactions": len(sink),
                "operations": sorted({operation_of(e.method, e.path) for e in sink})}
    # Recording some scenarios (--only) keeps what the index says of the others recorded against the same server.
    kept = {name: entry for name, entry in _previous_index(directory, against).items()
            if name not in {s.name for s in chosen} and name in {s.name for s in SCENARIOS}}
    result.index = {"recordedAgainst": against, "client": f"orkes-provision {__version__}",
                    "scenarios": dict(sorted({**kept, **covered}.items()))}
    (directory / "index.json").write_text(json.dumps(result.index, indent=2, sort_keys=True) + "\n")
    known = secrets_seen(result.exchanges) | {admin.secret.get_secret_value()}
    result.secrets_checked = len(known)
    result.leaks = find_leaks([*result.files, directory / "index.json"], known)
    return result


def _previous_index(directory: Path, against: str) -> dict[str, Any]:
    try:
        previous = json.loads((directory / "index.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(previous, dict) or previous.get("recordedAgainst") != against:
        return {}
    scenarios = previous.get("scenarios")
    return scenarios if isinstance(scenarios, dict) else {}


def find_leaks(files: list[Path], secrets: set[str]) -> list[str]:
    """``file: what leaked`` for every file holding one of ``secrets`` or a JWT (the value is never returned)."""
    leaks: list[str] = []
    for path in files:
        text = path.read_text(errors="replace")
        for number, secret in enumerate(sorted(secrets)):
            if secret and secret in text:
                leaks.append(f"{path.name}: secret #{number} of this run ({len(secret)} characters)")
        if JWT.search(text):
            leaks.append(f"{path.name}: a JWT-shaped string")
    return leaks
