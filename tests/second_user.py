"""A real second, unprivileged local user for the shared-host tests (issue 20).

``second_user`` (module scope) creates a user with ``useradd`` under a unique name, gives it a
directory it owns in a fresh world-traversable place under /tmp (``home``), runs commands as it
(``run``/``popen``: real uid, gid and no supplementary groups, as ``setpriv`` would), and removes the
user and its files at the end. Planted files and swap loops are made by that user, not by root
faking an owner with chown, so the kernel's own checks (sticky directories, protected links) apply.

Without root or ``useradd`` the tests skip with the reason; with ``REQUIRE_SECOND_USER=1`` (CI) they fail.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REQUIRE_SECOND_USER = os.environ.get("REQUIRE_SECOND_USER") == "1"


@dataclass(frozen=True)
class SecondUser:
    name: str
    uid: int
    gid: int
    base: Path  # root's, 0711: anyone may pass through, only root may list or write
    home: Path  # the second user's own directory, 0755
    interpreter: str  # a Python this user may run (the test's own may sit below root's 0700 home)

    def _drop(self) -> None:
        os.setgroups([])
        os.setgid(self.gid)
        os.setuid(self.uid)

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home), "LANG": "C.UTF-8"}
        env.update(kwargs.pop("env", None) or {})
        return subprocess.Popen(list(argv), user=self.uid, group=self.gid, extra_groups=[], env=env,
                                cwd=kwargs.pop("cwd", self.home), **kwargs)

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 60.0,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = self.popen(argv, env=dict(env or {}), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=timeout)
        result = subprocess.CompletedProcess(list(argv), proc.returncode, out, err)
        if check and proc.returncode != 0:
            raise AssertionError(f"as {self.name}: {argv} exited {proc.returncode}: {err}")
        return result

    def python(self, code: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run ``code`` in a Python interpreter as this user (``sys.argv[1:]`` = ``args``)."""
        return self.run([self.interpreter, "-c", code, *args], **kwargs)

    def write(self, path: Path, text: str, mode: int = 0o644) -> Path:
        """``path`` created by this user, with ``text``: a planted file."""
        self.python("import os,sys; fd=os.open(sys.argv[1], os.O_WRONLY|os.O_CREAT|os.O_TRUNC, int(sys.argv[3], 8)); "
                    "os.write(fd, sys.argv[2].encode()); os.fchmod(fd, int(sys.argv[3], 8))",
                    str(path), text, f"{mode:o}")
        return path

    def mkdir(self, path: Path, mode: int = 0o755) -> Path:
        self.python("import os,sys; os.mkdir(sys.argv[1]); os.chmod(sys.argv[1], int(sys.argv[2], 8))",
                    str(path), f"{mode:o}")
        return path

    def readable_files(self, top: Path) -> Iterator[Path]:
        """Every regular file under ``top`` this user can open for reading (asked as the user, by the kernel)."""
        result = self.python(
            "import os,sys\n"
            "for d, dirs, files in os.walk(sys.argv[1]):\n"
            "    for f in files:\n"
            "        p = os.path.join(d, f)\n"
            "        try:\n"
            "            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK); os.close(fd); print(p)\n"
            "        except OSError: pass\n", str(top))
        yield from (Path(line) for line in result.stdout.splitlines())


def _unavailable(reason: str) -> None:
    message = f"no second local user: {reason} (the shared-host tests need root and useradd)"
    if REQUIRE_SECOND_USER:
        pytest.fail(f"REQUIRE_SECOND_USER=1 but {message}")
    pytest.skip(message)


def _retrying(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    # useradd and userdel lock /etc/passwd; parallel test workers (and other jobs) take turns.
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    for _ in range(50):
        if result.returncode == 0 or "lock" not in result.stderr.lower():
            break
        time.sleep(0.1)
        result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    return result


def _interpreter_for(user: SecondUser) -> str:
    for candidate in (sys.executable, shutil.which("python3"), "/usr/bin/python3", "/usr/local/bin/python3"):
        if candidate is None:
            continue
        try:
            probe = user.popen([candidate, "-c", "pass"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError:
            continue
        if probe.wait(timeout=30) == 0:
            return candidate
    _unavailable(f"no Python that {user.name} may run")
    raise AssertionError("unreachable")


@contextlib.contextmanager
def second_user_session() -> Iterator[SecondUser]:
    if os.geteuid() != 0:
        _unavailable("not running as root")
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        _unavailable("useradd/userdel not found")
    name = f"orkt{secrets.token_hex(5)}"
    made = _retrying(["useradd", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name])
    if made.returncode != 0:
        _unavailable(f"useradd {name} failed: {made.stderr.strip()}")
    base = Path(tempfile.mkdtemp(prefix="orkes-shared-"))
    try:
        os.chmod(base, 0o711)
        import pwd

        entry = pwd.getpwnam(name)
        home = base / name
        home.mkdir()
        os.chown(home, entry.pw_uid, entry.pw_gid)
        home.chmod(0o755)
        user = SecondUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid, base=base, home=home, interpreter="")
        yield dataclasses.replace(user, interpreter=_interpreter_for(user))
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)
        gone = _retrying(["userdel", name])
        assert gone.returncode == 0, f"userdel {name}: {gone.stderr}"


@pytest.fixture(scope="module")
def second_user() -> Iterator[SecondUser]:
    """A real unprivileged user for this test module, removed at its end."""
    with second_user_session() as user:
        yield user
