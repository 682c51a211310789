"""In-memory store and keyring backend, for tests and for dry runs."""

from __future__ import annotations

import threading

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

from orkes_provision.credentials.stores.base import StoredKey, canonical_server


class MemoryStore:
    """Keeps keys in a dict; ``saved`` records every save, in order, for assertions."""

    spec = "memory"

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], StoredKey] = {}
        self._lock = threading.Lock()
        self.saved: list[StoredKey] = []

    def load(self, server: str, app: str) -> StoredKey | None:
        with self._lock:
            return self._keys.get((canonical_server(server), app))

    def save(self, key: StoredKey) -> None:
        key = StoredKey(server=canonical_server(key.server), app=key.app, key_id=key.key_id, secret=key.secret)
        with self._lock:
            self._keys[(key.server, key.app)] = key
            self.saved.append(key)

    def delete(self, server: str, app: str) -> None:
        with self._lock:
            self._keys.pop((canonical_server(server), app), None)

    def describe(self, server: str | None = None, app: str | None = None) -> str:
        return "memory (discarded when the process exits)"

    def keys(self) -> list[StoredKey]:
        with self._lock:
            return list(self._keys.values())


class MemoryKeyring(KeyringBackend):
    """A keyring backend holding passwords in a dict, for tests: ``keyring.set_keyring(MemoryKeyring())``.

    ``viable = False`` keeps keyring's auto-detection from ever choosing it, so merely importing
    this module can never make real secrets land in memory.
    """

    priority = 1
    viable = False

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self.passwords:
            raise PasswordDeleteError("no such password")
        del self.passwords[(service, username)]
