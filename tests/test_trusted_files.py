"""Every file and directory the tool trusts follows one rule (``orkes_provision/trust.py``, issue 20).

A real second user owns the planted files and directories: ``init`` into their directory, ``export``
through their ``workflows`` directory or a link, a state directory, config file or sandbox ``admin.env``
of theirs, a lock or record that is a link or writable by others. Each is refused in one line naming
the file, its owner and mode and the fix, and nothing is written through it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from orkes_provision.environments.export import Export
from orkes_provision.errors import ConfigError
from orkes_provision.workers.scaffold import scaffold
from tests.cli import output, provision
from tests.second_user import SecondUser


def _fresh(parent: Path, prefix: str) -> Path:
    path = parent / f"{prefix}-{os.urandom(3).hex()}"
    path.mkdir()
    return path


# ----- init ---------------------------------------------------------------------------------------

def test_init_refuses_an_empty_directory_another_user_owns(second_user: SecondUser) -> None:
    theirs = second_user.mkdir(second_user.home / f"proj-{os.urandom(3).hex()}", 0o777)
    result = provision(["init", str(theirs)])
    assert result.returncode == 3, output(result)
    assert f"owned by {second_user.name}" in result.stderr and "mode 0777" in result.stderr, result.stderr
    assert list(theirs.iterdir()) == []


def test_init_refuses_a_directory_others_can_write(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ConfigError) as caught:
        scaffold("python", shared)
    assert "writable by other users" in caught.value.message
    assert list(shared.iterdir()) == []


def test_init_force_replaces_a_planted_link_instead_of_writing_through_it(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    scaffold("python", project)
    victim = tmp_path / "roots-file"
    victim.write_text("precious\n")
    (project / "main.py").unlink()
    (project / "main.py").symlink_to(victim)
    scaffold("python", project, force=True)
    assert victim.read_text() == "precious\n"
    assert not (project / "main.py").is_symlink() and "greetings" in (project / "main.py").read_text()


# ----- export -o ----------------------------------------------------------------------------------

def _export() -> Export:
    flow = {"name": "flow", "version": 1, "tasks": []}
    return Export(name="e", server="http://127.0.0.1:8080/api",
                  document={"workflows": [{"file": "workflows/flow.json"}]},
                  workflow_files={"workflows/flow.json": flow})


def test_export_refuses_a_planted_workflows_link(second_user: SecondUser, tmp_path: Path) -> None:
    target = second_user.mkdir(second_user.home / f"catch-{os.urandom(3).hex()}", 0o777)
    out = _fresh(tmp_path, "out")
    (out / "workflows").symlink_to(target)
    with pytest.raises(ConfigError) as caught:
        _export().write(out / "env.toml")
    assert "symbolic link" in caught.value.message
    assert list(target.iterdir()) == [] and not (out / "env.toml").exists()


def test_export_refuses_a_workflows_directory_another_user_owns(second_user: SecondUser) -> None:
    out = _fresh(second_user.base, "out")
    theirs = out / "workflows"
    theirs.mkdir()
    os.chown(theirs, second_user.uid, second_user.gid)
    with pytest.raises(ConfigError) as caught:
        _export().write(out / "env.toml")
    assert f"owned by {second_user.name}" in caught.value.message
    assert list(theirs.iterdir()) == [] and not (out / "env.toml").exists()


def test_export_writes_into_a_directory_of_mine(tmp_path: Path) -> None:
    written = _export().write(tmp_path / "env.toml")
    assert [p.relative_to(tmp_path).as_posix() for p in written] == ["workflows/flow.json", "env.toml"]
    assert stat.S_IMODE((tmp_path / "env.toml").stat().st_mode) == 0o644


# ----- the state and config directories, admin.env -------------------------------------------------

def test_a_state_directory_another_user_owns_is_refused(second_user: SecondUser) -> None:
    theirs = second_user.mkdir(second_user.home / f"state-{os.urandom(3).hex()}", 0o700)
    result = provision(["audit"], env={"ORKES_PROVISION_STATE_DIR": str(theirs)})
    assert result.returncode == 3, output(result)
    error, hint = result.stderr.splitlines()
    assert str(theirs) in error and f"owned by {second_user.name}" in error and "mode 0700" in error, error
    assert f"chown root {theirs}" in hint, hint


def test_a_state_directory_others_can_write_is_refused_and_a_new_one_is_private(tmp_path: Path) -> None:
    shared = tmp_path / "shared-state"
    shared.mkdir()
    shared.chmod(0o775)
    result = provision(["audit"], env={"ORKES_PROVISION_STATE_DIR": str(shared)})
    assert result.returncode == 3 and "writable by other users" in result.stderr, output(result)
    assert "chmod go-w" in result.stderr
    fresh = tmp_path / "new" / "state"
    result = provision(["audit"], env={"ORKES_PROVISION_STATE_DIR": str(fresh)})
    assert result.returncode == 0, output(result)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700


@pytest.mark.parametrize("name", ["deliveries.json", "key-intents.json"])
def test_a_state_record_writable_by_others_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      name: str) -> None:
    from orkes_provision.credentials import delivery

    monkeypatch.setenv("ORKES_PROVISION_STATE_DIR", str(tmp_path / "state"))
    path = delivery.deliveries_path() if name == "deliveries.json" else delivery.intents_path()
    path.write_text("{}")
    path.chmod(0o666)
    with pytest.raises(ConfigError) as caught:
        delivery.deliveries("http://127.0.0.1:8080/api") if name == "deliveries.json" else \
            delivery.pending_key_creations("http://127.0.0.1:8080/api", "app")
    assert f"refusing to use {path}" in caught.value.message and "mode 0666" in caught.value.message
    assert f"chmod go-w {path}" in caught.value.hint


def test_a_lock_file_that_is_a_link_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orkes_provision import locks

    state = tmp_path / "state"
    monkeypatch.setenv("ORKES_PROVISION_STATE_DIR", str(state))
    with locks.file_lock("x"):
        pass
    (lock,) = (state / "locks").iterdir()
    lock.unlink()
    lock.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError) as caught, locks.file_lock("x"):
        pass
    assert str(lock) in caught.value.message
    assert not (tmp_path / "elsewhere").exists()


def test_a_config_file_another_user_owns_is_refused(second_user: SecondUser) -> None:
    config = second_user.write(second_user.home / f"config-{os.urandom(3).hex()}.toml",
                               '[profiles.default]\nserver = "http://127.0.0.1:9/api"\nkey_id = "theirs"\n', 0o600)
    result = provision(["apps", "list"], env={"ORKES_PROVISION_CONFIG": str(config)})
    assert result.returncode == 3, output(result)
    assert f"refusing to use {config}" in result.stderr and f"owned by {second_user.name}" in result.stderr


def test_a_sandbox_admin_env_another_user_planted_is_refused(second_user: SecondUser) -> None:
    data = second_user.mkdir(second_user.home / f"sandbox-{os.urandom(3).hex()}", 0o755)
    second_user.write(data / "admin.env", "CONDUCTOR_SERVER_URL=http://127.0.0.1:9/api\n"
                                          "CONDUCTOR_AUTH_KEY=theirs\nCONDUCTOR_AUTH_SECRET=theirs-secret\n", 0o600)
    result = provision(["--profile", "sandbox", "apps", "list"], env={"ORKES_PROVISION_SANDBOX_DIR": str(data)})
    assert result.returncode == 3, output(result)
    assert f"refusing to use {data / 'admin.env'}" in result.stderr, result.stderr
