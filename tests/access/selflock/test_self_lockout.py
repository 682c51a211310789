"""No self-lockout: apply --prune, revoke, keys deactivate|delete and apps delete refuse to take access from the
key running them unless --allow-self-lockout; plan marks such a change. Through the CLI against the sandbox,
whose bootstrap admin application (sandbox-admin) is the provisioning key."""

from __future__ import annotations

import json
from pathlib import Path

from orkes_provision.orkes.models import TaskDef
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import provision
from tests.environments.apply.helpers import admin_client

OWNS_ADMIN = 'name = "lockenv"\n\n[[applications]]\nname = "sandbox-admin"\nroles = {roles}\n'
OTHER = 'name = "lockenv"\n\n[[applications]]\nname = "lock-other"\nroles = ["WORKER"]\n'


def run(sandbox: SandboxProcess, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = provision(list(args), env=sandbox.admin_env, cwd=tmp_path, timeout=120)
    return result.returncode, result.stdout, result.stderr


def adopt_admin(sandbox: SandboxProcess, tmp_path: Path) -> None:
    """The environment takes the provisioning application as its own (apply tags it)."""
    (tmp_path / "env.toml").write_text(OWNS_ADMIN.format(roles='["ADMIN"]'))
    code, out, err = run(sandbox, tmp_path, "apply", "-f", "env.toml", "--yes")
    assert code == 0, out + err


def test_apply_prune_refuses_to_delete_the_application_of_its_own_key(sandbox: SandboxProcess,
                                                                       tmp_path: Path) -> None:
    adopt_admin(sandbox, tmp_path)
    (tmp_path / "env.toml").write_text(OTHER)
    code, out, err = run(sandbox, tmp_path, "plan", "-f", "env.toml", "--prune", "--json")
    assert code == 0, err
    (marked,) = [c for c in json.loads(out)["changes"] if "selfLockout" in c]
    assert (marked["action"], marked["target"]) == ("delete_app", "sandbox-admin")
    assert sandbox.admin_key_id in marked["selfLockout"]
    code, out, _ = run(sandbox, tmp_path, "plan", "-f", "env.toml", "--prune")
    assert "- delete application sandbox-admin (" in out and "[!] self-lockout: deletes the application of the " \
        f"key running this command ({sandbox.admin_key_id})" in out
    mark = sandbox.mark()
    code, out, err = run(sandbox, tmp_path, "apply", "-f", "env.toml", "--prune", "--yes")
    assert code == 7, out + err
    assert "error: refusing to delete application sandbox-admin (" in err
    assert "--allow-self-lockout" in err
    assert sandbox.write_requests(since=mark) == []  # not even lock-other was created
    assert sandbox.admin_key_id in {k.id for k in admin_client(sandbox).list_keys(
        next(a.id for a in admin_client(sandbox).list_applications() if a.name == "sandbox-admin"))}


def test_apply_prune_refuses_to_remove_its_own_admin_role(sandbox: SandboxProcess, tmp_path: Path) -> None:
    adopt_admin(sandbox, tmp_path)
    (tmp_path / "env.toml").write_text(OWNS_ADMIN.format(roles='["METADATA_API"]'))
    code, out, err = run(sandbox, tmp_path, "apply", "-f", "env.toml", "--prune", "--yes")
    assert code == 7, out + err
    assert "refusing to remove role ADMIN from sandbox-admin" in err
    code, out, err = run(sandbox, tmp_path, "apply", "-f", "env.toml", "--yes")  # without --prune: no removal
    assert code == 0, out + err
    assert "ADMIN" in {r["name"] for r in admin_client(sandbox).user_info()["roles"]}


def test_keys_deactivate_and_delete_refuse_the_key_running_them(sandbox: SandboxProcess, tmp_path: Path) -> None:
    for verb in ("deactivate", "delete"):
        mark = sandbox.mark()
        code, out, err = run(sandbox, tmp_path, "keys", verb, "sandbox-admin", sandbox.admin_key_id, "--yes")
        assert code == 7, out + err
        assert err.startswith(f"error: refusing to {verb} key {sandbox.admin_key_id} of sandbox-admin: it is the key "
                              "this command uses")
        assert sandbox.write_requests(since=mark) == []


def test_revoke_refuses_its_own_application_unless_allowed(sandbox: SandboxProcess, tmp_path: Path) -> None:
    admin_client(sandbox).register_task_defs([TaskDef(name="lock-task")])
    code, out, err = run(sandbox, tmp_path, "grant", "sandbox-admin", "lock-task", "--access", "READ")
    assert code == 0, out + err
    code, out, err = run(sandbox, tmp_path, "revoke", "sandbox-admin", "lock-task", "--access", "READ", "--yes")
    assert code == 7, out + err
    assert "refusing to revoke access of application sandbox-admin" in err
    code, out, err = run(sandbox, tmp_path, "revoke", "sandbox-admin", "lock-task", "--access", "READ", "--yes",
                         "--allow-self-lockout")
    assert code == 0, out + err
    assert "Revoked READ on TASK_DEF lock-task from sandbox-admin" in out


def test_apps_delete_of_another_application_is_not_a_lockout(sandbox: SandboxProcess, tmp_path: Path) -> None:
    code, out, err = run(sandbox, tmp_path, "app", "lock-victim", "--role", "WORKER")
    assert code == 0, out + err
    code, out, err = run(sandbox, tmp_path, "apps", "delete", "lock-victim", "--yes")
    assert code == 0, out + err
    code, out, err = run(sandbox, tmp_path, "apps", "delete", "sandbox-admin", "--yes")
    assert code == 7 and "--allow-self-lockout" in err
