"""``--force`` retires only a key the displaced file proves it holds (issue 20).

Key ids are not secret. A file naming another application's key id, or the admin key's id, with a
made-up secret must not make ``provision app --force`` deactivate that key: the file's secret has to
authenticate the key on the file's server, and the key has to belong to the application the file names.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from orkes_provision.credentials.stores.base import StoredKey
from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision


def _admin(sandbox: SandboxProcess) -> OrkesClient:
    return OrkesClient(Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret))


def _status(client: OrkesClient, app_id: str, key_id: str) -> str:
    return {k.id: k.status for k in client.list_keys(app_id)}[key_id]


def test_force_does_not_retire_the_admin_key_a_file_names_with_a_made_up_secret(sandbox: SandboxProcess,
                                                                                 tmp_path: Path) -> None:
    client = _admin(sandbox)
    admin_app = client.get_application_by_key(sandbox.admin_key_id)
    planted = tmp_path / "planted.env"
    EnvFileStore(planted).save(StoredKey(sandbox.url, admin_app.name, sandbox.admin_key_id, SecretStr("made-up")))
    result = provision(["app", "forced-app", "--worker", "--store", f"env-file:{planted}", "--force"],
                       env=sandbox.admin_env, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert f"did not retire key {sandbox.admin_key_id}" in result.stdout, result.stdout
    assert _status(client, admin_app.id, sandbox.admin_key_id) == "ACTIVE"
    assert provision(["apps", "list"], env=sandbox.admin_env).returncode == 0  # the admin is not locked out


def test_force_does_not_retire_another_applications_key_named_by_id_only(sandbox: SandboxProcess,
                                                                         tmp_path: Path) -> None:
    client = _admin(sandbox)
    billing = client.create_application("billing-proof")
    billing_key = client.create_key(billing.id)
    planted = tmp_path / "planted.env"
    EnvFileStore(planted).save(StoredKey(sandbox.url, "billing-proof", billing_key.id, SecretStr("not-its-secret")))
    result = provision(["app", "forced-other", "--worker", "--store", f"env-file:{planted}", "--force", "--json"],
                       env=sandbox.admin_env, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert '"retired": false' in result.stdout, result.stdout
    assert _status(client, billing.id, billing_key.id) == "ACTIVE"


def test_force_retires_a_key_the_file_proves_it_holds(sandbox: SandboxProcess, tmp_path: Path) -> None:
    client = _admin(sandbox)
    billing = client.create_application("billing-held")
    billing_key = client.create_key(billing.id)
    held = tmp_path / "held.env"
    EnvFileStore(held).save(StoredKey(sandbox.url, "billing-held", billing_key.id, billing_key.secret))
    result = provision(["app", "forced-held", "--worker", "--store", f"env-file:{held}", "--force"],
                       env=sandbox.admin_env, cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert f"retired key {billing_key.id} of billing-held" in result.stdout
    assert _status(client, billing.id, billing_key.id) == "INACTIVE"
