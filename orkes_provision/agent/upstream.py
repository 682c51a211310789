"""The application's real key and its token: exchanged, renewed before expiry, switched on rotation.

The token exchange goes through ``OrkesClient.exchange_token`` (in a thread: it is synchronous),
so its errors are the client's one-line errors. The real secret stays in this object; nothing it
raises or logs carries it or a token.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

from orkes_provision.credentials.stores.base import HeldKey
from orkes_provision.errors import AuthenticationError, ProvisionError
from orkes_provision.orkes.auth import jwt_lifetime
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.orkes.urls import normalize_server_url

DEFAULT_LIFETIME = 45 * 60.0
REFRESH_MARGIN = 60.0


class Unavailable(Exception):
    """No real token now: the key is rejected, or the server does not answer. Carries no secret."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def fingerprint(key: HeldKey) -> str:
    """Tells two keys apart without keeping or showing the secret."""
    return hashlib.sha256(f"{key.key_id.strip()}\0{key.secret.get_secret_value().strip()}".encode()).hexdigest()


class KeyHolder:
    """The current key and token; used from the agent's event loop only."""

    def __init__(self, key: HeldKey, *, insecure_http: bool = False, timeout: float = 10.0) -> None:
        self.key = key
        self.insecure_http = insecure_http
        self.timeout = timeout
        self.state = "starting"  # ready | unauthenticated | upstream-unavailable
        self.problem: str | None = None
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()

    def new_loop(self) -> None:
        """The agent serves from a new event loop (a restart): a lock bound to the old one would refuse it."""
        self._lock = asyncio.Lock()

    @property
    def key_id(self) -> str:
        return self.key.key_id.strip()

    @property
    def due(self) -> bool:
        return self._token is None or time.monotonic() >= self._refresh_at

    async def token(self, *, stale: str | None = None) -> str:
        """The real token; minted when there is none, it is due, or it is ``stale``."""
        current = self._token
        if current is not None and current != stale and time.monotonic() < self._refresh_at:
            return current
        async with self._lock:
            current = self._token
            if current is not None and current != stale and time.monotonic() < self._refresh_at:
                return current
            await self.renew()
            assert self._token is not None
            return self._token

    async def renew(self) -> None:
        """Mint a token for the current key now; raises ``Unavailable`` when that fails."""
        started = time.monotonic()
        try:
            token = await self.exchange(self.key)
        except AuthenticationError as err:
            self.state, self.problem = "unauthenticated", err.message
            raise Unavailable(503, f"the agent's key {self.key_id} is rejected by the server") from None
        except ProvisionError as err:
            self.state, self.problem = "upstream-unavailable", err.message
            raise Unavailable(503, f"the server does not answer the agent ({err.message})") from None
        self._install(token, started)

    def switch(self, key: HeldKey, token: str, started: float) -> None:
        """Use ``key`` from now on, with ``token`` already minted for it (``exchange``)."""
        self.key = key
        self._install(token, started)

    def _install(self, token: str, started: float) -> None:
        lifetime = jwt_lifetime(token) or DEFAULT_LIFETIME
        # Renew a minute early, or a fifth early for short-lived (test) tokens.
        self._refresh_at = started + lifetime - min(REFRESH_MARGIN, lifetime / 5)
        self._token = token
        self.state, self.problem = "ready", None

    async def exchange(self, key: HeldKey) -> str:
        """A token for ``key`` (to verify a new key before switching to it); raises ``ProvisionError``."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._exchange_sync, key)

    def _exchange_sync(self, key: HeldKey) -> str:
        server = normalize_server_url(key.server, insecure_http=True)
        credentials = Credentials(server=server, key_id=key.key_id.strip(), secret=key.secret)
        with OrkesClient(credentials, timeout=self.timeout, max_retries=1, insecure_http=self.insecure_http) as client:
            return client.exchange_token(credentials.key_id, credentials.secret).get_secret_value()
