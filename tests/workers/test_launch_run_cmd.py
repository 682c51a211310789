"""'provision run' and 'provision worker run' as a user runs them: subprocesses, an env-file store,
plain-python stand-in workers (no SDK, no server: --no-preflight)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from orkes_provision.credentials.stores.base import StoredKey
from orkes_provision.credentials.stores.envfile import EnvFileStore
from tests.cli import run_provision, start
from tests.workers.launch_helpers import FAKE_WORKER, PROVISION, alive, events, group_members, log_lines, wait_for

HERE = Path(__file__).resolve().parent
PROBE = HERE / "env_probe.py"
SERVER = "http://127.0.0.1:9/api"
APP = "greetings-worker"
SECRET = "wK3-Secret-Value-0123456789abcdef"
ADMIN_SECRET = "admin-Secret-that-must-not-leak-42"


def direct(args: tuple[str, ...]) -> list[str]:
    """``run`` and ``worker run`` with the real key injected (--no-agent): what these tests are about.
    (The credential agent, on by default, has its own tests in tests/agent/.)"""
    if args[:1] == ("run",):
        return ["run", "--no-agent", *args[1:]]
    if args[:2] == ("worker", "run"):
        return ["worker", "run", "--no-agent", *args[2:]]
    return list(args)


class Runner:
    """Starts provision subprocesses in their own process groups; kills whatever is left at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.store_path = tmp_path / "worker.env"
        self.procs: list[subprocess.Popen[str]] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDUCTOR_", "ORKES_PROVISION_"))}
        self.env.update({
            "XDG_CONFIG_HOME": str(tmp_path / "config"), "ORKES_PROVISION_STATE_DIR": str(tmp_path / "state"),
            # The shell's own (admin) credentials: the worker must get the stored key instead.
            "CONDUCTOR_AUTH_KEY": "admin-key", "CONDUCTOR_AUTH_SECRET": ADMIN_SECRET,
            "CONDUCTOR_SERVER_AUTH_KEY": "stale-java-fallback",
        })

    def store_key(self, key_id: str, secret: str = SECRET) -> None:
        EnvFileStore(self.store_path).save(StoredKey(SERVER, APP, key_id, SecretStr(secret)))

    def start(self, *args: str, cwd: Path | None = None, **env: str) -> subprocess.Popen[str]:
        proc = start([str(PROVISION), *direct(args)], env={**self.env, **env}, cwd=cwd or self.tmp,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.procs.append(proc)
        return proc

    def run(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        return run_provision(direct(args), env={**self.env, **env}, cwd=self.tmp, timeout=timeout)

    def cleanup(self) -> None:
        for proc in self.procs:
            for pgid in {proc.pid}:
                if group_members(pgid) or proc.poll() is None:
                    os.killpg(pgid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    r = Runner(tmp_path)
    yield r
    r.cleanup()
    # Supervised workers run in their own sessions: make sure none outlived its test.
    for line in log_lines(tmp_path / "worker.log"):
        pid = int(line[2] if line[0] in ("start", "stop") else line[1])
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"worker process {pid} outlived the test")


def store_args(runner: Runner) -> list[str]:
    return ["--server", SERVER, "--store", f"env-file:{runner.store_path}"]


def test_run_gives_the_child_the_three_variables_in_its_environment_only(runner: Runner) -> None:
    runner.store_key("key-abc")
    out = runner.tmp / "probe.json"
    proc = runner.start("run", *store_args(runner), "--app", APP, "--no-preflight", "-v", "--",
                        sys.executable, str(PROBE), str(out), PROBE_EXIT="7")
    report = json.loads(wait_for(lambda: out.exists() and out.read_text(), what="probe report"))
    # Without --supervise provision *becomes* the worker: same pid, the worker's exit code.
    assert report["pid"] == proc.pid
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
    (runner.tmp / "probe.json.release").touch()
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 7
    assert report["env"]["CONDUCTOR_SERVER_URL"] == SERVER
    assert report["env"]["CONDUCTOR_AUTH_KEY"] == "key-abc"
    assert report["env"]["CONDUCTOR_AUTH_SECRET"] == SECRET
    assert report["env"]["CONDUCTOR_SERVER_AUTH_KEY"] is None  # the stale fallback was removed
    assert SECRET.encode() not in cmdline
    assert ADMIN_SECRET.encode() not in cmdline
    assert cmdline.split(b"\0")[:2] == [sys.executable.encode(), str(PROBE).encode()]
    assert SECRET not in stdout + stderr
    assert "CONDUCTOR_AUTH_SECRET=********" in stderr  # -v says what it passed, masked
    assert "key-abc" in stderr


def test_run_strips_whitespace_the_store_kept_around_the_key(runner: Runner) -> None:
    runner.store_key("key-abc", SECRET + "  ")
    out = runner.tmp / "probe.json"
    proc = runner.start("run", *store_args(runner), "--app", APP, "--no-preflight", "--",
                        sys.executable, str(PROBE), str(out))
    report = json.loads(wait_for(lambda: out.exists() and out.read_text(), what="probe report"))
    (runner.tmp / "probe.json.release").touch()
    proc.communicate(timeout=30)
    assert report["env"]["CONDUCTOR_AUTH_SECRET"] == SECRET


def test_run_of_a_missing_command_exits_127_with_one_line(runner: Runner) -> None:
    runner.store_key("key-abc")
    result = runner.run("run", *store_args(runner), "--app", APP, "--no-preflight", "--", "no-such-worker-cmd")
    assert result.returncode == 127
    assert result.stderr.splitlines()[0] == "error: command not found: no-such-worker-cmd"
    assert "Traceback" not in result.stderr


def test_run_without_a_stored_key_names_the_command_that_creates_one(runner: Runner) -> None:
    result = runner.run("run", *store_args(runner), "--app", APP, "--no-preflight", "--", "true")
    assert result.returncode == 3
    assert f"no key for application '{APP}'" in result.stderr
    assert f"provision app {APP} --worker --store env-file:{runner.store_path}" in result.stderr


def test_sigterm_to_supervising_provision_stops_every_process_of_the_worker_group(runner: Runner) -> None:
    runner.store_key("key-abc")
    log = runner.tmp / "worker.log"
    proc = runner.start("run", *store_args(runner), "--app", APP, "--no-preflight", "--supervise", "--",
                        sys.executable, str(FAKE_WORKER), FAKE_WORKER_LOG=str(log), FAKE_WORKER_CHILD="1")
    leader = int(wait_for(lambda: events(log, "start"), what="worker start")[0][2])
    child = int(events(log, "child")[0][1])
    assert set(group_members(leader)) == {leader, child}
    assert os.getpgid(leader) != os.getpgid(proc.pid)  # the worker has its own group
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=10)
    assert time.monotonic() - started < 10
    assert proc.returncode == 0
    assert group_members(leader) == []
    assert not alive(leader)
    assert not alive(child)
    assert f"started pid {leader}" in stderr
    assert SECRET not in stderr


def test_supervised_worker_killed_with_sigkill_is_restarted(runner: Runner) -> None:
    runner.store_key("key-abc")
    log = runner.tmp / "worker.log"
    proc = runner.start("run", *store_args(runner), "--app", APP, "--no-preflight", "--supervise", "--",
                        sys.executable, str(FAKE_WORKER), FAKE_WORKER_LOG=str(log))
    first = int(wait_for(lambda: events(log, "start"), what="worker start")[0][2])
    os.kill(first, signal.SIGKILL)
    starts = wait_for(lambda: len(events(log, "start")) >= 2 and events(log, "start"), timeout=15,
                      what="restart")
    second = int(starts[1][2])
    assert second != first
    assert alive(second)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert f"was killed by signal {signal.SIGKILL.value}" in stderr
    assert not alive(second)


def test_a_rotated_key_in_the_store_starts_the_new_worker_before_the_old_one_stops(runner: Runner) -> None:
    runner.store_key("key-old")
    log = runner.tmp / "worker.log"
    proc = runner.start("run", *store_args(runner), "--app", APP, "--no-preflight", "--supervise", "--",
                        sys.executable, str(FAKE_WORKER), FAKE_WORKER_LOG=str(log))
    old_pid = wait_for(lambda: events(log, "start"), what="worker start")[0][2]
    runner.store_key("key-new", "another-Secret-0987654321")
    wait_for(lambda: events(log, "stop"), timeout=20, what="old worker stopped")
    lines = log_lines(log)
    new_start = next(i for i, line in enumerate(lines) if line[:2] == ["start", "key-new"])
    old_stop = next(i for i, line in enumerate(lines) if line[0] == "stop")
    assert lines[old_stop][1:3] == ["key-old", old_pid]
    assert new_start < old_stop
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=15)
    assert "key changed (key-old -> key-new): starting new worker before stopping old" in stderr
    assert "another-Secret" not in stderr


