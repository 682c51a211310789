"""The env-file store: private from the first byte, atomic, keeps other lines, refuses symlinks,
and writes values that bash and python-dotenv read back identically."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from dotenv import dotenv_values
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from orkes_provision import fileio
from orkes_provision.credentials.stores import open_store
from orkes_provision.credentials.stores.base import StoredKey
from orkes_provision.credentials.stores.envfile import EnvFileStore, parse_env, quote_value
from orkes_provision.errors import StoreError

SERVER = "http://127.0.0.1:8080/api"
SECRET = "Env-Secret-31aa"


def _key(app: str = "greetings-worker", key_id: str = "key-1", secret: str = SECRET,
         server: str = SERVER) -> StoredKey:
    return StoredKey(server=server, app=app, key_id=key_id, secret=SecretStr(secret))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_holds_the_three_variables_and_is_0600(tmp_path: Path) -> None:
    path = tmp_path / "w.env"
    EnvFileStore(path).save(_key(server="http://127.0.0.1:8080"))
    assert _mode(path) == 0o600
    assert dotenv_values(path) == {"CONDUCTOR_SERVER_URL": SERVER, "CONDUCTOR_AUTH_KEY": "key-1",
                                   "CONDUCTOR_AUTH_SECRET": SECRET}
    assert path.read_text().startswith("# Written by orkes-provision.")


def test_the_file_is_0600_from_its_first_byte_even_with_a_permissive_umask(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    modes: list[int] = []
    real_write = os.write

    def watching_write(fd: int, data: bytes | memoryview) -> int:
        modes.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return real_write(fd, data)

    monkeypatch.setattr(fileio.os, "write", watching_write)
    old_umask = os.umask(0)
    try:
        EnvFileStore(tmp_path / "w.env").save(_key())
    finally:
        os.umask(old_umask)
    assert modes
    assert set(modes) == {0o600}


def test_an_existing_world_readable_file_becomes_0600(tmp_path: Path) -> None:
    path = tmp_path / "w.env"
    path.write_text("OTHER=1\n")
    path.chmod(0o644)
    EnvFileStore(path).save(_key())
    assert _mode(path) == 0o600


def test_unrelated_lines_comments_and_order_are_kept_and_values_replaced_in_place(tmp_path: Path) -> None:
    path = tmp_path / "w.env"
    path.write_text("# my settings\nLOG_LEVEL=debug\nexport CONDUCTOR_AUTH_KEY=old-key\n\n"
                    "CONDUCTOR_AUTH_SECRET='old'\n# trailing comment\nCONDUCTOR_AUTH_KEY=duplicate\nTZ=UTC\n")
    EnvFileStore(path).save(_key())
    lines = path.read_text().splitlines()
    assert lines[:6] == ["# my settings", "LOG_LEVEL=debug", "export CONDUCTOR_AUTH_KEY=key-1", "",
                         f"CONDUCTOR_AUTH_SECRET={SECRET}", "# trailing comment"]
    assert lines[6] == "TZ=UTC"
    assert "CONDUCTOR_AUTH_KEY=duplicate" not in lines
    assert lines[-2:] == ["# orkes-provision app: greetings-worker", f"CONDUCTOR_SERVER_URL={SERVER}"]
    assert dotenv_values(path)["CONDUCTOR_AUTH_KEY"] == "key-1"


def test_the_write_is_atomic_a_crash_before_the_rename_leaves_the_old_file_and_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "w.env"
    store = EnvFileStore(path)
    store.save(_key(key_id="old"))
    before = path.read_bytes()

    def crash(src: str, dst: str, **dir_fds: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "replace", crash)
    with pytest.raises(StoreError) as caught:
        store.save(_key(key_id="new"))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.env"]
    assert caught.value.message == f"cannot write {path}: No space left on device"
    assert SECRET not in caught.value.message


def test_a_symlink_is_refused_and_its_target_left_untouched(tmp_path: Path) -> None:
    target = tmp_path / "real.env"
    target.write_text("KEEP=1\n")
    link = tmp_path / "w.env"
    link.symlink_to(target)
    store = EnvFileStore(link)
    with pytest.raises(StoreError) as caught:
        store.save(_key())
    assert "symbolic link" in caught.value.message
    assert str(link) in caught.value.message
    assert target.read_text() == "KEEP=1\n"
    assert link.is_symlink()
    with pytest.raises(StoreError):
        store.load(SERVER, "greetings-worker")
    with pytest.raises(StoreError):
        open_store(f"env-file:{link}")


def test_a_missing_directory_is_refused_when_the_store_is_opened(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "w.env"
    with pytest.raises(StoreError) as caught:
        open_store(f"env-file:{path}")
    assert str(path) in caught.value.message
    assert "does not exist" in caught.value.message
    assert caught.value.exit_code == 10


def test_a_directory_at_the_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as caught:
        open_store(f"env-file:{tmp_path}")
    assert "not a regular file" in caught.value.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_directory_is_refused_naming_the_path(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(StoreError) as caught:
        open_store(f"env-file:{locked / 'w.env'}")
    assert f"cannot write {locked / 'w.env'}: permission denied" == caught.value.message


def test_a_write_refused_by_the_os_is_a_store_error_naming_the_path(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(path: Path, data: bytes, **_: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("orkes_provision.credentials.stores.envfile.write_private_file", denied)
    with pytest.raises(StoreError) as caught:
        EnvFileStore(tmp_path / "w.env").save(_key())
    assert caught.value.message == f"cannot write {tmp_path / 'w.env'}: Permission denied"


def test_relative_paths_are_made_absolute_in_the_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("env-file:./w.env")
    assert store.spec == f"env-file:{tmp_path / 'w.env'}"


def test_load_returns_nothing_for_another_server_or_another_application(tmp_path: Path) -> None:
    store = EnvFileStore(tmp_path / "w.env")
    store.save(_key())
    assert store.load("https://other.example.com/api", "greetings-worker") is None
    assert store.load(SERVER, "another-app") is None
    assert store.load("http://127.0.0.1:8080/", "greetings-worker") == _key()


def test_load_reads_a_hand_written_file_without_the_marker(tmp_path: Path) -> None:
    path = tmp_path / "w.env"
    path.write_text(f'export CONDUCTOR_SERVER_URL="http://127.0.0.1:8080/api"\nCONDUCTOR_AUTH_KEY=k # note\n'
                    f"CONDUCTOR_AUTH_SECRET='{SECRET}'\n")
    assert EnvFileStore(path).load(SERVER, "any-app") == _key(app="any-app", key_id="k")


def test_delete_removes_only_the_managed_lines(tmp_path: Path) -> None:
    path = tmp_path / "w.env"
    path.write_text("# mine\nLOG_LEVEL=debug\n")
    store = EnvFileStore(path)
    store.save(_key())
    store.delete(SERVER, "greetings-worker")
    assert path.read_text() == "# mine\nLOG_LEVEL=debug\n"
    assert _mode(path) == 0o600


@pytest.mark.parametrize(("value", "what"), [("a$b", "'$'"), ("${HOME}", "'$'"), ("it's", "a single quote"),
                                             ("a\\b", "a backslash"), ("a\nb", "a control character"),
                                             ("a\x00b", "a control character"), ("a\rb", "a control character")])
def test_values_no_form_can_carry_for_both_bash_and_dotenv_are_refused_without_quoting_them(value: str,
                                                                                             what: str) -> None:
    with pytest.raises(StoreError) as caught:
        quote_value(value, name="CONDUCTOR_AUTH_SECRET")
    assert caught.value.message == f"CONDUCTOR_AUTH_SECRET contains {what}, which bash and python-dotenv would read " \
                                   "differently"
    assert value not in caught.value.message
    assert "--store keyring" in caught.value.hint


def test_a_refused_secret_leaves_the_file_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "w.env"
    store = EnvFileStore(path)
    store.save(_key())
    before = path.read_bytes()
    with pytest.raises(StoreError):
        store.save(_key(secret="pa$$word"))
    assert path.read_bytes() == before


# Printable characters the writer accepts: everything but $ ' \ and controls.
SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="$'\\"), min_size=1,
                    max_size=40).filter(lambda s: s == s.strip() and "\x85" not in s)


@settings(max_examples=40, deadline=None)
@given(key_id=SAFE_TEXT, secret=SAFE_TEXT)
def test_accepted_values_read_back_identically_in_dotenv_and_in_our_parser(tmp_path_factory: pytest.TempPathFactory,
                                                                            key_id: str, secret: str) -> None:
    path = tmp_path_factory.mktemp("hyp") / "w.env"
    EnvFileStore(path).save(_key(key_id=key_id, secret=secret))
    expected = {"CONDUCTOR_SERVER_URL": SERVER, "CONDUCTOR_AUTH_KEY": key_id, "CONDUCTOR_AUTH_SECRET": secret}
    assert dotenv_values(path) == expected
    assert {k: v for k, v in parse_env(path.read_text()).items()} == expected


BASH_CASES = ["plain-Secret_1", "with space", 'dq"inside', "hash # sign", "semi;colon", "back`tick`",
              "star*glob?[x]", "tilde~/x", "amp&pipe|lt<gt>", "ünïcødé", "paren(s)", "brace{x}", "bang!x",
              "eq=sign", "pct%s", "comma,plus+", "a:~b"]


@pytest.mark.parametrize("secret", BASH_CASES)
def test_bash_source_reads_back_exactly_what_dotenv_reads(tmp_path: Path, secret: str) -> None:
    path = tmp_path / "w.env"
    EnvFileStore(path).save(_key(key_id="k-1", secret=secret))
    script = f'set -a; source "{path}"; printf "%s\\0" "$CONDUCTOR_SERVER_URL" "$CONDUCTOR_AUTH_KEY" ' \
             '"$CONDUCTOR_AUTH_SECRET"'
    out = subprocess.run(["bash", "--noprofile", "--norc", "-c", script], capture_output=True, check=True,
                         env={"PATH": os.environ.get("PATH", ""), "HOME": "/nonexistent"}, timeout=30)
    assert out.stdout.decode().split("\0")[:3] == [SERVER, "k-1", secret]
    assert dotenv_values(path)["CONDUCTOR_AUTH_SECRET"] == secret
