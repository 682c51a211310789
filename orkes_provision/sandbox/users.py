"""The application user ``app:<appId>``: where an application's roles live."""

from __future__ import annotations

import sqlite3
from typing import Any

from orkes_provision.sandbox.access import ROLES, app_roles, app_user_id
from orkes_provision.sandbox.state import SandboxState


def role_dict(role: str) -> dict[str, Any]:
    return {"name": role, "permissions": [{"name": p} for p in ROLES.get(role, [])]}


def user_record(st: SandboxState, app_row: sqlite3.Row) -> dict[str, Any]:
    app_id = str(app_row["id"])
    return {
        "id": app_user_id(app_id), "name": app_row["name"],
        "roles": [role_dict(r) for r in app_roles(st.db, app_id)],
        "groups": [], "uuid": app_id, "applicationUser": True, "encryptedId": False,
        "encryptedIdDisplayValue": app_user_id(app_id), "contactInformation": {},
        "orkesApp": False, "orkesWorkersApp": False, "orkesApiGateway": False,
    }
