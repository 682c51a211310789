"""After a killed key creation, only a key the lost request itself could have made is retired (issue 20).

The intent recorded before the create request carries the request's deadline. The next run deletes a
key that no store holds only when it was created inside that window and is the only one there; a key
an operator created later is left alone; where it cannot be sure (two keys in the window, no creation
time, an intent of an older version without a deadline) it deactivates the key and says so, never
deletes it. Every retired key is reported with what was done and why.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from orkes_provision.access.keys import retire_lost_keys
from orkes_provision.credentials.delivery import begin_key_creation, intents_path, pending_key_creations
from orkes_provision.credentials.stores.memory import MemoryStore
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.sandbox.harness import SandboxProcess


def _client(sandbox: SandboxProcess) -> OrkesClient:
    return OrkesClient(Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret))


def _shift_intent(app: str, *, started: timedelta, deadline: timedelta | None) -> None:
    """Move the recorded intent of ``app`` into the past (its start and deadline relative to now)."""
    path = intents_path()
    data = json.loads(path.read_text())
    now = datetime.now(UTC)
    for rows in data.values():
        for row in rows.get(app, []):
            row["time"] = (now + started).isoformat()
            if deadline is None:
                row.pop("deadline", None)
            else:
                row["deadline"] = (now + deadline).isoformat()
    path.write_text(json.dumps(data))


def _setup(sandbox: SandboxProcess, name: str) -> tuple[OrkesClient, str]:
    client = _client(sandbox)
    app = client.create_application(name)
    begin_key_creation(sandbox.url, name, app.id, set(), ["memory:lost"], deadline_seconds=30)
    return client, app.id


def _opener(spec: str) -> MemoryStore:
    return MemoryStore()


def test_a_key_an_operator_created_after_the_lost_requests_deadline_is_left_alone(sandbox: SandboxProcess) -> None:
    client, app_id = _setup(sandbox, "lost-window-operator")
    _shift_intent("lost-window-operator", started=timedelta(minutes=-2), deadline=timedelta(minutes=-2, seconds=30))
    operators = client.create_key(app_id)  # two minutes after the killed run: someone else's key
    retired = retire_lost_keys(client, server=sandbox.url, app_name="lost-window-operator", actor=None,
                               opener=_opener)
    assert retired == []
    assert {(k.id, k.status) for k in client.list_keys(app_id)} == {(operators.id, "ACTIVE")}
    assert pending_key_creations(sandbox.url, "lost-window-operator") == []


def test_the_one_key_made_inside_the_window_is_deleted_and_reported(sandbox: SandboxProcess) -> None:
    client, app_id = _setup(sandbox, "lost-window-one")
    lost = client.create_key(app_id)
    retired = retire_lost_keys(client, server=sandbox.url, app_name="lost-window-one", actor=None, opener=_opener)
    assert [(r.key_id, r.action) for r in retired] == [(lost.id, "deleted")]
    assert "created inside the window" in retired[0].reason
    assert client.list_keys(app_id) == []


def test_two_keys_inside_the_window_are_deactivated_and_reported_not_deleted(sandbox: SandboxProcess) -> None:
    client, app_id = _setup(sandbox, "lost-window-two")
    first, second = client.create_key(app_id), client.create_key(app_id)
    retired = retire_lost_keys(client, server=sandbox.url, app_name="lost-window-two", actor=None, opener=_opener)
    assert sorted((r.key_id, r.action) for r in retired) == sorted([(first.id, "deactivated"),
                                                                    (second.id, "deactivated")])
    assert {(k.id, k.status) for k in client.list_keys(app_id)} == {(first.id, "INACTIVE"), (second.id, "INACTIVE")}


def test_an_intent_without_a_deadline_only_deactivates(sandbox: SandboxProcess) -> None:
    client, app_id = _setup(sandbox, "lost-window-old")
    _shift_intent("lost-window-old", started=timedelta(seconds=-1), deadline=None)
    lost = client.create_key(app_id)
    retired = retire_lost_keys(client, server=sandbox.url, app_name="lost-window-old", actor=None, opener=_opener)
    assert [(r.key_id, r.action) for r in retired] == [(lost.id, "deactivated")]
    assert [(k.id, k.status) for k in client.list_keys(app_id)] == [(lost.id, "INACTIVE")]
