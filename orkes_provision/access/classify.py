"""What each kind of planned change does to access, for a CI job to gate on (``plan --fail-on``).

Classes: ``grants-access`` (someone gains a role, a grant, a group's access, or a role they hold gains a
permission), ``removes-access`` (someone loses one, or an application goes with its keys), ``key``
(a key is created or rotated), ``destructive`` (something is deleted for good). A change may be in
several classes or in none (registering a definition, tagging, renaming, creating a role).
``PLAN_SCHEMA_VERSION`` is the version of ``plan --json``'s shape: it changes when a field changes meaning or goes away.
"""

from __future__ import annotations

from typing import get_args

from orkes_provision.access.changes import Change, ChangeKind, UpdateRole
from orkes_provision.errors import UsageError

PLAN_SCHEMA_VERSION = 1
CLASSES = ("grants-access", "removes-access", "key", "destructive")

_BY_KIND: dict[str, tuple[str, ...]] = {
    "register_task": (), "update_task": (), "register_workflow": (), "update_workflow": (),
    "create_app": (), "tag_app": (), "create_user": (), "update_user": (), "create_group": (), "update_group": (),
    "add_role": ("grants-access",), "grant": ("grants-access",), "add_user_role": ("grants-access",),
    "add_group_role": ("grants-access",), "add_member": ("grants-access",),
    "create_key": ("grants-access", "key"), "rotate_key": ("key",),
    "revoke": ("removes-access",), "remove_role": ("removes-access",), "remove_user_role": ("removes-access",),
    "remove_group_role": ("removes-access",), "remove_member": ("removes-access",),
    "delete_app": ("removes-access", "destructive"),
    # A new role gives no one anything until someone is given it; an update is classed by what it does.
    "create_role": (), "update_role": (),
}
assert set(_BY_KIND) == set(get_args(ChangeKind)), "every kind of change needs its classes"


def classes_of(change: Change) -> tuple[str, ...]:
    if isinstance(change, UpdateRole):  # every holder of the role gains or loses what it changes
        return (("grants-access",) if change.added else ()) + (("removes-access",) if change.removed else ())
    return _BY_KIND[change.kind]


def parse_fail_on(value: str) -> tuple[str, ...]:
    """``removes-access,destructive`` as a tuple of classes; ``UsageError`` naming an unknown one."""
    wanted = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    unknown = [v for v in wanted if v not in CLASSES]
    if not wanted:
        raise UsageError("--fail-on names no class of change", f"give a comma-separated list of {', '.join(CLASSES)}")
    if unknown:
        raise UsageError(f"--fail-on: {', '.join(unknown)} is not a class of change",
                         f"give a comma-separated list of {', '.join(CLASSES)}")
    return wanted
