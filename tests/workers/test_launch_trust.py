"""A project file cannot steal the admin key (issue 11, item 1).

A repository someone clones, or a file planted in a parent directory, holds an ``orkes-provision.toml``
whose ``server`` is a hostile listener, and an env file with a key for it. ``provision run`` and
``provision worker run`` in it must never send the admin credentials of the environment there: a
credential goes only to the server it came with. The listener logs every byte it receives.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from orkes_provision.credentials.stores.base import StoredKey
from orkes_provision.credentials.stores.envfile import EnvFileStore
from tests.workers.launch_helpers import PROVISION
from tests.workers.recording_listener import RecordingListener, recording_listener

ADMIN_KEY = "admin-key-id-0001"
ADMIN_SECRET = "ADMIN-secret-that-never-leaves-its-server-42"


@pytest.fixture
def hostile() -> Iterator[RecordingListener]:
    with recording_listener() as listener:
        yield listener


@pytest.fixture
def admins_server() -> Iterator[RecordingListener]:
    """Where the admin key belongs (it refuses everything too: no test needs a real answer)."""
    with recording_listener() as listener:
        yield listener


def plant(repo: Path, project_server: str, key_server: str) -> Path:
    """A planted project: its file names ``project_server``, its env file holds a key for ``key_server``."""
    repo.mkdir(parents=True)
    (repo / "orkes-provision.toml").write_text(f'''
server = "{project_server}"

[application]
name = "planted"
grants = ["greetings"]
store = "env-file:w.env"

[[workers]]
name = "w"
runtime = "python"
command = ["{sys.executable}", "-c", "pass"]
''')
    EnvFileStore(repo / "w.env").save(StoredKey(key_server, "planted", "planted-key", SecretStr("planted-secret-0")))
    (repo / "sub").mkdir()
    return repo / "sub"


def run(args: list[str], cwd: Path, tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp / "home"), "XDG_CONFIG_HOME": str(tmp / "config"),
            "XDG_STATE_HOME": str(tmp / "state"), "CONDUCTOR_AUTH_KEY": ADMIN_KEY,
            "CONDUCTOR_AUTH_SECRET": ADMIN_SECRET}
    return subprocess.run([str(PROVISION), *args], cwd=cwd, env={**base, **env}, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.parametrize("command", [["run", "--", "true"], ["worker", "run", "w"]], ids=["run", "worker-run"])
@pytest.mark.parametrize("with_server_url", [True, False], ids=["CONDUCTOR_SERVER_URL", "no-CONDUCTOR_SERVER_URL"])
def test_a_planted_project_file_receives_no_byte_of_the_admin_secret(
        command: list[str], with_server_url: bool, hostile: RecordingListener, admins_server: RecordingListener,
        tmp_path: Path) -> None:
    cwd = plant(tmp_path / "repo", hostile.url, hostile.url)
    env = {"CONDUCTOR_SERVER_URL": admins_server.url} if with_server_url else {}

    result = run(command, cwd, tmp_path, **env)

    received = hostile.everything()
    assert ADMIN_SECRET.encode() not in received, "the admin secret reached the project file's server"
    assert ADMIN_KEY.encode() not in received
    assert ADMIN_SECRET not in result.stdout + result.stderr
    # The planted key may go to its own server (the listener refuses it): the preflight stops there.
    assert result.returncode == 11, result.stderr
    assert b"planted-key" in received
    assert admins_server.received == []  # nor is the planted key sent to the admin's server


def test_a_project_server_that_disagrees_with_the_key_is_refused_naming_both_servers(
        hostile: RecordingListener, admins_server: RecordingListener, tmp_path: Path) -> None:
    cwd = plant(tmp_path / "repo", hostile.url, admins_server.url)

    result = run(["run", "--", "true"], cwd, tmp_path, CONDUCTOR_SERVER_URL=admins_server.url)

    assert result.returncode == 3, result.stderr
    error, hint = result.stderr.strip().splitlines()[-2:]
    assert error.startswith("error: ") and hostile.url in error and admins_server.url in error
    assert hint.startswith("hint: ") and "--server" in hint
    assert hostile.received == []
    assert admins_server.received == []


def test_the_project_server_for_its_own_key_works_with_no_other_credentials(
        hostile: RecordingListener, tmp_path: Path) -> None:
    # No admin credentials at all: the project file names the server of its own key, which is allowed.
    cwd = plant(tmp_path / "repo", hostile.url, hostile.url)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "c"),
           "XDG_STATE_HOME": str(tmp_path / "s")}
    result = subprocess.run([str(PROVISION), "run", "--", "true"], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 11, result.stderr
    assert "rejects the stored key planted-key" in result.stderr
    assert b"planted-key" in hostile.everything()
