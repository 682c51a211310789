"""Fuzzing (hypothesis) the files users and this tool write by hand or by machine.

- The env-file store: any key id and secret either reads back exactly the same through
  python-dotenv and through ``bash -c 'set -a; source FILE'`` (and through the store itself, which
  strips surrounding whitespace on purpose), or is refused with a one-line ``StoreError`` before the
  file changes. Arbitrary existing content never makes ``load`` fail with anything but ``StoreError``.
- Environment files (``apply -f``), their workflow JSON files, project files
  (``orkes-provision.toml``) and the config file: mutations of a valid file, random bytes, deep
  nesting: each loads, or fails with a one-line ``ConfigError`` naming the file; never another exception.
- The CLI turns such a file into ``error:``/``hint:`` lines and exit 3, never a traceback.

Inputs tried are counted (``tally``) and printed at the end of the test run.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from dotenv import dotenv_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from orkes_provision.credentials.settings import Config, Profile, load_config, render_config
from orkes_provision.credentials.stores.base import StoredKey
from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.environments.environment import load_environment
from orkes_provision.errors import ConfigError, StoreError
from orkes_provision.workers.project import load_project
from tests.cli import provision
from tests.reliability.tally import count

SERVER = "http://127.0.0.1:8080/api"
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Characters that mean something to bash, python-dotenv, docker or TOML, and some that only look harmless.
SPECIAL = ["$", "${HOME}", "$(id)", "'", '"', "\\", "\\n", "\n", "\r", "\t", " ", "#", "=", ";", "`", "!", "*",
           "~", "&", "|", "<", ">", "(", ")", "{", "}", "[", "]", "\x00", "\x07", "\x1b", "\x7f", "\x85",
           "\u2028", "\u2029", "\u00a0", "\u200b", "\ufeff", "é", "ü", "€", "😀", "export ", "CONDUCTOR_AUTH_KEY="]
VALUES = st.lists(st.one_of(st.sampled_from(SPECIAL), st.text(max_size=6)), max_size=8).map("".join)


def bash_reads(path: Path) -> tuple[str, str]:
    script = f'set -a; source "{path}"; printf "%s\\0%s" "$CONDUCTOR_AUTH_KEY" "$CONDUCTOR_AUTH_SECRET"'
    out = subprocess.run(["bash", "--noprofile", "--norc", "-c", script], capture_output=True, timeout=30,
                         env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent"}, check=True)
    key, _, secret = out.stdout.decode("utf-8", "surrogateescape").partition("\0")
    return key, secret


@FUZZ
@given(key_id=VALUES, secret=VALUES)
def test_a_value_reads_back_identically_in_bash_dotenv_and_the_store_or_is_refused(
        tmp_path: Path, key_id: str, secret: str) -> None:
    path = tmp_path / "w.env"
    path.write_text("# a file the user keeps\nOTHER=kept\n")
    before = path.read_bytes()
    store = EnvFileStore(path)
    try:
        store.save(StoredKey(server=SERVER, app="fuzz-app", key_id=key_id, secret=SecretStr(secret)))
    except StoreError as err:
        count("env-file values refused (StoreError, file unchanged)")
        assert "\n" not in err.message and "\n" not in err.hint
        assert len(secret) < 4 or secret not in err.message, "the refusal does not quote the secret"
        assert path.read_bytes() == before
        return
    count("env-file values written and read back by bash, python-dotenv and the store")
    values = dotenv_values(path)
    assert (values["CONDUCTOR_AUTH_KEY"], values["CONDUCTOR_AUTH_SECRET"]) == (key_id, secret)
    assert values["OTHER"] == "kept"
    assert bash_reads(path) == (key_id, secret)
    loaded = store.load(SERVER, "fuzz-app")
    if key_id.strip() and secret.strip():
        assert loaded is not None
        # The store strips surrounding whitespace on purpose (a pasted newline breaks authentication).
        assert (loaded.key_id, loaded.secret.get_secret_value()) == (key_id.strip(), secret.strip())
    else:
        assert loaded is None


@FUZZ
@given(raw=st.one_of(st.binary(max_size=300), VALUES.map(lambda s: s.encode("utf-8", "surrogatepass"))))
def test_any_existing_env_file_content_loads_or_is_a_store_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "w.env"
    path.write_bytes(raw)
    store = EnvFileStore(path)
    count("env files of arbitrary content loaded")
    try:
        store.load(SERVER, "fuzz-app")
    except StoreError as err:
        assert "\n" not in err.message
        return
    try:
        store.save(StoredKey(server=SERVER, app="fuzz-app", key_id="key-1", secret=SecretStr("Secret-1")))
    except StoreError as err:
        assert "\n" not in err.message
        return
    found = store.load(SERVER, "fuzz-app")
    assert found is not None and (found.key_id, found.secret.get_secret_value()) == ("key-1", "Secret-1")


# ----------------------------------------------------------------------------------------- TOML files

VALID_ENVIRONMENT = """name = "staging"
server = "http://127.0.0.1:8080/api"

