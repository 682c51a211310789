"""One contract, every store: what ``provisioning`` relies on from a CredentialStore."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import keyring
import pytest
from pydantic import SecretStr

from orkes_provision.credentials.stores import CredentialStore, StoredKey, open_store
from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.credentials.stores.json_store import JsonStore
from orkes_provision.credentials.stores.keyring_store import KeyringStore, usable_keyring
from orkes_provision.credentials.stores.memory import MemoryKeyring, MemoryStore

SECRET = "Contract-Secret-5b7d"


@dataclass
class Subject:
    store: CredentialStore
    persistent: bool = True  # load returns what save wrote
    multi: bool = True  # holds several servers and applications at once
    reopen: Callable[[], CredentialStore] | None = None
    output: io.StringIO | None = None


def _unique_server() -> str:
    # Unique per test, so a shared (real) keyring never sees another test's entries.
    return f"https://{uuid.uuid4().hex[:12]}.example.com/api"


@pytest.fixture(params=["memory", "env-file", "keyring",
                        pytest.param("keyring-secret-service", marks=pytest.mark.secret_service), "json"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    kind = request.param
    if kind == "memory":
        yield Subject(MemoryStore())
    elif kind == "env-file":
        store = EnvFileStore(tmp_path / "worker.env")
        yield Subject(store, multi=False, reopen=lambda: open_store(store.spec))
    elif kind == "keyring":
        backend = MemoryKeyring()
        yield Subject(KeyringStore(backend), reopen=lambda: KeyringStore(backend))
    elif kind == "keyring-secret-service":
        # Runs under scripts/with-keyring (PYTHON_KEYRING_BACKEND=SecretService); skipped elsewhere.
        if usable_keyring() is None:
            pytest.fail("the Secret Service backend is not usable")
        created = KeyringStore()
        yield Subject(created, reopen=lambda: open_store("keyring"))
    else:
        out = io.StringIO()
        yield Subject(JsonStore(out), persistent=False, output=out)


def _key(server: str, app: str = "greetings-worker", key_id: str = "key-1", secret: str = SECRET) -> StoredKey:
    return StoredKey(server=server, app=app, key_id=key_id, secret=SecretStr(secret))


def test_load_of_a_key_never_saved_is_none(subject: Subject) -> None:
    assert subject.store.load(_unique_server(), "nobody") is None


def test_a_saved_key_loads_back_exactly(subject: Subject) -> None:
    server = _unique_server()
    subject.store.save(_key(server))
    loaded = subject.store.load(server, "greetings-worker")
    if not subject.persistent:
        assert loaded is None
        assert subject.output is not None
        assert json.loads(subject.output.getvalue())["secret"] == SECRET
        return
    assert loaded == _key(server)
    assert loaded is not None
    assert loaded.secret.get_secret_value() == SECRET
    subject.store.delete(server, "greetings-worker")


def test_the_server_url_is_matched_with_or_without_api(subject: Subject) -> None:
    if not subject.persistent:
        pytest.skip("nothing is kept")
    server = _unique_server()
    subject.store.save(_key(server.removesuffix("/api") + "/"))
    loaded = subject.store.load(server, "greetings-worker")
    assert loaded is not None
    assert loaded.server == server
    subject.store.delete(server, "greetings-worker")


def test_a_second_save_replaces_the_first(subject: Subject) -> None:
    server = _unique_server()
    subject.store.save(_key(server, key_id="old", secret="old-secret"))
    subject.store.save(_key(server, key_id="new", secret="new-secret"))
    loaded = subject.store.load(server, "greetings-worker")
    if subject.persistent:
        assert loaded is not None
        assert (loaded.key_id, loaded.secret.get_secret_value()) == ("new", "new-secret")
    subject.store.delete(server, "greetings-worker")


def test_delete_removes_the_key_and_deleting_a_missing_key_is_fine(subject: Subject) -> None:
    server = _unique_server()
    subject.store.save(_key(server))
    subject.store.delete(server, "greetings-worker")
    assert subject.store.load(server, "greetings-worker") is None
    subject.store.delete(server, "greetings-worker")
    subject.store.delete(_unique_server(), "never-there")


def test_several_servers_and_applications_live_side_by_side(subject: Subject) -> None:
    if not (subject.persistent and subject.multi):
        pytest.skip("this store holds one key")
    one, two = _unique_server(), _unique_server()
    keys = [_key(one, "a", "k1", "s1"), _key(one, "b", "k2", "s2"), _key(two, "a", "k3", "s3")]
    for key in keys:
        subject.store.save(key)
    assert [subject.store.load(k.server, k.app) for k in keys] == keys
    subject.store.delete(one, "a")
    assert [subject.store.load(k.server, k.app) for k in keys] == [None, keys[1], keys[2]]
    for key in keys:
        subject.store.delete(key.server, key.app)


def test_the_spec_reopens_the_same_store(subject: Subject) -> None:
    if subject.reopen is None:
        pytest.skip("a fresh store of this kind is empty by design")
    server = _unique_server()
    subject.store.save(_key(server))
    assert subject.reopen().spec == subject.store.spec
    assert subject.reopen().load(server, "greetings-worker") == _key(server)
    subject.store.delete(server, "greetings-worker")


def test_no_secret_in_describe_or_reprs(subject: Subject) -> None:
    server = _unique_server()
    key = _key(server)
    subject.store.save(key)
    texts = [subject.store.describe(), subject.store.describe(server, "greetings-worker"), repr(key), str(key),
             repr(subject.store), subject.store.spec]
    assert all(SECRET not in text for text in texts)
    assert subject.store.describe()
    subject.store.delete(server, "greetings-worker")


def test_typical_key_ids_and_secrets_survive_a_round_trip(subject: Subject) -> None:
    if not subject.persistent:
        pytest.skip("nothing is kept")
    server = _unique_server()
    for key_id, secret in [("deb14bc8-f081-11f0-bba8-b670bc6a0f4a", "Xk9_2-bB.c+/=="),
                           ("k", "Zz" * 32), ("üñí", "päss wörd #1")]:
        subject.store.save(_key(server, key_id=key_id, secret=secret))
        loaded = subject.store.load(server, "greetings-worker")
        assert loaded is not None
        assert (loaded.key_id, loaded.secret.get_secret_value()) == (key_id, secret)
    subject.store.delete(server, "greetings-worker")


def test_memory_keyring_is_never_chosen_by_keyring_auto_detection() -> None:
    assert not any(isinstance(k, MemoryKeyring) for k in keyring.backend.get_all_keyring())
