"""The env-file owner/mode check cannot be raced by another local user (issue 20).

A real second user runs a swap loop beside the deliveries: it moves the victim's env file aside, puts
its own ``0640`` file in its place, moves the victim's back, and reads whatever sits at the path. Before
the fix, the store checked the file, then looked the path up again to copy the group and group-read
bit, so now and then it wrote the new secret into a ``root:<theirs> 0640`` file. Now the directory such
a user can write to is refused, and the check, the read and the group and mode come from one fd.
After 200 deliveries the test greps every file the second user can read for any of the secrets.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from orkes_provision.credentials.stores.base import StoredKey
from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.errors import StoreError
from tests.reliability import tally
from tests.second_user import SecondUser

DELIVERIES = 200
SERVER = "http://127.0.0.1:8080/api"

SWAP_LOOP = r"""
import os, sys
path, loot, stop, started = sys.argv[1:5]
d = os.path.dirname(path)
aside, mine = os.path.join(d, ".aside"), os.path.join(d, ".mine")
fd = os.open(mine, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
os.write(fd, b"LOG_LEVEL=info\n"); os.fchmod(fd, 0o640); os.close(fd)
open(started, "w").close()
swaps = 0
for n in range(5_000_000):  # bounded; the test asks it to stop long before
    if n % 64 == 0:
        if os.path.exists(stop):
            break
        for candidate in (path, aside):
            try:
                with open(candidate, "rb") as handle:
                    data = handle.read()
            except OSError:
                continue
            if b"RaceSecret" in data:
                with open(os.path.join(loot, str(n)), "wb") as out:
                    out.write(data)
    try:
        os.rename(path, aside)  # the victim's file aside,
        os.link(mine, path)     # ours (0640, our group) in its place for a moment,
        os.rename(aside, path)  # the victim's back, for its owner check to pass
        swaps += 1
    except OSError:
        pass
print(swaps)
"""


def _race(user: SecondUser, directory: Path, path: Path) -> tuple[int, int, int, list[str]]:
    """(delivered, refused, the attacker's swaps, secrets) after DELIVERIES deliveries beside the swap loop."""
    loot = user.mkdir(user.home / f"loot-{os.urandom(3).hex()}", 0o700)
    stop, started = user.base / f"stop-{os.urandom(3).hex()}", loot / "started"
    attacker = user.popen([user.interpreter, "-c", SWAP_LOOP, str(path), str(loot), str(stop), str(started)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    secrets: list[str] = []
    delivered = refused = 0
    try:
        for _ in range(600):
            if started.exists():
                break
            time.sleep(0.05)
        assert started.exists(), "the swap loop did not start"
        for i in range(DELIVERIES):
            secret = f"RaceSecret{i:04d}{os.urandom(6).hex()}"
            secrets.append(secret)
            try:
                EnvFileStore(path).save(StoredKey(SERVER, "race-app", f"key-{i}", SecretStr(secret)))
                delivered += 1
            except StoreError:
                refused += 1
    finally:
        stop.touch()
        out, err = attacker.communicate(timeout=60)
    assert attacker.returncode == 0, err
    return delivered, refused, int(out.strip() or 0), secrets


def _leaks(user: SecondUser, directory: Path, secrets: list[str]) -> list[Path]:
    """The files the other user can read (its own home, where its loot goes, and the race's directory)
    that hold any of the secrets."""
    readable = {*user.readable_files(user.home), *user.readable_files(directory)}
    return [p for p in readable if p.is_file() and any(s.encode() in p.read_bytes() for s in secrets)]


def test_a_swap_loop_in_a_directory_the_other_user_owns_never_gets_the_secret(second_user: SecondUser) -> None:
    directory = second_user.mkdir(second_user.home / f"svc-{os.urandom(3).hex()}", 0o755)
    path = directory / "worker.env"
    # The victim's env file was delivered there before (root's, 0600).
    path.write_text("# orkes-provision app: race-app\n")
    path.chmod(0o600)
    delivered, refused, swaps, secrets = _race(second_user, directory, path)
    tally.count("env-file deliveries beside a swap loop (directory of the other user)", DELIVERIES)
    leaks = _leaks(second_user, directory, secrets)
    tally.count("env-file secrets leaked to the other user", len(leaks))
    assert leaks == [], f"{len(leaks)} leaks after {delivered} deliveries ({refused} refused, {swaps} swaps)"
    assert (delivered, refused) == (0, DELIVERIES)  # the directory is theirs: every delivery refuses it


def test_a_swap_loop_in_a_sticky_directory_cannot_touch_my_file(second_user: SecondUser) -> None:
    directory = second_user.base / f"tmp-{os.urandom(3).hex()}"
    directory.mkdir()
    directory.chmod(0o1777)
    path = directory / "worker.env"
    delivered, refused, swaps, secrets = _race(second_user, directory, path)
    tally.count("env-file deliveries beside a swap loop (sticky directory)", DELIVERIES)
    leaks = _leaks(second_user, directory, secrets)
    tally.count("env-file secrets leaked to the other user", len(leaks))
    assert leaks == []
    assert (delivered, refused, swaps) == (DELIVERIES, 0, 0)  # the sticky bit stops every rename of my file
    info = path.lstat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o600)
    assert secrets[-1] in path.read_text()


def test_a_new_env_file_in_a_directory_another_user_can_write_is_refused(second_user: SecondUser,
                                                                         tmp_path: Path) -> None:
    theirs = second_user.mkdir(second_user.home / f"new-{os.urandom(3).hex()}", 0o755)
    with pytest.raises(StoreError) as caught:
        EnvFileStore(theirs / "w.env").save(StoredKey(SERVER, "race-app", "k", SecretStr("RaceSecret-new")))
    assert f"owned by {second_user.name}" in caught.value.message
    assert not (theirs / "w.env").exists()
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(StoreError) as caught:
        EnvFileStore(shared / "w.env").save(StoredKey(SERVER, "race-app", "k", SecretStr("RaceSecret-new")))
    assert "writable by other users" in caught.value.message