[[tasks]]
name = "greetings"
timeoutSeconds = 120
responseTimeoutSeconds = 60
retryCount = 2

[[workflows]]
file = "flow.json"

[[applications]]
name = "greetings-worker"
roles = ["WORKER"]
store = "env-file:secrets/greetings.env"

[[applications.grants]]
tasks = ["greetings"]
workflows = ["greet_flow"]
access = ["EXECUTE", "READ"]

[[applications.grants]]
tags = ["team:payments"]
domains = ["blue"]

[[applications]]
name = "starter"
roles = []
"""
VALID_WORKFLOW = {"name": "greet_flow", "version": 1, "timeoutSeconds": 60,
                  "tasks": [{"name": "greetings", "taskReferenceName": "greet", "type": "SIMPLE"}]}
VALID_PROJECT = """server = "http://127.0.0.1:8080/api"

[application]
name = "greetings-app"
roles = ["WORKER"]
grants = ["greetings"]
store = "env-file:worker.env"

[[workers]]
name = "greetings"
runtime = "python"
command = ["python3", "main.py"]
cwd = "."
env = { LOG_LEVEL = "INFO" }
replicas = 2
restart = "on-failure"
tasks = ["greetings"]
"""
TOKENS = ['"', "'", "[", "]", "[[", "]]", "=", "\n", ",", "{", "}", ".", "#", "\\", '"""', "'''", "true", "-1",
          "0", "1e999", "nan", "inf", "0x10", "1979-05-27", "99999999999999999999", '""', "[]", "{}", "name",
          "applications", "grants", "tasks", "workers", "access", "roles", "store", "command", "env", "replicas",
          "env-file:", "keyring", "EXECUTE", "EXECUT", "WORKER", "CONDUCTOR_AUTH_SECRET", "\x00", "\t", " ", "é",
          "\u2028", "\x7f"]


@st.composite
def mutated(draw: st.DrawFn, text: str) -> bytes:
    """``text`` after 1-4 edits: cut a span, insert TOML tokens, repeat or drop a line, or raw bytes."""
    data = text.encode()
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["cut", "insert", "line", "bytes", "truncate"]))
        at = draw(st.integers(0, len(data)))
        if kind == "cut":
            data = data[:at] + data[at + draw(st.integers(1, 30)):]
        elif kind == "insert":
            piece = "".join(draw(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=4)))
            data = data[:at] + piece.encode() + data[at:]
        elif kind == "line":
            lines = data.split(b"\n")
            index = draw(st.integers(0, len(lines) - 1))
            lines[index:index + 1] = [] if draw(st.booleans()) else [lines[index]] * 2
            data = b"\n".join(lines)
        elif kind == "bytes":
            data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
        else:
            data = data[:at]
    return data


def assert_one_line_config_error(err: ConfigError, shown: str) -> None:
    assert err.message.startswith(f"{shown}:"), err.message  # env.toml:4: or env.toml: 3 problems
    assert "\n" not in err.message and "\n" not in err.hint
    assert "Traceback" not in err.message


def test_the_valid_files_the_fuzzers_start_from_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("flow.json").write_text(json.dumps(VALID_WORKFLOW))
    Path("env.toml").write_text(VALID_ENVIRONMENT)
    Path("orkes-provision.toml").write_text(VALID_PROJECT)
    env = load_environment("env.toml")
    assert [a.name for a in env.applications] == ["greetings-worker", "starter"]
    project = load_project(Path("orkes-provision.toml"))
    assert project is not None and project.workers[0].replicas == 2


@FUZZ
@given(raw=st.one_of(mutated(VALID_ENVIRONMENT), st.binary(max_size=200)))
def test_a_malformed_environment_file_is_a_one_line_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 raw: bytes) -> None:
    monkeypatch.chdir(tmp_path)
    Path("flow.json").write_text(json.dumps(VALID_WORKFLOW))
    Path("env.toml").write_bytes(raw)
    count("malformed environment files")
    try:
        load_environment("env.toml")
    except ConfigError as err:
        assert_one_line_config_error(err, "env.toml")


