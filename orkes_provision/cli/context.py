"""What every command needs from the global options: credentials and a client."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orkes_provision.cli.common import info, opts
from orkes_provision.credentials.delivery import Choice, Hints
from orkes_provision.credentials.settings import Settings, resolve_credentials
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials

if TYPE_CHECKING:
    from orkes_provision.credentials.stores import StoredKey
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


@dataclass
class KeyHome:
    """An application's key with the server it belongs to (``run``, ``worker run``, ``token``)."""

    server: str
    key: StoredKey
    watch: Callable[[], StoredKey | None]
    hints: Hints


def key_home(app: str, flag: str | None, project: Project | None, tasks: list[str]) -> KeyHome:
    """Where ``app``'s key is, which server it belongs to, and the key (see ``credentials.delivery``)."""
    from orkes_provision.credentials.delivery import (
        choose_key_server,
        choose_store,
        find_stored_key,
        unknown_application,
    )
    from orkes_provision.credentials.stores import open_store
    from orkes_provision.errors import ConfigError, StoreError
    from orkes_provision.orkes.urls import normalize_server_url

    options = opts()
    defaults = project.defaults() if project is not None else None
    near = options.server or (defaults.server if defaults is not None and defaults.for_app(app) else None) \
        or os.environ.get("CONDUCTOR_SERVER_URL", "").strip() or None
    choice = choose_store(flag, app=app, project=defaults,
                          server=normalize_server_url(near, insecure_http=options.insecure_http) if near else None)
    # A name nothing here knows is "unknown", not the failure of the store it was guessed to be in.
    unknown = unknown_application(app, choice)
    try:
        store = open_store(choice.value)
        server = choose_key_server(app=app, store=store, flag=options.server, project=defaults,
                                   credentials_server=credentials_server, insecure_http=options.insecure_http)
        hints = Hints(app=app, store=choice.value, options=hint_options(), server=server.value, tasks=tuple(tasks))
        if choice.source != "--store" or server.source != "--server":
            info(f"provision: key of {app} in {choice.value} (from {choice.source}), for {server.value} "
                 f"(from {server.source})")
        key = find_stored_key(store, server.value, app)
    except StoreError:
        if unknown is not None:
            raise unknown from None
        raise
    if key is None and unknown is not None:
        raise unknown
    if key is None:
        raise ConfigError(f"no key for application {app!r} on {server.value} in {store.describe(server.value, app)}",
                          f"create one: {hints.create_app('--worker')}")
    stored_under = key.server

    def watch() -> StoredKey | None:
        return store.load(stored_under, app)

    return KeyHome(server=server.value, key=key, watch=watch, hints=hints)
