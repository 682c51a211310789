"""What every command needs from the global options: credentials and a client."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from orkes_provision.cli.common import opts
from orkes_provision.credentials.delivery import Choice, ProjectDefaults
from orkes_provision.credentials.settings import Settings, resolve_credentials
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials

if TYPE_CHECKING:
    from orkes_provision.workers.project import Project


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


def hint_options() -> tuple[str, ...]:
    """The global options a printed command needs to find these credentials in a fresh shell."""
    profile = opts().profile or Settings().profile
    return ("--profile", profile) if profile else ()


def credentials_server() -> Choice | None:
    """The server of the provisioning credentials and where they came from; ``None`` when there are none.

    Never ``--server`` from a project file: a credential is sent only to the server it came with.
    """
    from orkes_provision.errors import ConfigError, StoreError

    options = opts()
    try:
        credentials = resolve_server_credentials()
    except (ConfigError, StoreError):
        return None
    profile = options.profile or Settings().profile
    source = (f"profile {profile!r}" if profile else "--server" if options.server else
              "CONDUCTOR_SERVER_URL" if Settings().auth_key else "the default profile")
    return Choice(credentials.server, f"the provisioning credentials ({source})")


def project_defaults(project: Project | None) -> ProjectDefaults | None:
    return project.defaults() if project is not None else None
