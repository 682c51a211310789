"""``mint_token``: a server that ignores the requested lifetime does not get its token handed out."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import httpx
import jwt
import pytest
from pydantic import SecretStr

from orkes_provision.credentials.tokens import mint_token
from orkes_provision.errors import ServerError
from orkes_provision.orkes.client import OrkesClient


def _server_minting(claims: dict[str, object], seen: list[dict[str, object]]) -> OrkesClient:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"token": jwt.encode(claims, "k" * 32, algorithm="HS256")})

    return OrkesClient(server="http://127.0.0.1:9/api", transport=httpx.MockTransport(handle))


@pytest.mark.parametrize("lifetime", [3600, None], ids=["longer-than-asked", "no-exp"])
def test_a_token_living_longer_than_asked_is_refused(lifetime: int | None) -> None:
    now = int(time.time())
    claims: dict[str, object] = {"sub": "app:x", "iat": now}
    if lifetime is not None:
        claims["exp"] = now + lifetime
    seen: list[dict[str, object]] = []
    with pytest.raises(ServerError, match="ignored the requested lifetime of 15m"):
        mint_token(_server_minting(claims, seen), "kid", SecretStr("s3cr3t-value"), timedelta(minutes=15))
    assert seen[0]["expiration"] == 15 * 60 * 1000


def test_a_token_within_the_lifetime_is_returned_with_its_expiry() -> None:
    now = int(time.time())
    seen: list[dict[str, object]] = []
    minted = mint_token(_server_minting({"sub": "app:x", "iat": now, "exp": now + 600}, seen), "kid",
                        SecretStr("s3cr3t-value"), timedelta(minutes=10))
    assert int(minted.expires_at.timestamp()) == now + 600
