"""``provision login``: secret from stdin or a hidden prompt (never argv), verified, then stored."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from orkes_provision.cli import main
from orkes_provision.credentials.settings import PROFILE_KEYRING_SERVICE, list_profiles, resolve_credentials
from orkes_provision.credentials.stores.memory import MemoryKeyring
from orkes_provision.sandbox.harness import SandboxProcess


@dataclass
class Result:
    code: int
    out: str
    err: str


def run(*args: str, stdin: str = "") -> Result:
    """``provision ARGS`` in-process, stdin given, output captured."""
    runner = CliRunner()
    with runner.isolation(input=stdin) as streams:
        try:
            main(list(args))
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        out, err = streams[0].getvalue().decode(), streams[1].getvalue().decode()
    return Result(code, out, err)


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("CONDUCTOR_SERVER_URL", "CONDUCTOR_AUTH_KEY", "CONDUCTOR_AUTH_SECRET", "ORKES_PROVISION_PROFILE",
                 "ORKES_PROVISION_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "config"


def test_login_verifies_the_key_and_stores_the_profile_with_the_secret_only_in_the_keyring(
        server: SandboxProcess, config_home: Path, memory_keyring: MemoryKeyring) -> None:
    secret = server.admin_secret.get_secret_value()
    result = run("login", "--profile", "sb", "--server", server.root_url, "--key-id", server.admin_key_id,
                 stdin=secret + "\n")
    assert result.code == 0, result.err
    assert result.out.strip() == (f"Saved profile 'sb' for {server.url} (key {server.admin_key_id}); the secret is in "
                                  f"the keyring (service orkes-provision, user profile:sb@{server.url}).")
    assert f"Key {server.admin_key_id} is accepted by {server.url}." in result.err
    assert secret not in result.out + result.err
    assert secret not in (config_home / "orkes-provision" / "config.toml").read_text()
    assert memory_keyring.passwords[(PROFILE_KEYRING_SERVICE, f"profile:sb@{server.url}")] == secret
    assert [(p.name, p.server, p.key_id) for p in list_profiles()] == [("sb", server.url, server.admin_key_id)]
    creds = resolve_credentials(server=None, profile="sb")
    assert (creds.key_id, creds.secret.get_secret_value()) == (server.admin_key_id, secret)


def test_login_with_json_prints_the_profile_and_where_the_secret_is(
        server: SandboxProcess, config_home: Path, memory_keyring: MemoryKeyring) -> None:
    result = run("login", "--json", "--server", server.url, "--key-id", server.admin_key_id,
                 stdin=server.admin_secret.get_secret_value())
    assert result.code == 0, result.err
    assert '"profile": "default"' in result.out
    assert '"verified": true' in result.out


def test_a_rejected_key_is_not_stored_and_exits_4_with_a_hint(server: SandboxProcess, config_home: Path,
                                                              memory_keyring: MemoryKeyring) -> None:
    result = run("login", "--server", server.url, "--key-id", server.admin_key_id, stdin="Wrong-Secret-Sentinel\n")
    assert result.code == 4
    assert result.err.splitlines() == [f"error: the server rejected key {server.admin_key_id}",
                                       "hint: check the key id and secret, and that the key is ACTIVE "
                                       "('provision keys list APP')"]
    assert "Wrong-Secret-Sentinel" not in result.out + result.err
    assert list_profiles() == []
    assert memory_keyring.passwords == {}


def test_a_server_that_is_not_a_url_exits_2(config_home: Path, memory_keyring: MemoryKeyring) -> None:
    result = run("login", "--server", "orkes.example.com", "--key-id", "k", stdin="s\n")
    assert result.code == 2
    assert result.err.splitlines()[0] == "error: not a server URL: 'orkes.example.com'"
    assert result.err.splitlines()[1].startswith("hint: write it as https://HOST[:PORT]/api")


def test_plain_http_to_a_remote_host_exits_2_unless_insecure_http(config_home: Path,
                                                                   memory_keyring: MemoryKeyring) -> None:
    refused = run("login", "--server", "http://orkes.internal", "--key-id", "k", stdin="s\n")
    assert refused.code == 2
    assert refused.err.splitlines() == [
        "error: refusing plain http:// to orkes.internal: the key secret and tokens would travel unencrypted",
        "hint: use https://, or pass --insecure-http if this network is trusted"]
    allowed = run("login", "--insecure-http", "--no-verify", "--server", "http://orkes.internal", "--key-id", "k",
                  stdin="s\n")
    assert allowed.code == 0, allowed.err
    assert [p.server for p in list_profiles()] == ["http://orkes.internal/api"]


def test_an_unreachable_server_exits_8(config_home: Path, memory_keyring: MemoryKeyring,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORKES_PROVISION_TIMEOUT", "2")
    result = run("login", "--server", "http://127.0.0.1:9", "--key-id", "k", stdin="s\n")
    assert result.code == 8
    # The retries said what they waited for (once the wait passed a second); then the one error.
    *retries, error, hint = result.err.splitlines()
    assert error.startswith("error: cannot reach http://127.0.0.1:9/api: connection refused")
    assert hint.startswith("hint: ")
    assert all("; retrying in " in line for line in retries)
    assert list_profiles() == []


def test_an_empty_secret_exits_2_and_says_where_the_secret_comes_from(config_home: Path,
                                                                      memory_keyring: MemoryKeyring) -> None:
    result = run("login", "--server", "https://orkes.example.com", "--key-id", "k", stdin="\n")
    assert result.code == 2
    assert result.err.splitlines()[0] == "error: the secret is empty"
    assert "never taken from the command line" in result.err


def test_without_a_key_id_and_no_terminal_login_asks_for_the_flag(config_home: Path) -> None:
    result = run("login", "--server", "https://orkes.example.com", stdin="s\n")
    assert result.code == 2
    assert result.err.splitlines() == ["error: no key id given",
                                       "hint: pass --key-id ID (the secret comes from stdin)"]


def test_without_a_keyring_login_fails_with_a_store_error_and_saves_nothing(config_home: Path) -> None:
    import keyring
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        result = run("login", "--no-verify", "--server", "https://orkes.example.com", "--key-id", "k", stdin="s\n")
    finally:
        keyring.set_keyring(previous)
    assert result.code == 10
    assert result.err.startswith("error: no usable keyring backend")
    assert list_profiles() == []


def test_on_a_terminal_the_secret_comes_from_a_hidden_prompt(config_home: Path, memory_keyring: MemoryKeyring,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from orkes_provision.cli import login_cmd

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    prompts: list[tuple[str, bool]] = []

    def fake_prompt(text: str, hide_input: bool = False, **_: object) -> str:
        prompts.append((text, hide_input))
        return " typed-secret "

    monkeypatch.setattr(login_cmd.sys, "stdin", Terminal())
    monkeypatch.setattr(click, "prompt", fake_prompt)
    assert login_cmd._read_secret(False).get_secret_value() == "typed-secret"
    assert login_cmd._read_secret(True).get_secret_value() == "typed-secret"  # never echoed from a terminal
    assert prompts == [("Key secret", True)] * 2


def test_login_help_has_an_example_and_no_secret_option() -> None:
    result = run("login", "--help")
    assert result.code == 0
    assert "provision login --profile prod --server" in result.out
    assert "--secret-stdin" in result.out
    assert "--secret " not in result.out
    assert "--secret=" not in result.out
