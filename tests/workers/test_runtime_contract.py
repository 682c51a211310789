"""The runtime contract (tests/fixtures/runtime_contract.toml) against what provision injects and the templates read.

Each language's pinned SDK reads its settings from environment names of its own; the fixture
records them with the line of the SDK's source that reads each. These tests fail when
``provision run`` / ``worker run`` stops injecting a name an SDK reads, when a template pins an
SDK other than the one the contract was read from, or when a template starts reading a Conductor
variable the contract does not list. C# cannot be built on this machine: this is what holds it.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from orkes_provision.workers.identity import WORKER_ID_VARIABLE, assign_worker_id
from orkes_provision.workers.launch import worker_environment
from orkes_provision.workers.scaffold import LANGUAGES, TEMPLATES_DIR
from tests.workers.launch_helpers import FakeKey

CONTRACT_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "runtime_contract.toml"
CONTRACT: dict[str, dict[str, Any]] = tomllib.loads(CONTRACT_FILE.read_text())
SETTINGS = ("server_url", "key_id", "secret", "worker_id", "domain", "poll_interval")
CREDENTIALS = ("server_url", "key_id", "secret")
KEY = FakeKey(server="https://play.example.com", app="greetings-worker", key_id="key-id-1",
              secret=SecretStr("secret-value-1"))
CONDUCTOR_NAME = re.compile(r"\bCONDUCTOR_[A-Z][A-Z0-9_]*[A-Z0-9]\b")


def template_text(language: str) -> str:
    return "\n".join(p.read_text() for p in sorted((TEMPLATES_DIR / language).rglob("*"))
                     if p.is_file() and p.name != "package-lock.json" and p.name != "go.sum")


def test_every_language_of_init_has_a_contract_with_a_citation_for_every_setting() -> None:
    assert sorted(CONTRACT) == sorted(LANGUAGES)
    for language, entry in CONTRACT.items():
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", entry["repository"]), language
        assert entry["tag"] and entry["version"] and entry["sdk"], language
        for setting in SETTINGS:
            cited = entry[setting]
            assert re.fullmatch(r"[\w./@-]+\.\w+:\d+", cited["source"]), (language, setting)
            assert cited["quote"], (language, setting)
            # Where the SDK reads nothing from the environment, the contract says what the template does instead.
            assert cited["env"] or cited.get("code") or cited.get("note"), (language, setting)


@pytest.mark.parametrize("language", LANGUAGES)
def test_provision_injects_exactly_the_server_key_and_secret_names_the_sdk_reads(language: str) -> None:
    env = worker_environment({}, KEY, runtime=language)
    injected = {name for name in env if name.startswith("CONDUCTOR_")}
    read = {CONTRACT[language][setting]["env"] for setting in CREDENTIALS}
    assert injected == read
    assert env[CONTRACT[language]["server_url"]["env"]] == "https://play.example.com/api"
    assert env[CONTRACT[language]["key_id"]["env"]] == "key-id-1"
    assert env[CONTRACT[language]["secret"]["env"]] == "secret-value-1"


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_process_gets_its_worker_id_under_the_name_its_sdk_or_its_template_reads(language: str) -> None:
    env: dict[str, str] = {}
    assert assign_worker_id(env, "host-1a2b3c4d-r0-1") == "host-1a2b3c4d-r0-1"
    worker_id = CONTRACT[language]["worker_id"]
    if worker_id["env"]:
        assert env[worker_id["env"]] == "host-1a2b3c4d-r0-1"
    else:
        # The SDK reads no variable: the template's own code passes this one to it.
        assert worker_id["code"] == WORKER_ID_VARIABLE
        assert env[WORKER_ID_VARIABLE] == "host-1a2b3c4d-r0-1"
        assert WORKER_ID_VARIABLE in template_text(language)


def pinned_version(language: str) -> str:
    directory = TEMPLATES_DIR / language
    text = (directory / CONTRACT[language]["pinned_in"]).read_text()
    patterns = {
        "python": r"^conductor-python==(\S+)$",
        "java": r"<artifactId>conductor-client</artifactId>\s*<version>([^<]+)</version>",
        "go": r"github\.com/conductor-sdk/conductor-go (v[\d.]+)",
        "javascript": r'"@io-orkes/conductor-javascript": "([^"]+)"',
        "csharp": r'Include="conductor-csharp" Version="([^"]+)"',
    }
    found = re.search(patterns[language], text, flags=re.M)
    assert found is not None, f"{language}: no pinned SDK in {CONTRACT[language]['pinned_in']}"
    return found.group(1)


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_template_pins_the_sdk_version_the_contract_was_read_from(language: str) -> None:
    assert pinned_version(language) == CONTRACT[language]["version"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_templates_read_no_conductor_variable_the_contract_does_not_list(language: str) -> None:
    listed = {CONTRACT[language][s]["env"] for s in SETTINGS} - {""}
    # CONDUCTOR_LOG_LEVEL: a commented example of a worker's own env in the Python project file.
    used = set(CONDUCTOR_NAME.findall(template_text(language))) - {"CONDUCTOR_LOG_LEVEL"}
    assert used <= listed, used - listed


def cited_line(root: Path, source: str, strip: str = "") -> str:
    path, line = source.rsplit(":", 1)
    lines = (root / path.removeprefix(strip)).read_text().splitlines()
    return lines[int(line) - 1]


def test_python_citations_match_the_installed_sdk() -> None:
    import conductor

    root = Path(conductor.__file__).resolve().parent  # the repository's src/conductor
    for setting in SETTINGS:
        cited = CONTRACT["python"][setting]
        assert cited["quote"] in cited_line(root, cited["source"], "src/conductor/"), setting


def go_sdk_source() -> Path | None:
    from tests.workers.runtimes.caches import cache_root

    version = CONTRACT["go"]["version"]
    roots = sorted(cache_root().glob("go-*/gomod"))
    try:
        found = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, timeout=30).stdout.strip()
        roots.append(Path(found))
    except (OSError, subprocess.SubprocessError):
        pass
    for root in roots:
        candidate = root / f"github.com/conductor-sdk/conductor-go@{version}"
        if candidate.is_dir():
            return candidate
    return None


def test_go_citations_match_the_sdk_in_the_module_cache() -> None:
    root = go_sdk_source()
    if root is None:
        pytest.skip("conductor-go is in no module cache here (the Go runtime test fetches it)")
    for setting in SETTINGS:
        cited = CONTRACT["go"][setting]
        assert cited["quote"] in cited_line(root, cited["source"]), setting
