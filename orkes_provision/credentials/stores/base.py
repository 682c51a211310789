"""What every credential store shares: the stored key and the store protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import SecretStr

from orkes_provision.orkes.urls import normalize_server_url


class HeldKey(Protocol):
    """A key with the server it is for, whatever holds it (``StoredKey`` is one): what the launcher,
    the agent and the hand-back need of a key."""

    @property
    def server(self) -> str: ...

    @property
    def key_id(self) -> str: ...

    @property
    def secret(self) -> SecretStr: ...


@dataclass(frozen=True)
class StoredKey:
    """An access key of application ``app`` on ``server`` (normalised, ends with ``/api``)."""

    server: str
    app: str
    key_id: str
    secret: SecretStr


@runtime_checkable
class CredentialStore(Protocol):
    """Where an application's key id and secret are kept.

    ``spec`` is the canonical ``--store`` value that reopens the same store (``keyring``,
    ``env-file:/abs/path``, ``json``, ``memory``). ``load`` returns ``None`` when the store has no
    key for that server and application; ``delete`` of a missing key is not an error. Every
    failure is a ``StoreError`` (or ``UsageError`` for a refused spec) naming where, never the secret.
    """

    spec: str

    def load(self, server: str, app: str) -> StoredKey | None: ...

    def save(self, key: StoredKey) -> None: ...

    def delete(self, server: str, app: str) -> None: ...

    def describe(self, server: str | None = None, app: str | None = None) -> str: ...


def canonical_server(server: str) -> str:
    """The server URL as stores key it: normalised structurally (the http policy is the caller's)."""
    return normalize_server_url(server, insecure_http=True)
