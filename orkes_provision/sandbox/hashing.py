"""Access-key secrets: generated here, returned once, stored only as a salted scrypt hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

# scrypt cost: about 2 ms and 1 MiB per hash, paid on key creation and token exchange (never per
# request: requests carry the JWT), in a worker thread, off the event loop. A memory-hard cost buys
# nothing here: secrets are 288 random bits, not passwords, so no dictionary or brute force applies;
# at 2**14 the hashing of 20 new keys dominated a bulk apply on a 2-core machine.
_N, _R, _P, _DKLEN = 2**10, 8, 1, 32


def new_key_id() -> str:
    return str(uuid.uuid4())


def new_secret() -> str:
    # 48 URL-safe characters: no '$', quotes or whitespace, so it survives env files verbatim.
    return secrets.token_urlsafe(36)


def hash_secret(secret: str) -> tuple[bytes, bytes]:
    salt = secrets.token_bytes(16)
    return salt, _derive(secret, salt)


def verify_secret(secret: str, salt: bytes, expected: bytes) -> bool:
    return hmac.compare_digest(_derive(secret, salt), expected)


def _derive(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN, maxmem=64 * 1024 * 1024)
