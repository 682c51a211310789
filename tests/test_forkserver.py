"""The fork server the suite starts ``provision`` and sandboxes with behaves as a fresh process would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from orkes_provision.sandbox.harness import SandboxProcess
from tests import forkserver
from tests.cli import PROVISION
from tests.forkserver import ForkedSandbox


def _fresh(args: list[str], env: dict[str, str], cwd: Path,
           input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROVISION, *args], env=env, cwd=cwd, input=input, capture_output=True, text=True,
                          timeout=60, check=False, stdin=None if input is not None else subprocess.DEVNULL)


def test_a_forked_provision_prints_and_exits_as_a_fresh_process_does(sandbox: SandboxProcess, tmp_path: Path) -> None:
    env = {**os.environ, **sandbox.admin_env}
    assert forkserver.SERVER.can_fork(env)
    made = forkserver.run([PROVISION, "app", "fork-app", "--store", "env-file:k.env"], env=env, cwd=tmp_path,
                          input=None, timeout=60)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "k.env").stat().st_mode & 0o777 == 0o600  # the working directory was the child's
    runs = [
        ["--help"],
        ["apps", "list", "--json"],
        ["apps", "show", "fork-app"],
        ["grant", "fork-app", "--task", "x"],                     # a usage error: exit 2, error and hint
        ["--json", "apps", "show", "no-such-app"],              # a JSON error on stdout, its own exit code
        ["--server", "http://127.0.0.1:9", "apps", "list"],     # server down
    ]
    for args in runs:
        fresh = _fresh(args, env, tmp_path)
        forked = forkserver.run([PROVISION, *args], env=env, cwd=tmp_path, input=None, timeout=60)
        assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr), args
    codes = {forkserver.run([PROVISION, *args], env=env, cwd=tmp_path, input=None, timeout=60).returncode
             for args in runs}
    assert len(codes) >= 3, codes  # the comparison above covered more than one way out


def test_the_child_reads_the_input_it_is_given(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    args = ["login", "--server", "http://127.0.0.1:9/api", "--key-id", "k", "--no-verify"]
    seen = []
    for text in ("secret\n", None):
        fresh = _fresh(args, env, tmp_path, input=text)
        forked = forkserver.run([PROVISION, *args], env=env, cwd=tmp_path, input=text, timeout=60)
        assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
        seen.append(forked.stderr)
    assert seen[0] != seen[1]  # the secret on stdin made a difference: the input reached the child


def test_an_environment_that_changes_the_interpreter_start_up_gets_a_fresh_process(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text("import sys; print('started afresh', file=sys.stderr)\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    assert not forkserver.SERVER.can_fork(env)
    from tests.cli import provision

    result = provision(["--help"], env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0 and "started afresh" in result.stderr


def test_a_child_past_its_timeout_is_killed_and_reported_as_subprocess_does(tmp_path: Path) -> None:
    env = {**os.environ}
    with pytest.raises(subprocess.TimeoutExpired) as raised:
        forkserver.run([PROVISION, "sandbox", "--port", "0", "--data-dir", str(tmp_path / "sb")], env=env,
                       cwd=tmp_path, input=None, timeout=3)
    assert "sandbox ready" in str(raised.value.output)  # what it printed before the timeout is kept
    pid = int(json.loads((tmp_path / "sb" / "server.json").read_text())["pid"])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_forked_sandbox_runs_in_its_own_session_and_reports_its_death_by_signal(tmp_path: Path) -> None:
    with ForkedSandbox(tmp_path / "sb") as sandbox:
        assert sandbox.pid is not None and os.getsid(sandbox.pid) == sandbox.pid
        assert isinstance(sandbox._proc, forkserver.ForkedProcess)  # not a fallback to subprocess
        proc = sandbox._proc
        sandbox.kill()
        assert proc.returncode == -signal.SIGKILL


def test_popen_pipes_and_communicate_as_subprocess_does(tmp_path: Path) -> None:
    env = {**os.environ}
    forked = forkserver.popen([PROVISION, "--json", "apps", "list", "--server", "http://127.0.0.1:9"], env=env,
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert isinstance(forked, forkserver.ForkedProcess)
    fresh = subprocess.Popen([PROVISION, "--json", "apps", "list", "--server", "http://127.0.0.1:9"], env=env,
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             stdin=subprocess.DEVNULL)
    assert forked.communicate(timeout=60) == fresh.communicate(timeout=60)
    assert forked.returncode == fresh.returncode != 0


def test_a_locale_forks_only_when_it_starts_python_with_the_servers_encodings() -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    assert forkserver.SERVER.can_fork(base)                        # no locale: C, which Python makes UTF-8
    assert forkserver.SERVER.can_fork({**base, "LANG": "en_US.UTF-8"})
    assert not forkserver.SERVER.can_fork({**base, "LC_ALL": "en_US.ISO-8859-1"})


@pytest.mark.parametrize("unbuffered", ["1", None], ids=["PYTHONUNBUFFERED=1", "buffered"])
def test_the_standard_streams_are_buffered_as_in_a_fresh_process(tmp_path: Path, unbuffered: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = unbuffered
    repo = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, "-m", "tests.stdio_probe"]
    with (tmp_path / "forked").open("w+") as out, open(os.devnull) as nothing:
        forked = forkserver.SERVER.spawn([sys.executable], env=env, cwd=repo, stdin=nothing.fileno(),
                                         stdout=out.fileno(), stderr=out.fileno(), module="tests.stdio_probe")
        assert forked.wait(60) == 0
        out.seek(0)
        forked_streams = json.loads(out.read())
    fresh = subprocess.run(cmd, env=env, cwd=repo, capture_output=True, text=True, timeout=60, check=True)
    assert forked_streams == json.loads(fresh.stdout)
    assert forked_streams["stdout"]["buffer"] == ("FileIO" if unbuffered else "BufferedWriter")
