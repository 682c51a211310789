"""Server URL normalisation, where credentials come from (and in which order), and profiles."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from orkes_provision.credentials.settings import (
    PROFILE_KEYRING_SERVICE,
    Settings,
    delete_profile,
    list_profiles,
    load_config,
    normalize_server_url,
    resolve_credentials,
    save_profile,
)
from orkes_provision.credentials.stores.memory import MemoryKeyring
from orkes_provision.errors import ConfigError, NotFound, UsageError
from orkes_provision.orkes.models import Credentials
from tests.credentials.stores.conftest import memory_keyring

__all__ = ["memory_keyring"]

PROD = "https://prod.example.com/api"
SECRET = "Settings-Secret-0e9b"


@pytest.mark.parametrize(("given", "expected"), [
    ("https://acme.orkesconductor.io", "https://acme.orkesconductor.io/api"),
    ("https://acme.orkesconductor.io/", "https://acme.orkesconductor.io/api"),
    ("https://acme.orkesconductor.io/api", "https://acme.orkesconductor.io/api"),
    ("https://acme.orkesconductor.io/api/", "https://acme.orkesconductor.io/api"),
    ("https://acme.orkesconductor.io/api//", "https://acme.orkesconductor.io/api"),
    ("  HTTPS://Acme.Example.COM:8443/API-less/  ", "https://acme.example.com:8443/API-less/api"),
    ("https://host/prefix/api?x=1#frag", "https://host/prefix/api"),
    ("http://localhost:8080", "http://localhost:8080/api"),
    ("http://127.0.0.1:8080/api", "http://127.0.0.1:8080/api"),
    ("http://127.5.6.7", "http://127.5.6.7/api"),
    ("http://[::1]:8080/", "http://[::1]:8080/api"),
])  # *.localhost: tests/orkes/test_localhost_names.py (it depends on what the name resolves to)
def test_server_urls_are_normalised_to_end_in_api(given: str, expected: str) -> None:
    assert normalize_server_url(given) == expected


@pytest.mark.parametrize(("given", "message"), [
    ("", "the server URL is empty"),
    ("acme.orkesconductor.io", "not a server URL: 'acme.orkesconductor.io'"),
    ("ftp://acme.example.com", "not a server URL: 'ftp://acme.example.com'"),
    ("https://", "not a server URL: 'https://'"),
    ("https://host:99999", "not a server URL: 'https://host:99999' (bad port)"),
    ("localhost:8080", "not a server URL: 'localhost:8080'"),
])
def test_what_is_not_a_url_is_a_usage_error_with_an_example(given: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        normalize_server_url(given)
    assert caught.value.message == message
    assert "https://" in caught.value.hint
    assert caught.value.exit_code == 2


def test_credentials_in_the_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(UsageError) as caught:
        normalize_server_url("https://user:hunter2@host/api")
    assert "hunter2" not in caught.value.message + caught.value.hint


def test_plain_http_to_a_remote_host_is_refused_unless_insecure_http() -> None:
    with pytest.raises(UsageError) as caught:
        normalize_server_url("http://orkes.internal:8080")
    assert caught.value.message == ("refusing plain http:// to orkes.internal: the key secret and tokens would "
                                    "travel unencrypted")
    assert "--insecure-http" in caught.value.hint
    assert normalize_server_url("http://orkes.internal:8080", insecure_http=True) == "http://orkes.internal:8080/api"


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """An environment whose config and data directories are private to the test."""
    return {"XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data"),
            "HOME": str(tmp_path)}


def _profile(env: dict[str, str], name: str = "default", server: str = PROD, key_id: str = "prof-key") -> None:
    save_profile(name, server, key_id, SecretStr(f" {SECRET}\n"), env=env)


def test_the_environment_supplies_credentials_stripped_of_whitespace(home: dict[str, str]) -> None:
    env = {**home, "CONDUCTOR_SERVER_URL": "https://env.example.com", "CONDUCTOR_AUTH_KEY": " env-key\n",
           "CONDUCTOR_AUTH_SECRET": f"{SECRET}\n"}
    assert resolve_credentials(server=None, profile=None, env=env) == Credentials(
        server="https://env.example.com/api", key_id="env-key", secret=SecretStr(SECRET))


def test_the_server_flag_never_sends_the_environment_key_to_another_server(home: dict[str, str]) -> None:
    env = {**home, "CONDUCTOR_SERVER_URL": "https://env.example.com", "CONDUCTOR_AUTH_KEY": "k",
           "CONDUCTOR_AUTH_SECRET": "s"}
    with pytest.raises(ConfigError) as refused:
        resolve_credentials(server="https://flag.example.com", profile=None, env=env)
    assert "https://env.example.com/api" in refused.value.message
    assert "https://flag.example.com/api" in refused.value.message
    assert resolve_credentials(server="https://env.example.com/api", profile=None, env=env).key_id == "k"
    without_url = {k: v for k, v in env.items() if k != "CONDUCTOR_SERVER_URL"}
    assert resolve_credentials(server="https://flag.example.com", profile=None, env=without_url).server == \
        "https://flag.example.com/api"


@pytest.mark.parametrize(("present", "missing"), [("CONDUCTOR_AUTH_KEY", "CONDUCTOR_AUTH_SECRET"),
                                                  ("CONDUCTOR_AUTH_SECRET", "CONDUCTOR_AUTH_KEY")])
def test_half_a_key_in_the_environment_names_the_missing_variable(home: dict[str, str], present: str,
                                                                  missing: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_credentials(server=PROD, profile=None, env={**home, present: "x"})
    assert caught.value.message == f"{present} is set but {missing} is not"
    assert caught.value.hint == f"set {missing} too, or unset {present}"


def test_a_key_in_the_environment_without_any_server_asks_for_conductor_server_url(home: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_credentials(server=None, profile=None,
                            env={**home, "CONDUCTOR_AUTH_KEY": "k", "CONDUCTOR_AUTH_SECRET": "s"})
    assert "CONDUCTOR_SERVER_URL" in caught.value.hint


def test_nothing_configured_is_a_config_error_saying_exactly_what_to_set(home: dict[str, str],
                                                                          memory_keyring: MemoryKeyring) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_credentials(server=None, profile=None, env=home)
    assert caught.value.message.startswith("no credentials: CONDUCTOR_AUTH_KEY and CONDUCTOR_AUTH_SECRET are not set")
    assert caught.value.hint == ("set CONDUCTOR_SERVER_URL, CONDUCTOR_AUTH_KEY and CONDUCTOR_AUTH_SECRET, "
                                 "run 'provision login', or use --profile sandbox")
    assert caught.value.exit_code == 3


def test_without_environment_keys_the_default_profile_is_used_with_its_secret_from_the_keyring(
        home: dict[str, str], memory_keyring: MemoryKeyring) -> None:
    _profile(home)
    creds = resolve_credentials(server=None, profile=None, env=home)
    assert creds == Credentials(server=PROD, key_id="prof-key", secret=SecretStr(SECRET))
    assert memory_keyring.passwords == {(PROFILE_KEYRING_SERVICE, f"profile:default@{PROD}"): SECRET}


def test_environment_keys_beat_the_default_profile(home: dict[str, str], memory_keyring: MemoryKeyring) -> None:
    _profile(home)
    env = {**home, "CONDUCTOR_SERVER_URL": "https://env.example.com", "CONDUCTOR_AUTH_KEY": "env-key",
           "CONDUCTOR_AUTH_SECRET": "env-secret"}
    assert resolve_credentials(server=None, profile=None, env=env).key_id == "env-key"


def test_an_explicit_profile_flag_beats_environment_keys(home: dict[str, str], memory_keyring: MemoryKeyring) -> None:
    _profile(home, "prod")
    env = {**home, "CONDUCTOR_SERVER_URL": "https://env.example.com", "CONDUCTOR_AUTH_KEY": "env-key",
           "CONDUCTOR_AUTH_SECRET": "env-secret"}
    assert resolve_credentials(server=None, profile="prod", env=env).key_id == "prof-key"


def test_orkes_provision_profile_picks_the_profile(home: dict[str, str], memory_keyring: MemoryKeyring) -> None:
    _profile(home, "prod")
    _profile(home, "stage", "https://stage.example.com", "stage-key")
    assert resolve_credentials(server=None, profile=None,
                               env={**home, "ORKES_PROVISION_PROFILE": "stage"}).key_id == "stage-key"


def test_the_server_flag_picks_the_profile_stored_for_that_server(home: dict[str, str],
                                                                  memory_keyring: MemoryKeyring) -> None:
    _profile(home, "default")
    _profile(home, "stage", "https://stage.example.com", "stage-key")
    assert resolve_credentials(server="https://stage.example.com/", profile=None, env=home).key_id == "stage-key"


def test_a_profiles_key_is_never_sent_to_another_server(home: dict[str, str], memory_keyring: MemoryKeyring) -> None:
    _profile(home, "prod")
    with pytest.raises(ConfigError) as caught:
        resolve_credentials(server="https://evil.example.com", profile="prod", env=home)
    assert caught.value.message == f"profile 'prod' is for {PROD}, not https://evil.example.com/api"


def test_an_unknown_explicit_profile_lists_the_known_ones(home: dict[str, str], memory_keyring: MemoryKeyring) -> None:
    _profile(home, "prod")
    with pytest.raises(ConfigError) as caught:
        resolve_credentials(server=None, profile="prdo", env=home)
    assert "(profiles: prod)" in caught.value.message
    assert "provision login --profile prdo" in caught.value.hint


def test_a_profile_whose_secret_left_the_keyring_says_to_log_in_again(home: dict[str, str],
                                                                       memory_keyring: MemoryKeyring) -> None:
    _profile(home, "prod")
    memory_keyring.passwords.clear()
    with pytest.raises(ConfigError) as caught:
        resolve_credentials(server=None, profile="prod", env=home)
    assert caught.value.hint == "run 'provision login --profile prod' again"


def test_profile_sandbox_reads_the_sandbox_admin_env_with_no_set_up(home: dict[str, str],
                                                                      memory_keyring: MemoryKeyring) -> None:
    data = Path(home["XDG_DATA_HOME"]) / "orkes-provision" / "sandbox"
    data.mkdir(parents=True)
    (data / "admin.env").write_text("CONDUCTOR_SERVER_URL='http://127.0.0.1:8080/api'\n"
                                    "CONDUCTOR_AUTH_KEY='sandbox-key'\nCONDUCTOR_AUTH_SECRET='sandbox-secret'\n")
    env = {**home, "CONDUCTOR_AUTH_KEY": "env-key", "CONDUCTOR_AUTH_SECRET": "env-secret"}
    assert resolve_credentials(server=None, profile="sandbox", env=env) == Credentials(
        server="http://127.0.0.1:8080/api", key_id="sandbox-key", secret=SecretStr("sandbox-secret"))


def test_profile_sandbox_before_the_sandbox_ever_ran_says_to_start_it(home: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_credentials(server=None, profile="sandbox", env=home)
    assert "admin.env does not exist" in caught.value.message
    assert "provision sandbox" in caught.value.hint


def test_a_stored_sandbox_profile_wins_over_the_built_in_one(home: dict[str, str],
                                                             memory_keyring: MemoryKeyring) -> None:
    _profile(home, "sandbox", "http://127.0.0.1:9999", "own-key")
    assert resolve_credentials(server=None, profile="sandbox", env=home).key_id == "own-key"


def test_the_environment_url_is_checked_for_plain_http(home: dict[str, str]) -> None:
    env = {**home, "CONDUCTOR_SERVER_URL": "http://orkes.internal/api", "CONDUCTOR_AUTH_KEY": "k",
           "CONDUCTOR_AUTH_SECRET": "s"}
    with pytest.raises(UsageError):
        resolve_credentials(server=None, profile=None, env=env)
    assert resolve_credentials(server=None, profile=None, env=env, insecure_http=True).server == \
        "http://orkes.internal/api"


def test_profiles_are_saved_listed_and_deleted_with_no_secret_in_the_config_file(
        home: dict[str, str], memory_keyring: MemoryKeyring) -> None:
    _profile(home, "prod")
    _profile(home, "stage", "https://stage.example.com", "stage-key")
    path = Path(home["XDG_CONFIG_HOME"]) / "orkes-provision" / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SECRET not in path.read_text()
    assert [(p.name, p.server, p.key_id) for p in list_profiles(home)] == [
        ("prod", PROD, "prof-key"), ("stage", "https://stage.example.com/api", "stage-key")]
    delete_profile("prod", home)
    assert [p.name for p in list_profiles(home)] == ["stage"]
    assert (PROFILE_KEYRING_SERVICE, f"profile:prod@{PROD}") not in memory_keyring.passwords
    with pytest.raises(NotFound):
        delete_profile("prod", home)


def test_saving_a_profile_for_a_new_server_forgets_the_old_secret(home: dict[str, str],
                                                                  memory_keyring: MemoryKeyring) -> None:
    _profile(home, "prod")
    _profile(home, "prod", "https://new.example.com")
    assert list(memory_keyring.passwords) == [(PROFILE_KEYRING_SERVICE, "profile:prod@https://new.example.com/api")]


def test_hand_edited_config_settings_survive_a_save(home: dict[str, str], memory_keyring: MemoryKeyring) -> None:
    path = Path(home["XDG_CONFIG_HOME"]) / "orkes-provision" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text('default_profile = "prod"\ndefault_store = "env-file:./w.env"\n')
    _profile(home, "prod")
    config = load_config(path)
    assert (config.default_profile, config.default_store) == ("prod", "env-file:./w.env")


@pytest.mark.parametrize("name", ["", "a b", "../x", "-x", "x" * 65])
def test_bad_profile_names_are_usage_errors(home: dict[str, str], name: str, memory_keyring: MemoryKeyring) -> None:
    with pytest.raises(UsageError):
        save_profile(name, PROD, "k", SecretStr("s"), env=home)


def test_a_broken_config_file_is_a_config_error_naming_it(home: dict[str, str]) -> None:
    path = Path(home["XDG_CONFIG_HOME"]) / "orkes-provision" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("[profiles.prod\nserver=")
    with pytest.raises(ConfigError) as caught:
        resolve_credentials(server=None, profile=None, env=home)
    assert str(path) in caught.value.message


def test_orkes_provision_config_moves_the_config_file(tmp_path: Path) -> None:
    assert Settings.from_env({"ORKES_PROVISION_CONFIG": str(tmp_path / "c.toml")}).config_file == tmp_path / "c.toml"
    assert Settings.from_env({"XDG_CONFIG_HOME": "/x"}).config_file == Path("/x/orkes-provision/config.toml")


def test_settings_from_a_mapping_ignore_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUCTOR_AUTH_KEY", "from-os-environ")
    monkeypatch.setenv("ORKES_PROVISION_TIMEOUT", "3")
    assert Settings.from_env({}).auth_key is None
    assert Settings.from_env({}).timeout == 30.0
    assert Settings().timeout == 3.0
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"ORKES_PROVISION_TIMEOUT": "soon"})
    assert "ORKES_PROVISION_TIMEOUT" in caught.value.message


def test_a_server_flag_against_the_profile_of_orkes_provision_profile_names_the_variable(
        home: dict[str, str], memory_keyring: MemoryKeyring) -> None:
    _profile(home, "prod")
    with pytest.raises(ConfigError) as caught:
        resolve_credentials(server="https://stage.example.com", profile=None,
                            env={**home, "ORKES_PROVISION_PROFILE": "prod"})
    assert caught.value.message == ("ORKES_PROVISION_PROFILE=prod selects profile 'prod', which is for "
                                    f"{PROD}, not https://stage.example.com/api (--server)")
    assert caught.value.hint == "unset ORKES_PROVISION_PROFILE to use --server, or drop --server"


def test_a_server_flag_with_orkes_provision_profile_sandbox_names_the_variable(home: dict[str, str]) -> None:
    data = Path(home["XDG_DATA_HOME"]) / "orkes-provision" / "sandbox"
    data.mkdir(parents=True)
    (data / "admin.env").write_text("CONDUCTOR_SERVER_URL=http://127.0.0.1:8080/api\n"
                                    "CONDUCTOR_AUTH_KEY=sandbox-key\nCONDUCTOR_AUTH_SECRET=sandbox-secret\n")
    with pytest.raises(ConfigError) as caught:
        resolve_credentials(server="https://prod.example.com", profile=None,
                            env={**home, "ORKES_PROVISION_PROFILE": "sandbox"})
    assert caught.value.message == ("ORKES_PROVISION_PROFILE=sandbox selects the local sandbox at "
                                    f"http://127.0.0.1:8080/api, not {PROD} (--server)")
    assert "unset ORKES_PROVISION_PROFILE" in caught.value.hint
    # Named with --profile, the message is about the flag, as before.
    with pytest.raises(ConfigError) as flagged:
        resolve_credentials(server="https://prod.example.com", profile="sandbox", env=home)
    assert "ORKES_PROVISION_PROFILE" not in flagged.value.message + flagged.value.hint


def test_an_unknown_profile_from_orkes_provision_profile_names_the_variable(
        home: dict[str, str], memory_keyring: MemoryKeyring) -> None:
    _profile(home, "prod")
    with pytest.raises(ConfigError) as caught:
        resolve_credentials(server=None, profile=None, env={**home, "ORKES_PROVISION_PROFILE": "prdo"})
    assert caught.value.message.startswith("ORKES_PROVISION_PROFILE=prdo selects profile 'prdo', which is not in ")
    assert caught.value.message.endswith("(profiles: prod)")
    assert caught.value.hint.endswith("or unset ORKES_PROVISION_PROFILE")
