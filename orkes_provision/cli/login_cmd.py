"""``provision login``: store provisioning credentials for a profile."""

from __future__ import annotations

import os
import sys

import click
from pydantic import SecretStr

from orkes_provision.cli.common import KEY_ID, common_options, emit, info, opts
from orkes_provision.errors import UsageError


@click.command("login")
@click.option("--key-id", metavar="ID", type=KEY_ID, help="The access key id (prompted for when omitted).")
@click.option("--secret-stdin", is_flag=True,
              help="Read the secret from stdin (what happens anyway when stdin is not a terminal; "
                   "a terminal always gets a hidden prompt).")
@click.option("--no-verify", is_flag=True, help="Store without checking the key against the server first.")
@common_options
def login(key_id: str | None, secret_stdin: bool, no_verify: bool) -> None:
    """Store the provisioning (admin) key of a profile: key id in the config file, secret in the keyring.

    The secret is read from a hidden prompt, or from stdin, never from the command line. The key is
    checked by a token exchange before anything is saved. Without --profile the profile is 'default'.

    \b
    Example:
      provision login --profile prod --server https://acme.orkesconductor.io --key-id 4f1c...
      printf '%s' "$SECRET" | provision login --profile ci --server https://acme.orkesconductor.io/api --key-id 4f1c...
    """
    from orkes_provision.credentials.settings import DEFAULT_PROFILE, Settings, keyring_location, save_profile
    from orkes_provision.orkes.client import OrkesClient
    from orkes_provision.orkes.models import Credentials
    from orkes_provision.orkes.urls import normalize_server_url

    options = opts()
    name = options.profile or Settings.from_env(os.environ).profile or DEFAULT_PROFILE
    raw_server = options.server or os.environ.get("CONDUCTOR_SERVER_URL", "").strip() or None
    if raw_server is None:
        if not sys.stdin.isatty():
            raise UsageError("no server URL given", "pass --server https://HOST/api (or set CONDUCTOR_SERVER_URL)")
        raw_server = click.prompt("Server URL (https://HOST/api)")
    server = normalize_server_url(raw_server, insecure_http=options.insecure_http)
    if not key_id:
        if not sys.stdin.isatty():
            raise UsageError("no key id given", "pass --key-id ID (the secret comes from stdin)")
        key_id = click.prompt("Key id")
    key_id = key_id.strip()
    secret = _read_secret(secret_stdin)
    if not key_id:
        raise UsageError("the key id is empty", "copy it from Access Control > Applications in the Orkes UI")
    credentials = Credentials(server=server, key_id=key_id, secret=secret)
    if not no_verify:
        from orkes_provision.cli.context import request_timeout

        with OrkesClient(credentials, deadline=request_timeout(), insecure_http=options.insecure_http) as client:
            client.exchange_token(key_id, secret)
        info(f"Key {key_id} is accepted by {server}.")
    profile = save_profile(name, server, key_id, secret)
    location = keyring_location(profile)
    emit({"profile": profile.name, "server": profile.server, "keyId": profile.key_id, "secretIn": location,
          "verified": not no_verify},
         f"Saved profile '{profile.name}' for {profile.server} (key {profile.key_id}); "
         f"the secret is in the {location}.")


def _read_secret(from_stdin: bool) -> SecretStr:
    # A terminal always gets the hidden prompt, even with --secret-stdin: reading a line from it
    # would echo the secret on the screen. From a pipe, only the first line counts: a trailing
    # newline from echo or a here-string is not part of the secret.
    interactive = sys.stdin.isatty()
    value = click.prompt("Key secret", hide_input=True) if interactive else sys.stdin.readline()
    value = value.strip()
    if not value:
        raise UsageError("the secret is empty", "type or pipe the key secret (it is never taken from the command line)")
    return SecretStr(value)
