"""``grant``/``revoke`` in process: targets from flags, only missing (or held) access kept, the report."""

from __future__ import annotations

from typing import Any

import pytest

from orkes_provision.access.grants import AccessChange, grant_targets, plan_access_change
from orkes_provision.access.spec import GrantSpec
from orkes_provision.errors import NotFound, UsageError
from orkes_provision.orkes.models import AccessKey, Application, GrantedAccess, Subject, Target, TaskDef, User

APP = Application(id="id-1", name="billing")


class FakeClient:
    """Answers the reads of one application holding READ+EXECUTE on task charge; records writes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[str]]] = []

    def list_applications(self) -> list[Application]:
        return [APP]

    def get_application(self, app_id: str) -> Application:
        assert app_id == APP.id
        return APP

    def list_task_defs(self) -> list[TaskDef]:
        return [TaskDef(name="charge"), TaskDef(name="refund")]

    def get_app_user(self, app_id: str) -> User:
        return User(id=f"app:{app_id}", name="billing")

    def get_user_permissions(self, user_id: str) -> list[GrantedAccess]:
        return [GrantedAccess(target=Target(type="TASK_DEF", id="charge"), access=["READ", "EXECUTE"])]

    def list_keys(self, app_id: str) -> list[AccessKey]:
        return []

    def grant(self, subject: Subject, target: Target, access: list[str]) -> None:
        self.calls.append(("grant", target.id, access))

    def revoke(self, subject: Subject, target: Target, access: list[str]) -> None:
        self.calls.append(("revoke", target.id, access))


def _client() -> Any:
    return FakeClient()


def test_targets_from_the_flags_each_with_the_access_given_or_execute() -> None:
    specs = grant_targets(tasks=("charge",), workflows=("flow",), tags=("team:pay",), domains=("staging",))
    assert [(s.type, s.id, s.access) for s in specs] == [
        ("TASK_DEF", "charge", ("EXECUTE",)), ("WORKFLOW_DEF", "flow", ("EXECUTE",)),
        ("TAG", "team:pay", ("EXECUTE",)), ("DOMAIN", "staging", ("EXECUTE",))]
    with pytest.raises(UsageError, match="no target given"):
        grant_targets()
    with pytest.raises(UsageError, match="invalid access"):
        grant_targets(tasks=("charge",), access=("FLY",))


def test_a_grant_keeps_only_missing_access_and_says_what_it_did() -> None:
    client = _client()
    change = plan_access_change(client, "billing", [GrantSpec(id="charge", access=("EXECUTE", "UPDATE")),
                                                    GrantSpec(id="refund")], revoke=False)
    change.apply(client, server="https://s/api", actor="k-admin")
    assert client.calls == [("grant", "charge", ["UPDATE"]), ("grant", "refund", ["EXECUTE"])]
    assert change.render().splitlines() == ["Granted UPDATE on TASK_DEF charge to billing",
                                            "Granted EXECUTE on TASK_DEF refund to billing"]
    assert change.to_dict()["changed"][0] == {"type": "TASK_DEF", "id": "charge", "access": ["UPDATE"]}


def test_a_revoke_keeps_only_held_access_and_asks_about_it() -> None:
    change = plan_access_change(_client(), "id-1", [GrantSpec(id="charge", access=("EXECUTE", "UPDATE"))],
                                revoke=True)
    assert change.todo == [(GrantSpec(id="charge", access=("EXECUTE", "UPDATE")), ["EXECUTE"])]
    assert change.question == "Revoke EXECUTE on TASK_DEF charge from billing? Its workers lose that access at once."
    nothing = AccessChange(app=APP, revoke=True, todo=[])
    assert nothing.render() == "No changes: billing already lacks that access."


def test_a_grant_on_a_task_definition_the_server_lacks_stops_before_any_write() -> None:
    client = _client()
    with pytest.raises(NotFound, match="not found on the server: ghost; nothing was granted"):
        plan_access_change(client, "billing", [GrantSpec(id="ghost")], revoke=False)
    assert client.calls == []
