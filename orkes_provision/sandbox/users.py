"""The application user ``app:<appId>``: where an application's roles live."""

from __future__ import annotations

import sqlite3
from typing import Any

from orkes_provision.sandbox.access import app_roles, app_user_id
from orkes_provision.sandbox.people import groups_records
from orkes_provision.sandbox.roles import role_dict
from orkes_provision.sandbox.state import SandboxState


def user_record(st: SandboxState, app_row: sqlite3.Row) -> dict[str, Any]:
    app_id = str(app_row["id"])
    return {
        "id": app_user_id(app_id), "name": app_row["name"],
        "roles": [role_dict(st.db, r) for r in app_roles(st.db, app_id)],
        "groups": groups_records(st.db, app_user_id(app_id)), "uuid": app_id, "applicationUser": True,
        "encryptedId": False, "encryptedIdDisplayValue": app_user_id(app_id), "contactInformation": {},
        "orkesApp": False, "orkesWorkersApp": False, "orkesApiGateway": False,
    }
