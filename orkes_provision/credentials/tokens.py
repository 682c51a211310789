"""Short-lived tokens for one step of a CI job: ``provision token APP --ttl 15m``.

The application's key stays in its store; what leaves is an Orkes JWT minted with
``POST /api/token`` and ``expiration`` (milliseconds). The lifetime is bounded by a maximum
(``max_token_ttl`` in the config file, else one hour), so a forgotten token stops working, and a
server that ignores ``expiration`` (its token lives longer than asked, or for ever) is refused
rather than trusted: the token is not handed out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import SecretStr

from orkes_provision.credentials.settings import Config
from orkes_provision.durations import format_duration, parse_duration
from orkes_provision.errors import ConfigError, ServerError, UsageError
from orkes_provision.orkes.auth import jwt_claims
from orkes_provision.orkes.client import OrkesClient

DEFAULT_MAX_TTL = timedelta(hours=1)
# A server's clock and ours may disagree, and it may round up to its own unit.
_SLACK_SECONDS = 5


@dataclass(frozen=True)
class MintedToken:
    token: SecretStr
    key_id: str
    expires_at: datetime

    def to_dict(self) -> dict[str, object]:
        """For ``--json``: the token itself is the point of the command, so it is in the document."""
        return {"token": self.token.get_secret_value(), "keyId": self.key_id,
                "expiresAt": self.expires_at.isoformat(timespec="seconds")}


def max_ttl(config: Config, config_file: str) -> tuple[timedelta, str]:
    """The longest lifetime ``provision token`` mints, and what said so."""
    if config.max_token_ttl is None:
        return DEFAULT_MAX_TTL, "the default"
    try:
        value = parse_duration(config.max_token_ttl)
    except UsageError as err:
        raise ConfigError(f"{config_file}: max_token_ttl: {err.message}", err.hint) from None
    if value.total_seconds() < 1:
        raise ConfigError(f"{config_file}: max_token_ttl must be at least 1s", "write it like 1h or 15m")
    return value, f"max_token_ttl in {config_file}"


def check_ttl(ttl: timedelta, maximum: timedelta, *, where: str) -> None:
    """``UsageError`` unless ``0 < ttl <= maximum``; ``where`` names what set the maximum."""
    if ttl.total_seconds() < 1:
        raise UsageError(f"--ttl {format_duration(ttl)} is too short: a token lives at least 1s",
                         "give a lifetime such as 15m")
    if ttl > maximum:
        raise UsageError(f"--ttl {format_duration(ttl)} is longer than the maximum of {format_duration(maximum)} "
                         f"({where})", "ask for less, or raise max_token_ttl in the config file")


def mint_token(client: OrkesClient, key_id: str, secret: SecretStr, ttl: timedelta) -> MintedToken:
    """A token for the key, living ``ttl``; ``ServerError`` when the server's lives longer."""
    token = client.exchange_token(key_id, secret, expiration_ms=int(ttl.total_seconds() * 1000))
    claims = jwt_claims(token.get_secret_value())
    exp, iat = claims.get("exp"), claims.get("iat")
    issued = float(iat) if isinstance(iat, int | float) else time.time()
    if not isinstance(exp, int | float) or float(exp) - issued > ttl.total_seconds() + _SLACK_SECONDS:
        lives = "for ever (no exp claim)" if not isinstance(exp, int | float) else \
            f"{format_duration(timedelta(seconds=int(float(exp) - issued)))}"
        raise ServerError(
            f"the server ignored the requested lifetime of {format_duration(ttl)}: its token lives {lives}; "
            "it was not printed",
            "this server does not honour 'expiration' on POST /api/token; use the application key itself")
    return MintedToken(token=token, key_id=key_id, expires_at=datetime.fromtimestamp(float(exp), UTC))
