"""Roles: the system roles (``access.ROLES``) and custom roles, a name with a list of permissions.

What the sources say about custom roles (orkes-io/docs ``access-control-and-security/custom-roles.mdx``;
conductor-python ``http/api/role_resource_api.py`` and ``tests/integration/test_authorization_client_intg.py``):

- Only admins manage them ("This feature is only available to Admins").
- The name is "uppercase with underscores between words" and cannot change after creation.
- Permissions are named ``<ACTION>_<RESOURCE>`` (``READ_WORKFLOW_DEF``, ``EXECUTE_WORKFLOW_DEF``);
  the SDK's test against a real server says "workflow:read" is rejected as invalid.
- "Every custom role automatically includes Event Handlers - Create and User Forms - Create, and
  these permissions cannot be removed" (``IMPLICIT``).
- They are given to users, groups and applications like system roles.

The catalogue below is the docs' table of resources and actions in that naming; the names the docs
do not spell out (all but READ/EXECUTE_WORKFLOW_DEF, CREATE_TASK_DEF, CREATE_WORKFLOW_DEF,
CREATE_USER_FORM_TEMPLATE, CREATE_SECRET, CREATE_INTEGRATION, CREATE_APPLICATION) are UNCONFIRMED.
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

from orkes_provision.sandbox.access import ROLES
from orkes_provision.sandbox.db import Database

# Resource -> the actions a custom role may hold on it (custom-roles.mdx, "Resource permissions" and
# "Access control permissions").
_CRUD = ("CREATE", "READ", "UPDATE", "DELETE")
CATALOGUE: dict[str, tuple[str, ...]] = {
    "AGENT": (*_CRUD, "EXECUTE"),
    "PROMPT": _CRUD,
    "API_GATEWAY_SERVICE": _CRUD,
    "AUTH_CONFIG": _CRUD,
    "ENV_VARIABLE": _CRUD,
    "EVENT_HANDLER": _CRUD,
    "INTEGRATION": (*_CRUD, "EXECUTE"),
    "SCHEMA": _CRUD,
    "SECRET": _CRUD,
    "TASK_DEF": (*_CRUD, "EXECUTE"),
    "USER_FORM_TEMPLATE": _CRUD,
    "WORKFLOW_DEF": (*_CRUD, "EXECUTE"),
    "WORKFLOW_SCHEDULE": _CRUD,
    "APPLICATION": _CRUD,
    "GROUP": ("READ",),
    "ROLE": ("READ",),
    "USER": ("READ",),
}
PERMISSIONS: frozenset[str] = frozenset(f"{action}_{resource}" for resource, actions in CATALOGUE.items()
                                        for action in actions)
IMPLICIT: tuple[str, ...] = ("CREATE_EVENT_HANDLER", "CREATE_USER_FORM_TEMPLATE")
NAME = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")


def catalogue() -> dict[str, Any]:
    """``GET /api/roles/permissions``: resource -> ``{"permissions": [...]}``. conductor-python types the
    answer as ``Dict[str, Dict]`` (``authorization_client.py``); the inner shape is UNCONFIRMED."""
    return {resource: {"permissions": [f"{action}_{resource}" for action in actions]}
            for resource, actions in CATALOGUE.items()}


def find_custom(db: Database, name: str) -> sqlite3.Row | None:
    return db.one("SELECT * FROM custom_roles WHERE name = ?", (name,))


def custom_names(db: Database) -> list[str]:
    return [str(r["name"]) for r in db.all("SELECT name FROM custom_roles ORDER BY name")]


def is_role(db: Database, name: str) -> bool:
    return name in ROLES or find_custom(db, name) is not None


def known_roles(db: Database) -> list[str]:
    return [*ROLES, *custom_names(db)]


def permissions_of(db: Database, name: str) -> list[str]:
    if name in ROLES:
        return list(ROLES[name])
    row = find_custom(db, name)
    return list(json.loads(str(row["permissions"]))) if row is not None else []


def role_dict(db: Database, name: str) -> dict[str, Any]:
    """A ``Role`` as Orkes answers it: ``{name, permissions: [{name}]}``."""
    return {"name": name, "permissions": [{"name": p} for p in permissions_of(db, name)]}


def holders(db: Database, name: str) -> list[str]:
    """Who holds the role: ``user <id>``, ``group <id>``, ``application <id>``."""
    out = [f"user {r['user_id']}" for r in db.all("SELECT user_id FROM user_roles WHERE role = ? ORDER BY user_id",
                                                  (name,))]
    out += [f"group {r['group_id']}" for r in db.all("SELECT group_id FROM group_roles WHERE role = ? "
                                                     "ORDER BY group_id", (name,))]
    out += [f"application {r['app_id']}" for r in db.all("SELECT app_id FROM app_roles WHERE role = ? ORDER BY app_id",
                                                         (name,))]
    return out
