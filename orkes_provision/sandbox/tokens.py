"""HS256 JWTs for access keys: ``sub`` (the app user ``app:<appId>``), ``iat``, ``exp``, ``keyId``.

The signing key lives in the database, so tokens stay valid across a restart. A token is only as
good as its key: the middleware also checks on every request that the key still exists and is
ACTIVE, so deactivating or deleting a key revokes its tokens at once (401 INVALID_TOKEN).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import jwt

from orkes_provision.sandbox.db import Database

_ALGORITHM = "HS256"
_META_KEY = "jwt_signing_key"


@dataclass(frozen=True)
class Claims:
    sub: str
    key_id: str
    iat: int
    exp: int | None


class TokenExpired(Exception):
    pass


class TokenInvalid(Exception):
    pass


class TokenIssuer:
    def __init__(self, db: Database) -> None:
        key = db.get_meta(_META_KEY)
        if key is None:
            key = secrets.token_hex(32)
            db.set_meta(_META_KEY, key)
        self._key = key

    def issue(self, sub: str, key_id: str, ttl_seconds: int | None) -> str:
        now = int(time.time())
        claims: dict[str, object] = {"sub": sub, "iat": now, "keyId": key_id, "iss": "orkes-provision-sandbox"}
        if ttl_seconds is not None:
            claims["exp"] = now + ttl_seconds
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM)

    def verify(self, token: str) -> Claims:
        try:
            data = jwt.decode(token, self._key, algorithms=[_ALGORITHM],
                              options={"require": ["sub", "iat"], "verify_exp": True})
        except jwt.ExpiredSignatureError as err:
            raise TokenExpired from err
        except jwt.InvalidTokenError as err:
            raise TokenInvalid from err
        sub, key_id, iat, exp = data.get("sub"), data.get("keyId"), data.get("iat"), data.get("exp")
        if not isinstance(sub, str) or not isinstance(key_id, str) or not isinstance(iat, int):
            raise TokenInvalid
        return Claims(sub=sub, key_id=key_id, iat=iat, exp=exp if isinstance(exp, int) else None)
