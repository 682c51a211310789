"""The env-file store refuses a planted file (ssh's StrictModes), keeps a safe owner, group and mode,
and never mangles line endings.

The CLI tests count the sandbox's requests: a refused file stops the command before any request.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from orkes_provision.credentials.stores.base import StoredKey
from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.errors import StoreError
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision
from tests.sandbox_fixtures import one_sandbox

SERVER = "http://127.0.0.1:8080/api"
PLANTED = "# planted\nPYTHONPATH=/tmp/evil\n"
NOBODY = 65534
SERVICE_GROUP = 1  # 'daemon' on Debian and most Linux systems; any group that is not root's will do
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner or group needs root")


def _key(secret: str = "Env-Secret-31aa", key_id: str = "key-1") -> StoredKey:
    return StoredKey(server=SERVER, app="greetings-worker", key_id=key_id, secret=SecretStr(secret))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """One sandbox for the module: every test counts its own requests from a mark."""
    yield from one_sandbox(tmp_path_factory.mktemp("modes-sandbox"))


@pytest.fixture
def env(sandbox: SandboxProcess) -> dict[str, str]:
    return {"ORKES_PROVISION_SANDBOX_DIR": str(sandbox.data_dir), "ORKES_PROVISION_PROFILE": "sandbox"}


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602, 0o660, 0o622])
def test_a_group_or_world_writable_file_is_refused_before_any_request(sandbox: SandboxProcess, env: dict[str, str],
                                                                      tmp_path: Path, mode: int) -> None:
    path = tmp_path / "worker.env"
    path.write_text(PLANTED)
    path.chmod(mode)
    mark = sandbox.mark()
    result = provision(["app", "strict-app", "--worker", "--store", f"env-file:{path}"], env=env)
    assert result.returncode == 10, output(result)
    error, hint = result.stderr.splitlines()
    assert f"{mode:04o}" in error and "writable" in error, error
    assert f"chmod go-w {path}" in hint, hint
    assert sandbox.requests()[mark:] == []
    assert path.read_text() == PLANTED and _mode(path) == mode


@as_root
def test_a_file_owned_by_someone_else_is_refused_before_any_request(sandbox: SandboxProcess, env: dict[str, str],
                                                                    tmp_path: Path) -> None:
    path = tmp_path / "worker.env"
    path.write_text(PLANTED)
    path.chmod(0o600)
    os.chown(path, NOBODY, NOBODY)
    mark = sandbox.mark()
    result = provision(["app", "strict-app", "--worker", "--store", f"env-file:{path}"], env=env)
    assert result.returncode == 10, output(result)
    error, hint = result.stderr.splitlines()
    assert "owned by" in error and str(NOBODY) in error, error
    assert "chown" in hint and str(path) in hint, hint
    assert sandbox.requests()[mark:] == []
    assert path.read_text() == PLANTED


@pytest.mark.parametrize("action", ["load", "save", "delete"])
def test_the_library_refuses_a_writable_file_for_reading_and_writing_too(tmp_path: Path, action: str) -> None:
    path = tmp_path / "w.env"
    EnvFileStore(path).save(_key())
    path.chmod(0o646)
    before = path.read_bytes()
    store = EnvFileStore(path)
    calls = {"load": lambda: store.load(SERVER, "greetings-worker"), "save": lambda: store.save(_key(key_id="key-2")),
             "delete": lambda: store.delete(SERVER, "greetings-worker")}
    with pytest.raises(StoreError) as caught:
        calls[action]()
    assert "0646" in caught.value.message
    assert path.read_bytes() == before


@as_root
def test_a_root_and_service_group_0640_file_keeps_its_owner_group_and_mode(sandbox: SandboxProcess,
                                                                           env: dict[str, str],
                                                                           tmp_path: Path) -> None:
    path = tmp_path / "worker.env"
    path.write_text("# read by the service group\nLOG_LEVEL=info\n")
    os.chown(path, 0, SERVICE_GROUP)
    path.chmod(0o640)
    result = provision(["app", "group-app", "--worker", "--store", f"env-file:{path}"], env=env)
    assert result.returncode == 0, output(result)
    info = path.lstat()
    assert (info.st_uid, info.st_gid, _mode(path)) == (0, SERVICE_GROUP, 0o640)
    assert "CONDUCTOR_AUTH_SECRET=" in path.read_text() and "LOG_LEVEL=info" in path.read_text()
    # A rotation rewrites it again: still root:svc 0640.
    result = provision(["keys", "rotate", "group-app", "--grace", "0s", "--switch-wait", "0",
                        "--store", f"env-file:{path}"], env=env)
    assert result.returncode == 0, output(result)
    info = path.lstat()
    assert (info.st_uid, info.st_gid, _mode(path)) == (0, SERVICE_GROUP, 0o640)


def test_the_group_may_read_only_when_others_may_not(tmp_path: Path) -> None:
    path = tmp_path / "w.env"
    path.write_text("A=1\n")
    path.chmod(0o644)  # the umask's default, not a deliberate share: becomes private
    EnvFileStore(path).save(_key())
    assert _mode(path) == 0o600
    path.chmod(0o640)  # a deliberate share with the file's group: kept
    EnvFileStore(path).save(_key(key_id="key-2"))
    assert _mode(path) == 0o640
    path.chmod(0o750)  # execute bits are never kept; group read is
    EnvFileStore(path).save(_key(key_id="key-3"))
    assert _mode(path) == 0o640


@as_root
def test_a_file_that_is_safe_keeps_the_group_read_bit_only_with_the_group(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # When the group cannot be kept (not a member), the group gets nothing rather than another group read access.
    path = tmp_path / "w.env"
    path.write_text("A=1\n")
    os.chown(path, 0, SERVICE_GROUP)
    path.chmod(0o640)

    def refused(fd: int, uid: int, gid: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("orkes_provision.fileio.os.fchown", refused)
    EnvFileStore(path).save(_key())
    assert _mode(path) == 0o600


@pytest.mark.parametrize("content", ["LOG_LEVEL=info\r\n", "# windows\r\nA=1\r\nB=2\r\n", "A=1\nB=2\r\n"])
def test_a_crlf_file_is_refused_before_any_request_and_left_unchanged(sandbox: SandboxProcess, env: dict[str, str],
                                                                      tmp_path: Path, content: str) -> None:
    path = tmp_path / "worker.env"
    path.write_bytes(content.encode())
    path.chmod(0o600)
    mark = sandbox.mark()
    result = provision(["app", "crlf-app", "--worker", "--store", f"env-file:{path}"], env=env)
    assert result.returncode == 10, output(result)
    assert "CRLF" in result.stderr and "dos2unix" in result.stderr, result.stderr
    assert sandbox.requests()[mark:] == []
    assert path.read_bytes() == content.encode()


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"])
def test_a_rewrite_never_turns_a_line_separator_inside_a_line_into_a_new_line(tmp_path: Path, separator: str) -> None:
    path = tmp_path / "w.env"
    path.write_text(f"# note{separator}LD_PRELOAD=/tmp/evil.so\nLOG_LEVEL=info\n")
    path.chmod(0o600)
    EnvFileStore(path).save(_key())
    lines = path.read_text().split("\n")
    assert f"# note{separator}LD_PRELOAD=/tmp/evil.so" in lines
    assert not any(line.startswith("LD_PRELOAD") for line in lines)
    assert EnvFileStore(path).load(SERVER, "greetings-worker") is not None
