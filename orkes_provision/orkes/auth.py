"""Token authentication for Orkes as an ``httpx.Auth`` flow.

Orkes wants a JWT in ``X-Authorization``, obtained from ``POST /api/token`` with the key id and
secret. The flow mints a token when it has none or when the current one is about to expire
(``exp`` read from the JWT payload, no signature check: the client only needs to know when to
refresh), and, like the official SDKs, refreshes once and replays once when the server answers
401/403 with ``error`` EXPIRED_TOKEN or INVALID_TOKEN. Refreshing is serialised by a lock, so
sixteen threads that see the same expired token mint one new token, not sixteen.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Generator

import httpx
from pydantic import SecretStr

TOKEN_HEADER = "X-Authorization"
TOKEN_ERRORS = frozenset({"EXPIRED_TOKEN", "INVALID_TOKEN"})
# Without a readable exp, trust a token for as long as the Python SDK does.
DEFAULT_LIFETIME = 45 * 60.0
REFRESH_MARGIN = 60.0


def jwt_lifetime(token: str) -> float | None:
    """Seconds the token is valid for from when it was issued (``exp - iat``), else ``None``.

    Using the difference rather than ``exp`` itself keeps a skewed local clock out of it.
    """
    claims = jwt_claims(token)
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float):
        return None
    if isinstance(iat, int | float):
        return float(exp - iat)
    return float(exp - time.time())


def jwt_claims(token: str) -> dict[str, object]:
    """The payload of a JWT, or ``{}`` when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, UnicodeError, RecursionError):
        return {}
    return claims if isinstance(claims, dict) else {}


def is_token_error(response: httpx.Response) -> bool:
    """True for the auth filter's 401/403 that a fresh token can cure."""
    if response.status_code not in (401, 403):
        return False
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return False
    return isinstance(body, dict) and body.get("error") in TOKEN_ERRORS


class OrkesTokenAuth(httpx.Auth):
    """Sets ``X-Authorization``; mints tokens through ``exchange(key_id, secret) -> token``.

    ``exchange`` is the client's own retried ``POST /token``; it raises ``AuthenticationError``
    (or another ``ProvisionError``) rather than returning nothing.
    """

    requires_response_body = True

    def __init__(self, key_id: str, secret: SecretStr, exchange: Callable[[str, SecretStr], SecretStr], *,
                 clock: Callable[[], float] = time.monotonic, refresh_margin: float = REFRESH_MARGIN) -> None:
        self.key_id = key_id
        self._secret = secret
        self._exchange = exchange
        self._clock = clock
        self._margin = refresh_margin
        self._lock = threading.Lock()
        self._token: SecretStr | None = None
        self._refresh_at = 0.0
        self.tokens_minted = 0

    def __repr__(self) -> str:
        return f"OrkesTokenAuth(key_id={self.key_id!r})"

    def token(self, *, stale: SecretStr | None = None) -> SecretStr:
        """The current token, minted anew if there is none, it is due, or it is ``stale``."""
        with self._lock:
            current = self._token
            due = current is None or self._clock() >= self._refresh_at
            if stale is not None and current is not None and \
                    current.get_secret_value() == stale.get_secret_value():
                due = True
            if due or current is None:
                started = self._clock()
                current = self._exchange(self.key_id, self._secret)
                lifetime = jwt_lifetime(current.get_secret_value()) or DEFAULT_LIFETIME
                # Refresh a minute early, or a fifth early for short-lived (test) tokens.
                self._refresh_at = started + lifetime - min(self._margin, lifetime / 5)
                self._token = current
                self.tokens_minted += 1
            return current

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.token()
        request.headers[TOKEN_HEADER] = token.get_secret_value()
        response = yield request
        if is_token_error(response):
            # The auth filter rejected the request before the server acted on it: safe to replay.
            token = self.token(stale=token)
            request.headers[TOKEN_HEADER] = token.get_secret_value()
            yield request
