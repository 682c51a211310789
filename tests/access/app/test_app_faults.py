"""Faults on every write step of ``provision app``: each run fails clearly or succeeds through
retries, a rerun converges, keys on the server always equal keys in the store, and there is
never a duplicate application."""

from __future__ import annotations

import pytest

from orkes_provision.access.provisioning import provision_app
from orkes_provision.access.spec import app_spec_from_flags
from orkes_provision.credentials.stores import StoredKey
from orkes_provision.credentials.stores.memory import MemoryStore
from orkes_provision.errors import ProvisionError, StoreError
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials, TaskDef
from orkes_provision.orkes.retry import RetryPolicy
from orkes_provision.sandbox.harness import SandboxProcess

NAME = "greetings-worker"
SPEC = app_spec_from_flags(NAME, roles=("WORKER",), tasks=("greetings",))

WRITE_STEPS = {
    "create application": ("POST", r"^/api/applications$"),
    "tag application": ("PUT", r"^/api/applications/[^/]+/tags$"),
    "add role": ("POST", r"^/api/applications/[^/]+/roles/WORKER$"),
    "create key": ("POST", r"^/api/applications/[^/]+/accessKeys$"),
    "grant": ("POST", r"^/api/auth/authorization$"),
}
ACTIONS = ["status-500", "status-503", "drop_after_commit"]


def client_for(sandbox: SandboxProcess) -> OrkesClient:
    # Short back-off keeps the matrix quick; the retry rules themselves are the client's defaults.
    return OrkesClient(Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret),
                       timeout=5.0, retry_policy=RetryPolicy(base=0.01, cap=0.05))


def assert_converged(sandbox: SandboxProcess, client: OrkesClient, store: MemoryStore) -> None:
    apps = [a for a in client.list_applications() if a.name == NAME]
    assert len(apps) == 1, "exactly one application"
    app_id = apps[0].id
    stored = store.load(sandbox.url, NAME)
    assert stored is not None
    assert [k.id for k in client.list_keys(app_id)] == [stored.key_id], "server keys == stored keys"
    assert client.get_app_user(app_id).role_names == {"WORKER"}
    grants = {(g.target.type, g.target.id): set(g.access) for g in client.get_user_permissions(f"app:{app_id}")}
    assert "EXECUTE" in grants[("TASK_DEF", "greetings")]
    assert client.exchange_token(stored.key_id, stored.secret)


def server_keys_match_store(client: OrkesClient, store: MemoryStore) -> None:
    stored = {k.key_id for k in store.keys()}
    on_server = {k.id for a in client.list_applications() if a.name == NAME for k in client.list_keys(a.id)}
    assert on_server == stored, "no orphan key on the server, no dead key in the store"


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("step", list(WRITE_STEPS))
def test_fault_on_write_step_then_rerun_converges(sandbox: SandboxProcess, step: str, action: str) -> None:
    method, path = WRITE_STEPS[step]
    store = MemoryStore()
    with client_for(sandbox) as client:
        client.register_task_defs([TaskDef(name="greetings")])
        if action.startswith("status-"):
            # More failures than the client retries, so the run has to fail.
            sandbox.add_fault(method, path, count=10, action="status", status=int(action[7:]))
        else:
            sandbox.add_fault(method, path, count=1, action="drop_after_commit")
        try:
            provision_app(client, server=sandbox.url, spec=SPEC, store=store)
        except ProvisionError as err:
            assert err.message and err.hint  # a clear error, never a bare exception
            assert "Traceback" not in err.message
        server_keys_match_store(client, store)
        sandbox.clear_faults()
        provision_app(client, server=sandbox.url, spec=SPEC, store=store)
        assert_converged(sandbox, client, store)


class FailingStore(MemoryStore):
    spec = "failing"

    def save(self, key: StoredKey) -> None:
        raise StoreError("disk full while writing the key")


def test_store_write_failure_deletes_the_new_key_then_rerun_converges(sandbox: SandboxProcess) -> None:
    with client_for(sandbox) as client:
        client.register_task_defs([TaskDef(name="greetings")])
        with pytest.raises(StoreError) as err:
            provision_app(client, server=sandbox.url, spec=SPEC, store=FailingStore())
        assert "was deleted on the server" in err.value.message
        app = next(a for a in client.list_applications() if a.name == NAME)
        assert client.list_keys(app.id) == [], "no key may exist whose secret was lost"
        store = MemoryStore()
        provision_app(client, server=sandbox.url, spec=SPEC, store=store)
        assert_converged(sandbox, client, store)
