"""A project file another local user could have written is never trusted (issue 20, git's safe.directory).

A real second user (``tests/second_user.py``) owns a parent directory of the victim's work and plants
an ``orkes-provision.toml`` there whose worker command would run as the victim with the victim's key,
and whose application asks for ADMIN. The upward search stops at that file and refuses it, naming
the file, its owner and mode and the fix; nothing runs and no request is sent.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from orkes_provision import trust
from orkes_provision.errors import ConfigError
from orkes_provision.workers.project import load_project
from tests.cli import output, provision
from tests.second_user import SecondUser


def planted_project(marker: Path) -> str:
    return f'''
[application]
name = "planted-admin"
roles = ["ADMIN"]
store = "env-file:planted.env"

[[workers]]
name = "w"
runtime = "python"
command = ["{sys.executable}", "-c", "open({str(marker)!r}, 'w').write('ran')"]
env = {{ LD_PRELOAD = "/nonexistent/evil.so" }}
'''


def victim_dir(parent: Path) -> Path:
    """The victim's own working directory (root's, 0700) below ``parent``."""
    work = parent / f"work-{os.urandom(3).hex()}"
    work.mkdir(mode=0o700)
    return work


# A closed loopback port: a command that got as far as a request would fail with 8, not 3.
NO_SERVER = {"CONDUCTOR_SERVER_URL": "http://127.0.0.1:9/api", "CONDUCTOR_AUTH_KEY": "admin-id",
             "CONDUCTOR_AUTH_SECRET": "admin-secret-for-the-test"}


def test_worker_run_below_a_planted_project_file_refuses_it_and_runs_nothing(second_user: SecondUser) -> None:
    marker = second_user.base / f"ran-{os.urandom(3).hex()}"
    planted = second_user.write(second_user.home / "orkes-provision.toml", planted_project(marker))
    work = victim_dir(second_user.home)
    result = provision(["worker", "run", "w", "--no-preflight"], cwd=work, env=NO_SERVER)
    assert result.returncode == 3, output(result)
    error, hint = result.stderr.splitlines()
    assert str(planted) in error and f"owned by {second_user.name} (uid {second_user.uid})" in error, error
    assert "mode 0644" in error, error
    assert f"chown root {planted}" in hint and "--project FILE" in hint, hint
    assert not marker.exists()


def test_app_below_a_planted_project_file_refuses_it_before_any_request(second_user: SecondUser) -> None:
    marker = second_user.base / "never"
    planted = second_user.write(second_user.home / "orkes-provision.toml", planted_project(marker))
    work = victim_dir(second_user.home)
    result = provision(["app"], cwd=work, env=NO_SERVER)
    assert result.returncode == 3, output(result)
    assert f"refusing to use {planted}" in result.stderr and "owned by" in result.stderr, result.stderr
    assert not (second_user.home / "planted.env").exists()


def test_a_root_owned_project_file_in_a_directory_another_user_owns_is_refused(second_user: SecondUser) -> None:
    # The directory's owner can rename it away and put their own in its place at any time.
    place = victim_dir(second_user.base)
    os.chown(place, second_user.uid, second_user.gid)
    mine = place / "orkes-provision.toml"
    mine.write_text(planted_project(second_user.base / "never"))
    work = victim_dir(place)
    result = provision(["worker", "list"], cwd=work)
    assert result.returncode == 3, output(result)
    assert f"its directory is owned by {second_user.name}" in result.stderr, result.stderr
    assert "move it to a directory only you can write" in result.stderr, result.stderr


def test_in_a_sticky_directory_only_my_own_project_file_is_trusted(second_user: SecondUser) -> None:
    sticky = second_user.base / f"tmp-{os.urandom(3).hex()}"
    sticky.mkdir()
    sticky.chmod(0o1777)
    theirs = second_user.mkdir(sticky / "theirs", 0o777)
    second_user.write(theirs / "orkes-provision.toml", planted_project(second_user.base / "never"))
    refused = provision(["worker", "list"], cwd=victim_dir(theirs))
    assert refused.returncode == 3 and "owned by" in refused.stderr, output(refused)
    # Planted straight into the sticky directory: refused as well.
    second_user.write(sticky / "orkes-provision.toml", planted_project(second_user.base / "never"))
    refused = provision(["worker", "list"], cwd=victim_dir(sticky))
    assert refused.returncode == 3 and f"owned by {second_user.name}" in refused.stderr, output(refused)
    # My own file in a sticky directory of mine (as /tmp is root's): nobody else can replace it.
    mine_dir = second_user.base / f"tmp-{os.urandom(3).hex()}"
    mine_dir.mkdir()
    mine_dir.chmod(0o1777)
    (mine_dir / "orkes-provision.toml").write_text(planted_project(second_user.base / "never"))
    accepted = provision(["worker", "list", "--json"], cwd=victim_dir(mine_dir))
    assert accepted.returncode == 0, output(accepted)
    assert '"planted-admin"' in accepted.stdout


def test_my_own_file_named_with_project_is_used_below_a_planted_one(second_user: SecondUser) -> None:
    second_user.write(second_user.home / "orkes-provision.toml", planted_project(second_user.base / "never"))
    work = victim_dir(second_user.home)
    mine = victim_dir(second_user.base) / "orkes-provision.toml"
    mine.write_text('[application]\nname = "mine"\n')
    result = provision(["worker", "list", "--project", str(mine), "--json"], cwd=work)
    assert result.returncode == 0, output(result)
    assert '"mine"' in result.stdout


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o666])
def test_a_group_or_world_writable_project_file_of_mine_is_refused_with_chmod(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "orkes-provision.toml"
    path.write_text('[application]\nname = "x"\n')
    path.chmod(mode)
    with pytest.raises(ConfigError) as caught:
        load_project(start=tmp_path)
    assert f"mode {mode:04o}" in caught.value.message and "writable" in caught.value.message
    assert f"chmod go-w {path}" in caught.value.hint


def test_a_symlink_found_by_the_search_is_refused_not_followed(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.toml"
    real.write_text('[application]\nname = "x"\n')
    (tmp_path / "orkes-provision.toml").symlink_to(real)
    with pytest.raises(ConfigError) as caught:
        load_project(start=tmp_path)
    assert "symbolic link" in caught.value.message


def test_the_rule_is_one_function_of_owner_mode_and_directory(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    path.chmod(0o644)
    tmp_path.chmod(0o755)
    assert trust.file_problem(path.stat(), tmp_path.stat()) is None
    tmp_path.chmod(0o775)
    assert "its directory is writable by other users" in (trust.file_problem(path.stat(), tmp_path.stat()) or "")
    tmp_path.chmod(0o1777)
    assert trust.file_problem(path.stat(), tmp_path.stat()) is None
    tmp_path.chmod(0o700)
