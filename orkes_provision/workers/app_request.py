"""What ``provision app`` was asked for, once the project file's defaults are applied.

The command's flags name the application, roles and grants; in a project (``orkes-provision.toml``)
the application's name, store and server default to the file's, and the roles and grants it
declares for its own application are added. This module resolves all of that, and the commands
printed as next steps, so that the command only parses, calls and renders.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from orkes_provision.access.spec import AppSpec, app_spec_from_flags
from orkes_provision.credentials.delivery import (
    Choice,
    Hints,
    ProjectDefaults,
    check_project_server,
    choose_app_name,
    choose_store,
)
from orkes_provision.credentials.stores import CredentialStore, open_store
from orkes_provision.errors import StoreError, UsageError
from orkes_provision.workers.project import Project


@dataclass(frozen=True)
class AppRequest:
    """The application to make ready: its spec, where its name came from, and the project it is in."""

    spec: AppSpec
    name: Choice
    project: Project | None = None

    @property
    def defaults(self) -> ProjectDefaults | None:
        return self.project.defaults() if self.project is not None else None

    @property
    def declared(self) -> bool:
        """The project file declares this very application (its [application] section)."""
        return self.project is not None and self.project.application is not None \
            and self.project.app_name == self.spec.name

    def store(self, flag: str | None, *, server: Choice) -> Choice:
        """Where the key goes (``--store``, the environment, the project, a delivery, the default), once the
        project file's server for this application is checked against ``server``, the one in use."""
        check_project_server(self.defaults, self.spec.name, server)
        return choose_store(flag, app=self.spec.name, server=server.value, project=self.defaults)

    def hints(self, *, server: str, store: Choice, options: tuple[str, ...]) -> Hints:
        """The next steps printed after the application is ready."""
        hints = Hints(app=self.spec.name, store=store.value, options=options, server=server,
                      tasks=tuple(self.spec.task_names))
        if self.declared and self.project is not None and self.project.workers:
            # The project runs its workers itself: its first worker is the next step, not a bare 'run'.
            store_flag = ("--store", store.value) if store.source == "--store" else ()
            hints = replace(hints, next_run=hints.command("worker", "run", self.project.workers[0].name, *store_flag))
        return hints


def app_request(name: str | None, *, project: Project | None, worker: bool = False, roles: tuple[str, ...] = (),
                grants: tuple[str, ...] = (), access: tuple[str, ...] = (), app_id: str | None = None,
                new_key: bool = False, workflows: tuple[str, ...] = ()) -> AppRequest:
    """The application the flags ask for; in ``project``, with what its file declares for its application.

    The name is the argument, else the project's application, else ``<first granted task>-worker``.
    Flags add to what the file declares; nothing declared is ever taken away here.
    """
    if any(not g.strip() for g in grants):
        raise UsageError("a task name given to --grant is empty",
                         "pass the task definition name, e.g. --grant greetings")
    chosen = choose_app_name(name, project=project.defaults() if project is not None else None, tasks=grants)
    all_roles = (("WORKER",) if worker else ()) + roles
    declared = project.application if project is not None and project.app_name == chosen.value else None
    if declared is not None:
        all_roles = tuple(dict.fromkeys((*declared.roles, *all_roles)))
        grants = tuple(dict.fromkeys((*declared.grants, *grants)))
    spec = app_spec_from_flags(chosen.value, roles=all_roles, tasks=grants, access=access, app_id=app_id,
                               new_key=new_key, workflows=workflows)
    return AppRequest(spec=spec, name=chosen, project=project)


def open_app_store(store: Choice, *, show_secret: bool, dry_run: bool) -> tuple[CredentialStore | None, str]:
    """The store the key goes into, and a note when a dry run plans without it.

    A dry run reads no secret: when the store cannot be opened here (no keyring backend), it plans
    from the deliveries record instead (``None``, with the note saying so); a real run stops.
    """
    try:
        return open_store(store.value, show_secret=show_secret), ""
    except StoreError as err:
        if not dry_run:
            raise
        return None, (f"Key store {store.value} cannot be opened here ({err.message}); "
                      "planning from the deliveries record")