def test_worker_run_takes_command_cwd_env_and_replicas_from_the_project_file(runner: Runner) -> None:
    runner.store_key("key-abc")
    project = runner.tmp / "project"
    (project / "work").mkdir(parents=True)
    log = runner.tmp / "worker.log"
    (project / "orkes-provision.toml").write_text(f"""
server = "{SERVER}"

[application]
name = "{APP}"
grants = ["greetings"]
store = "env-file:../worker.env"

[[workers]]
name = "fake"
runtime = "python"
command = ["{sys.executable}", "{FAKE_WORKER}"]
cwd = "work"
env = {{ FAKE_WORKER_LOG = "{log}" }}
replicas = 2
""")
    proc = runner.start("worker", "run", "fake", "--no-preflight", cwd=project / "work")
    starts = wait_for(lambda: len(events(log, "start")) == 2 and events(log, "start"), what="two replicas")
    assert sorted(line[3] for line in starts) == ["0", "1"]
    assert {line[1] for line in starts} == {"key-abc"}
    for line in starts:
        assert Path(f"/proc/{line[2]}/cwd").resolve() == (project / "work").resolve()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=15)
    assert proc.returncode == 130  # Ctrl-C, as the exit-code table says
    assert all(not alive(int(line[2])) for line in starts)


def test_worker_run_of_an_unknown_worker_lists_the_known_ones(runner: Runner) -> None:
    (runner.tmp / "orkes-provision.toml").write_text(
        '[application]\nname = "a"\n[[workers]]\nname = "greetings"\nruntime = "python"\ncommand = ["true"]\n')
    result = runner.run("worker", "run", "nope")
    assert result.returncode == 3
    assert "no worker named 'nope' (workers: greetings)" in result.stderr


def test_worker_run_outside_a_project_says_how_to_make_one(runner: Runner) -> None:
    result = runner.run("worker", "run", "greetings")
    assert result.returncode == 3
    assert "no orkes-provision.toml in" in result.stderr
    assert "provision init" in result.stderr
