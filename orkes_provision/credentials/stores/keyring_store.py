"""The keyring store: one keyring entry per server and application.

Naming (documented in docs/credentials.md, stable across versions):

- service  ``orkes-provision:<server URL ending in /api>``
- username ``<application name>``
- password ``{"keyId": "<key id>", "secret": "<key secret>"}`` (JSON)

Several servers and applications therefore live side by side, and ``keyring get`` /
``secret-tool search service orkes-provision:...`` find an entry by hand.
"""

from __future__ import annotations

import json
from typing import Any

import keyring
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null
from keyring.errors import KeyringLocked, NoKeyringError
from pydantic import SecretStr

from orkes_provision.credentials.stores.base import StoredKey, canonical_server
from orkes_provision.errors import StoreError

SERVICE_PREFIX = "orkes-provision:"
NO_KEYRING_HINT = "use --store env-file:PATH, or run where a Secret Service (GNOME Keyring, KWallet) is unlocked"


def service_name(server: str) -> str:
    return f"{SERVICE_PREFIX}{canonical_server(server)}"


def usable_keyring() -> KeyringBackend | None:
    """The configured keyring backend, or ``None`` when only the fail/null backend is left."""
    try:
        backend = keyring.get_keyring()
    except Exception:  # a broken backend plugin must not turn into a traceback
        return None
    if isinstance(backend, (fail.Keyring, null.Keyring)):
        return None
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        return None
    try:
        priority = float(backend.priority)
    except Exception:
        return None
    return backend if priority > 0 else None


def require_keyring(backend: KeyringBackend | None = None) -> KeyringBackend:
    """``backend`` or the usable default one; ``StoreError`` when there is none."""
    found = backend or usable_keyring()
    if found is None:
        raise StoreError("no usable keyring backend (no Secret Service, KWallet or macOS Keychain found)",
                         NO_KEYRING_HINT)
    return found


def keyring_failure(err: Exception, action: str) -> StoreError:
    """Translate a backend exception. Keyring messages never contain the password."""
    if isinstance(err, KeyringLocked):
        return StoreError(f"the keyring is locked; cannot {action}",
                          "unlock it (log in to the desktop session) and retry")
    if isinstance(err, NoKeyringError):
        return StoreError(f"no usable keyring backend; cannot {action}", NO_KEYRING_HINT)
    detail = str(err).splitlines()[0] if str(err) else type(err).__name__
    return StoreError(f"the keyring failed to {action}: {detail}", NO_KEYRING_HINT)


class KeyringStore:
    """Keys in the system keyring (Secret Service, macOS Keychain, Windows Credential Locker)."""

    spec = "keyring"

    def __init__(self, backend: KeyringBackend | None = None) -> None:
        self._backend = require_keyring(backend)
        self._last: tuple[str, str] | None = None

    def load(self, server: str, app: str) -> StoredKey | None:
        server = canonical_server(server)
        raw = self._call("read", lambda: self._backend.get_password(service_name(server), app))
        self._last = (server, app)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            key_id, secret = data["keyId"], data["secret"]
            if not isinstance(key_id, str) or not isinstance(secret, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise StoreError(f"the keyring entry for {app!r} on {server} is not one orkes-provision wrote",
                             f"remove it (service {service_name(server)}, user {app})") from None
        return StoredKey(server=server, app=app, key_id=key_id, secret=SecretStr(secret))

    def save(self, key: StoredKey) -> None:
        server = canonical_server(key.server)
        payload = json.dumps({"keyId": key.key_id, "secret": key.secret.get_secret_value()})
        self._call("store the key", lambda: self._backend.set_password(service_name(server), key.app, payload))
        self._last = (server, key.app)
        # Some backends accept a write they cannot read back (a locked collection, a full
        # file); the caller deletes the new key on the server if this check fails.
        stored = self._call("read the key back", lambda: self._backend.get_password(service_name(server), key.app))
        if stored != payload:
            raise StoreError(f"the keyring did not keep the key for application {key.app!r}", NO_KEYRING_HINT)

    def delete(self, server: str, app: str) -> None:
        server = canonical_server(server)
        service = service_name(server)
        if self._call("read", lambda: self._backend.get_password(service, app)) is None:
            return
        self._call("delete the key", lambda: self._backend.delete_password(service, app))

    def describe(self, server: str | None = None, app: str | None = None) -> str:
        if server is None and app is None and self._last is not None:
            server, app = self._last
        service = service_name(server) if server else f"{SERVICE_PREFIX}<server URL>"
        return f"keyring (service {service}, user {app or '<application name>'})"

    def _call(self, action: str, func: Any) -> Any:
        try:
            return func()
        except Exception as err:
            # Backends surface D-Bus and OS failures as their own exception types, not only KeyringError.
            raise keyring_failure(err, action) from None