JSON_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                     st.text(max_size=10)),
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.sampled_from(
                                                       ["name", "version", "tasks", "taskReferenceName", "type",
                                                        "timeoutSeconds", "x"]), inner, max_size=5)),
                           max_leaves=12)


@FUZZ
@given(content=st.one_of(st.binary(max_size=200), JSON_VALUES.map(lambda v: json.dumps(v).encode()),
                         mutated(json.dumps(VALID_WORKFLOW))))
def test_a_malformed_workflow_file_is_a_one_line_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              content: bytes) -> None:
    monkeypatch.chdir(tmp_path)
    Path("flow.json").write_bytes(content)
    Path("env.toml").write_text(VALID_ENVIRONMENT)
    count("malformed workflow files")
    try:
        load_environment("env.toml")
    except ConfigError as err:
        assert_one_line_config_error(err, "env.toml")


@FUZZ
@given(raw=st.one_of(mutated(VALID_PROJECT), st.binary(max_size=200)))
def test_a_malformed_project_file_is_a_one_line_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             raw: bytes) -> None:
    monkeypatch.chdir(tmp_path)
    Path("orkes-provision.toml").write_bytes(raw)
    count("malformed project files")
    try:
        load_project(Path("orkes-provision.toml"))
    except ConfigError as err:
        assert_one_line_config_error(err, "orkes-provision.toml")


CONFIG_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)


@FUZZ
@given(name=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,10}", fullmatch=True), key_id=CONFIG_TEXT,
       store=st.one_of(st.none(), CONFIG_TEXT), mutate=st.one_of(st.none(), st.data()))
def test_the_config_file_round_trips_and_a_broken_one_is_a_config_error(tmp_path: Path, name: str, key_id: str,
                                                                        store: str | None,
                                                                        mutate: st.DataObject | None) -> None:
    config = Config(default_profile=name, default_store=store,
                    profiles={name: Profile(name=name, server=SERVER, key_id=key_id)})
    path = tmp_path / "config.toml"
    text = render_config(config)
    if mutate is None:
        path.write_text(text)
        count("config files written and read back")
        loaded = load_config(path)
        assert (loaded.default_profile, loaded.default_store) == (name, store)
        assert (loaded.profiles[name].server, loaded.profiles[name].key_id) == (SERVER, key_id)
        return
    path.write_bytes(mutate.draw(mutated(text)))
    count("malformed config files")
    try:
        load_config(path)
    except ConfigError as err:
        assert err.message.startswith(str(path)) and "\n" not in err.message, err.message


@pytest.mark.parametrize("depth", [50, 5000])
def test_deeply_nested_files_are_config_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, depth: int) -> None:
    monkeypatch.chdir(tmp_path)
    nested = "x = " + "[" * depth + "]" * depth + "\n"
    for name, load in (("env.toml", lambda: load_environment("env.toml")),
                       ("orkes-provision.toml", lambda: load_project(Path("orkes-provision.toml"))),
                       ("config.toml", lambda: load_config(Path("config.toml")))):
        Path(name).write_text(nested)
        count("deeply nested files")
        try:
            load()
        except ConfigError as err:
            assert "\n" not in err.message
            assert depth == 50 or "nested too deeply" in err.message


@pytest.mark.parametrize(("args", "file", "content"), [
    (["plan", "-f", "env.toml"], "env.toml", 'name = "x"\n[[applications]]\nname = "a"\nroles = ["WORKR"]\n'),
    (["apply", "-f", "env.toml", "--auto-approve"], "env.toml", "x = " + "[" * 3000 + "]" * 3000 + "\n"),
    (["worker", "list"], "orkes-provision.toml", "[application\nname = 1\n"),
    (["worker", "list"], "orkes-provision.toml", "x = " + "[" * 3000 + "]" * 3000 + "\n"),
    (["doctor", "some-app"], "config.toml", "default_profile = [\n"),
], ids=["bad-role", "deep-environment", "broken-project", "deep-project", "broken-config"])
def test_the_cli_reports_a_malformed_file_in_two_lines_and_exit_3(tmp_path: Path, args: list[str], file: str,
                                                                  content: str) -> None:
    (tmp_path / file).write_text(content)
    env = {"ORKES_PROVISION_CONFIG": str(tmp_path / "config.toml"), "CONDUCTOR_SERVER_URL": "http://127.0.0.1:9/api"}
    result = provision(args, cwd=tmp_path, env=env)
    count("malformed files given to the CLI")
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["error", "hint"], result.stderr
