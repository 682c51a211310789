"""Opening stores by spec, the keyring store's naming and failures, and the json store."""

from __future__ import annotations

import io
import json
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail
from keyring.errors import KeyringLocked, PasswordSetError
from pydantic import SecretStr

from orkes_provision.credentials.stores import STORE_FORMS, open_store
from orkes_provision.credentials.stores.base import StoredKey
from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.credentials.stores.json_store import JsonStore
from orkes_provision.credentials.stores.keyring_store import KeyringStore, service_name
from orkes_provision.credentials.stores.memory import MemoryKeyring, MemoryStore
from orkes_provision.errors import StoreError, UsageError

SERVER = "https://orkes.example.com/api"
SECRET = "Open-Store-Secret-c4d1"
KEY = StoredKey(server=SERVER, app="greetings-worker", key_id="k1", secret=SecretStr(SECRET))


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_spec_opens_the_keyring_when_a_backend_is_usable(memory_keyring: MemoryKeyring) -> None:
    store = open_store(None)
    assert isinstance(store, KeyringStore)
    assert store.spec == "keyring"
    store.save(KEY)
    assert memory_keyring.passwords


def test_no_spec_without_a_usable_keyring_is_a_store_error_suggesting_an_env_file() -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        with pytest.raises(StoreError) as caught:
            open_store(None)
    finally:
        keyring.set_keyring(previous)
    assert "no usable keyring backend" in caught.value.message
    assert "--store env-file:PATH" in caught.value.hint
    assert caught.value.exit_code == 10


@pytest.mark.parametrize(("spec", "kind"), [("memory", MemoryStore), ("json", JsonStore), (" keyring ", KeyringStore)])
def test_each_spec_opens_its_store(spec: str, kind: type, memory_keyring: MemoryKeyring) -> None:
    assert isinstance(open_store(spec, stdout=io.StringIO()), kind)


def test_env_file_spec_opens_an_env_file_store(tmp_path: Path) -> None:
    store = open_store(f"env-file:{tmp_path / 'w.env'}")
    assert isinstance(store, EnvFileStore)


@pytest.mark.parametrize(("spec", "message"), [
    ("vault", "unknown credential store 'vault'"),
    ("env-file", "--store env-file needs a path"),
    ("env-file:", "--store env-file needs a path"),
])
def test_unknown_or_incomplete_specs_are_usage_errors_listing_the_accepted_forms(spec: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        open_store(spec)
    assert caught.value.message == message
    assert caught.value.exit_code == 2
    if "needs a path" not in message:
        assert caught.value.hint == f"use one of: {STORE_FORMS}"
        assert "env-file:PATH" in STORE_FORMS


def test_the_keyring_entry_uses_the_documented_service_user_and_json_password() -> None:
    backend = MemoryKeyring()
    store = KeyringStore(backend)
    store.save(StoredKey(server="https://orkes.example.com", app="greetings-worker", key_id="k1",
                         secret=SecretStr(SECRET)))
    assert backend.passwords == {("orkes-provision:https://orkes.example.com/api", "greetings-worker"):
                                 json.dumps({"keyId": "k1", "secret": SECRET})}
    assert store.describe() == "keyring (service orkes-provision:https://orkes.example.com/api, user greetings-worker)"
    assert service_name("https://orkes.example.com/api/") == "orkes-provision:https://orkes.example.com/api"


class Broken(MemoryKeyring):
    def __init__(self, error: Exception, on: str = "set") -> None:
        super().__init__()
        self.error = error
        self.on = on

    def set_password(self, service: str, username: str, password: str) -> None:
        if self.on == "set":
            raise self.error
        if self.on == "lose":
            return  # accepts the write and keeps nothing
        super().set_password(service, username, password)

    def get_password(self, service: str, username: str) -> str | None:
        if self.on == "get":
            raise self.error
        return super().get_password(service, username)


@pytest.mark.parametrize(("backend", "message"), [
    (Broken(KeyringLocked("locked")), "the keyring is locked; cannot store the key"),
    (Broken(PasswordSetError("dbus: no reply")), "the keyring failed to store the key: dbus: no reply"),
    (Broken(RuntimeError("boom")), "the keyring failed to store the key: boom"),
    (Broken(OSError("gone"), on="get"), "the keyring failed to read the key back: gone"),
    (Broken(OSError(), on="lose"), "the keyring did not keep the key for application 'greetings-worker'"),
])
def test_keyring_backend_failures_are_store_errors(backend: MemoryKeyring, message: str) -> None:
    store = KeyringStore(backend)
    with pytest.raises(StoreError) as caught:
        store.save(KEY)
    assert caught.value.message == message
    assert SECRET not in caught.value.message


def test_a_keyring_entry_not_written_by_this_tool_is_a_store_error_not_a_crash() -> None:
    backend = MemoryKeyring()
    backend.set_password(service_name(SERVER), "greetings-worker", "plain-password")
    with pytest.raises(StoreError) as caught:
        KeyringStore(backend).load(SERVER, "greetings-worker")
    assert "is not one orkes-provision wrote" in caught.value.message
    assert "plain-password" not in caught.value.message + caught.value.hint


def test_the_json_store_prints_the_key_once_and_keeps_nothing() -> None:
    out = io.StringIO()
    store = JsonStore(out)
    store.save(KEY)
    assert json.loads(out.getvalue()) == {"server": SERVER, "app": "greetings-worker", "keyId": "k1",
                                          "secret": SECRET}
    assert out.getvalue().count("\n") == 1
    assert store.load(SERVER, "greetings-worker") is None
    assert SECRET not in store.describe()


def test_the_json_store_is_refused_on_a_terminal_before_any_key_exists() -> None:
    with pytest.raises(UsageError) as caught:
        open_store("json", stdout=Tty())
    assert "stdout is a terminal" in caught.value.message
    assert "--show-secret" in caught.value.hint


def test_the_json_store_prints_to_a_terminal_with_show_secret() -> None:
    out = Tty()
    open_store("json", stdout=out, show_secret=True).save(KEY)
    assert json.loads(out.getvalue())["secret"] == SECRET
