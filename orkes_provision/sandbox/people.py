"""Users and groups: who they are, what they hold, and what members inherit from their groups.

Users are the records ``PUT /api/users/{id}`` makes (people; their ids are e-mail addresses on
Orkes, the prefix ``app:`` is reserved for applications). A group holds roles and members; a
member holds its groups' roles, and every grant given to the subject ``GROUP <id>``
(``access.granted_access`` looks them up). Members are users, or application users
``app:<appId>`` (whether Orkes lets an application join a group is UNCONFIRMED; the sandbox does,
so a worker can prove on the real request path that a group's grant reaches its members).

Rules from the Orkes docs and the Java SDK's own checks (``OrkesAuthorizationClient``):
``USER_READ_ONLY`` is held alone, by a user that is in no group and by a group without
``defaultAccess``; ``defaultAccess`` keys are ``WORKFLOW_DEF``, ``TASK_DEF`` or ``WORKFLOW_SCHEDULE``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from orkes_provision.sandbox.db import Database, loads_obj
from orkes_provision.sandbox.roles import role_dict

READ_ONLY = "USER_READ_ONLY"
DEFAULT_ACCESS_TARGETS = ("WORKFLOW_DEF", "TASK_DEF", "WORKFLOW_SCHEDULE")


def find_user(db: Database, user_id: str) -> sqlite3.Row | None:
    return db.one("SELECT * FROM users WHERE id = ?", (user_id,))


def find_group(db: Database, group_id: str) -> sqlite3.Row | None:
    return db.one("SELECT * FROM user_groups WHERE id = ?", (group_id,))


def user_roles(db: Database, user_id: str) -> list[str]:
    return [str(r["role"]) for r in db.all("SELECT role FROM user_roles WHERE user_id = ? ORDER BY role", (user_id,))]


def group_roles(db: Database, group_ids: Iterable[str]) -> list[str]:
    ids = list(group_ids)
    if not ids:
        return []
    marks = ", ".join("?" for _ in ids)
    rows = db.all(f"SELECT DISTINCT role FROM group_roles WHERE group_id IN ({marks}) ORDER BY role", ids)  # noqa: S608
    return [str(r["role"]) for r in rows]


def groups_of(db: Database, user_id: str) -> list[str]:
    rows = db.all("SELECT group_id FROM group_members WHERE user_id = ? ORDER BY group_id", (user_id,))
    return [str(r["group_id"]) for r in rows]


def members_of(db: Database, group_id: str) -> list[str]:
    rows = db.all("SELECT user_id FROM group_members WHERE group_id = ? ORDER BY user_id", (group_id,))
    return [str(r["user_id"]) for r in rows]


def group_record(db: Database, row: sqlite3.Row) -> dict[str, Any]:
    group_id = str(row["id"])
    return {"id": group_id, "description": row["description"],
            "roles": [role_dict(db, r) for r in group_roles(db, [group_id])],
            "defaultAccess": loads_obj(str(row["default_access"])), "contactInformation": {}}


def groups_records(db: Database, user_id: str) -> list[dict[str, Any]]:
    out = []
    for group_id in groups_of(db, user_id):
        row = find_group(db, group_id)
        if row is not None:
            out.append(group_record(db, row))
    return out


def user_record(db: Database, row: sqlite3.Row) -> dict[str, Any]:
    """A person's ConductorUser: own roles, and the groups (with their roles) it is in."""
    user_id = str(row["id"])
    return {"id": user_id, "name": row["name"], "roles": [role_dict(db, r) for r in user_roles(db, user_id)],
            "groups": groups_records(db, user_id), "uuid": row["uuid"], "contactInformation": {},
            "applicationUser": False, "encryptedId": False, "encryptedIdDisplayValue": user_id,
            "orkesWorkersApp": False, "orkesApiGateway": False, "orkesApp": False}


def effective_roles(db: Database, own: Iterable[str], user_id: str) -> frozenset[str]:
    """A user's own roles and those of every group it is in."""
    return frozenset(own) | frozenset(group_roles(db, groups_of(db, user_id)))
