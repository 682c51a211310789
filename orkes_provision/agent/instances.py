"""Local credentials: a key id, secret and token per worker process, worthless anywhere but this agent.

A worker's SDK exchanges its local key id and secret at the agent's ``/api/token`` for a local
token, and sends that token on every request; the agent swaps it for the application's real token.
The local secret is kept only as a SHA-256 digest and compared in constant time. Nothing here is
derived from the real key: a local credential that leaks tells nothing about it, and it is refused
by the server and by any other agent.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass, field

from pydantic import SecretStr

LOCAL_KEY_PREFIX = "local-"


@dataclass
class Instance:
    """One worker process (or one standalone agent's workers) as the agent knows it."""

    label: str
    key_id: str
    digest: bytes
    token: str
    held: dict[str, str] = field(default_factory=dict)  # task id -> workflow id
    polls: int = 0
    finished: int = 0
    gone: bool = False


@dataclass(frozen=True)
class LocalCredential:
    key_id: str
    secret: SecretStr

    def __repr__(self) -> str:
        return f"LocalCredential(key_id={self.key_id!r})"


class Instances:
    """The instances of one agent, by key id and by token; thread-safe (the supervisor registers)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, Instance] = {}
        self._by_token: dict[str, Instance] = {}
        self._by_label: dict[str, Instance] = {}

    def register(self, label: str, given: LocalCredential | None = None) -> LocalCredential:
        """A new local credential for ``label``; ``given`` when the workers' one is fixed beforehand (a pod)."""
        key_id = given.key_id if given is not None else LOCAL_KEY_PREFIX + secrets.token_hex(8)
        secret = given.secret.get_secret_value() if given is not None else secrets.token_urlsafe(32)
        instance = Instance(label=label, key_id=key_id, digest=_digest(secret), token=secrets.token_urlsafe(32))
        with self._lock:
            self._by_key[key_id] = instance
            self._by_token[instance.token] = instance
            self._by_label[label] = instance
        return LocalCredential(key_id, SecretStr(secret))

    def token_for(self, key_id: str, secret: str) -> str | None:
        """The local token of ``key_id`` when ``secret`` is its secret, else ``None``."""
        with self._lock:
            instance = self._by_key.get(key_id)
        if instance is None or instance.gone or not hmac.compare_digest(instance.digest, _digest(secret)):
            return None
        return instance.token

    def by_token(self, token: str) -> Instance | None:
        with self._lock:
            instance = self._by_token.get(token)
        return None if instance is None or instance.gone else instance

    def by_label(self, label: str) -> Instance | None:
        with self._lock:
            return self._by_label.get(label)

    def retire(self, label: str) -> Instance | None:
        """Forget ``label``: its credential stops working; the caller hands back what it held."""
        with self._lock:
            instance = self._by_label.pop(label, None)
            if instance is None:
                return None
            instance.gone = True
            self._by_key.pop(instance.key_id, None)
            self._by_token.pop(instance.token, None)
        return instance

    def all(self) -> list[Instance]:
        with self._lock:
            return list(self._by_label.values())


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
