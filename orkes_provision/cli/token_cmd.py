"""``provision token``: a short-lived Orkes token minted from an application's stored key."""

from __future__ import annotations

from datetime import timedelta

import click

from orkes_provision.cli.common import APP_NAME, DURATION, STORE_KINDS, common_options, emit, info, opts


@click.command("token")
@click.argument("app", type=APP_NAME)
@click.option("--ttl", type=DURATION, default="15m", show_default=True, metavar="DURATION",
              help="How long the token lives, at most max_token_ttl of the config file (default maximum 1h).")
@click.option("--store", "store_spec", metavar="SPEC",
              help=f"Where APP's key is (default: where this machine delivered it, else the keyring): {STORE_KINDS}.")
@click.option("--show-token", is_flag=True, help="Allow printing the token to a terminal.")
@common_options
def token(app: str, ttl: timedelta, store_spec: str | None, show_token: bool) -> None:
    """Print a short-lived token for APP, minted from its stored key (the secret is never printed).

    The token alone goes to stdout (with --json: token, keyId, expiresAt), for a CI step or
    curl's X-Authorization header; it is refused on a terminal without --show-token. The key is
    sent only to the server it was delivered for.

    \b
    Examples:
      TOKEN=$(provision token deployer --ttl 15m)
      curl -H "X-Authorization: $TOKEN" "$CONDUCTOR_SERVER_URL/workflow/..."
    """
    from orkes_provision.cli.common import stdout_is_tty
    from orkes_provision.cli.context import key_home, request_timeout
    from orkes_provision.credentials.settings import Settings, load_config
    from orkes_provision.credentials.tokens import check_ttl, max_ttl, mint_token
    from orkes_provision.errors import UsageError
    from orkes_provision.orkes.client import OrkesClient
    from orkes_provision.orkes.models import Credentials

    if stdout_is_tty() and not show_token:
        raise UsageError("provision token prints a token, and stdout is a terminal",
                         "capture it (TOKEN=$(provision token APP)), or add --show-token to print it here")
    config_file = Settings().config_file
    maximum, where = max_ttl(load_config(config_file), str(config_file))
    check_ttl(ttl, maximum, where=where)
    home = key_home(app, store_spec, None, [])
    key = home.key
    credentials = Credentials(server=home.server, key_id=key.key_id.strip(), secret=key.secret)
    with OrkesClient(credentials, deadline=request_timeout(), insecure_http=opts().insecure_http) as client:
        minted = mint_token(client, credentials.key_id, credentials.secret, ttl)
    info(f"token for {app} (key {minted.key_id}) expires at {minted.expires_at.isoformat(timespec='seconds')}")
    emit(minted.to_dict() | {"app": app, "server": home.server}, minted.token.get_secret_value())
