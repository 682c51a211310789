"""What every command needs from the global options: credentials and a client."""

from __future__ import annotations

from orkes_provision.cli.common import opts
from orkes_provision.credentials.settings import Settings, resolve_credentials
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials


def resolve_server_credentials() -> Credentials:
    """The provisioning credentials for ``--server``/``--profile``/``--insecure-http`` (see ``settings``)."""
    options = opts()
    return resolve_credentials(server=options.server, profile=options.profile, insecure_http=options.insecure_http)


def make_client(credentials: Credentials | None = None) -> OrkesClient:
    """A client authenticated with ``credentials``, else with those the global options resolve to."""
    credentials = credentials or resolve_server_credentials()
    return OrkesClient(credentials, timeout=Settings().timeout)
