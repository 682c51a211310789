"""What every command needs from the global options: credentials and a client."""

from __future__ import annotations

import os

from orkes_provision.cli.common import opts
from orkes_provision.credentials.settings import Settings, resolve_credentials
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials


def resolve_server_credentials() -> Credentials:
    """The provisioning credentials for ``--server``/``--profile``/``--insecure-http`` (see ``settings``)."""
    options = opts()
    return resolve_credentials(server=options.server, profile=options.profile, insecure_http=options.insecure_http)


def request_timeout() -> float:
    """Seconds a request may take, retries and waits included: --timeout, else ORKES_PROVISION_TIMEOUT, else 30."""
    options = opts()
    return options.timeout if options.timeout is not None else Settings.from_env(os.environ).timeout


def make_client(credentials: Credentials | None = None) -> OrkesClient:
    """A client authenticated with ``credentials``, else with those the global options resolve to."""
    credentials = credentials or resolve_server_credentials()
    return OrkesClient(credentials, deadline=request_timeout(), insecure_http=opts().insecure_http)
