"""Finding and removing every ``orkes-provision-probe-*`` object, whoever's run left it."""

from __future__ import annotations

import contextlib

from orkes_provision.errors import NotFound, ProvisionError
from orkes_provision.orkes.client import OrkesClient

PREFIX = "orkes-provision-probe"


def _ours(name: object) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def remove_probe_objects(client: OrkesClient) -> list[str]:
    """Delete every probe application, task and workflow definition, group and user; return what went.

    Applications go first: their grants and keys go with them. A failure to delete one object is
    left for the next run (it is named, so it is found again), not raised.
    """
    removed: list[str] = []

    def attempt(what: str, action: object) -> None:
        assert callable(action)
        with contextlib.suppress(NotFound):
            try:
                action()
            except ProvisionError:
                return
            removed.append(what)

    for app in client.list_applications():
        if _ours(app.name):
            attempt(f"application {app.name} ({app.id})", lambda a=app.id: client.delete_application(a))
    for group in client.list_groups():
        if _ours(group.id):
            attempt(f"group {group.id}", lambda g=group.id: client.delete_group(g))
    for user in client.list_users():
        if _ours(user.id):
            attempt(f"user {user.id}", lambda u=user.id: client.delete_user(u))
    for definition in client.list_workflow_defs():
        name, version = definition.get("name"), definition.get("version")
        if _ours(name) and isinstance(version, int):
            attempt(f"workflow definition {name} v{version}",
                    lambda n=name, v=version: client.delete_workflow_def(str(n), v))
    for task_def in client.list_task_defs():
        if _ours(task_def.name):
            attempt(f"task definition {task_def.name}", lambda t=task_def.name: client.delete_task_def(t))
    return removed
