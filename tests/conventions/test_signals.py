"""Ctrl-C anywhere: no traceback, exit 130, every child stopped. A terminal's Ctrl-C sends SIGINT to its
foreground process group, which is what these tests send (``os.killpg``) to a command started in its
own session. The generated Python worker is run for real (conductor-python 2.0.0)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import PROVISION, run_provision, start
from tests.conventions.runner import run_cli
from tests.conventions.tree import Node, leaves
from tests.workers.launch_helpers import alive, wait_for

LEAVES = leaves()


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (in any process group)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


class Started:
    """A command in its own session, its output in files; stopped (and its tree killed) at the end."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.out, self.err = cwd / "cmd.out", cwd / "cmd.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = start([PROVISION, *args], env=env, cwd=cwd, stdout=out, stderr=err,
                              stdin=subprocess.DEVNULL, start_new_session=True)
        self.seen: set[int] = set()

    def watch(self) -> set[int]:
        self.seen |= descendants(self.proc.pid)
        return self.seen

    def ctrl_c(self, timeout: float = 30) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def kill(self) -> None:
        for pid in [self.proc.pid, *self.watch()]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture
def greetings(conv_sandbox: SandboxProcess, tmp_path: Path) -> Iterator[tuple[dict[str, str], Path, list[Started]]]:
    """The Python template, provisioned (key in an env file); the env to run provision with."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDUCTOR_", "ORKES_PROVISION_"))}
    env.update(conv_sandbox.admin_env)
    env.update({"XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_STATE_HOME": str(tmp_path / "state"),
                # the template runs 'python3 main.py': the Python that has conductor-python
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    project = tmp_path / "greetings"
    store = f"env-file:{tmp_path / 'w.env'}"
    # Each test starts from no sig-app: keys an earlier test left ACTIVE were delivered by another
    # state dir (another "machine"), and a rotation rightly refuses to retire those.
    run_provision(["apps", "delete", "sig-app", "--yes"], env=env, cwd=tmp_path)
    for args in (["init", "--app", "sig-app", str(project)],
                 ["app", "sig-app", "--worker", "--grant", "greetings", "--register-tasks", "--store", store]):
        made = run_provision(args, env=env, cwd=tmp_path)
        assert made.returncode == 0, made.stderr
    env["ORKES_PROVISION_STORE"] = store
    started: list[Started] = []
    yield env, project, started
    for command in started:
        command.kill()


def _polling(sandbox: SandboxProcess, since: int) -> bool:
    return any("/tasks/poll" in str(r.get("path")) and r.get("status") in (200, 204)
               for r in sandbox.requests()[since:])


@pytest.mark.slow
@pytest.mark.parametrize("how", [["run", "--app", "sig-app", "--", "python3", "main.py"],
                                 ["worker", "run", "greetings"]], ids=["run (exec)", "worker run (supervised)"])
def test_ctrl_c_stops_the_python_template_with_130_no_traceback_and_no_process_left(
        conv_sandbox: SandboxProcess, greetings: tuple[dict[str, str], Path, list[Started]], how: list[str]) -> None:
    env, project, started = greetings
    mark = conv_sandbox.mark()
    command = Started(how, env, project)
    started.append(command)
    wait_for(lambda: _polling(conv_sandbox, mark), timeout=60, what="the worker polling")
    workers = command.watch()
    assert len(workers) >= 2, "the SDK's task processes run"
    code = command.ctrl_c()
    output = command.output()
    assert code == 130, output
    assert "Traceback" not in output, output
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=15, what="every worker process gone")


def test_ctrl_c_in_the_sandbox_exits_130(tmp_path: Path) -> None:
    command = Started(["sandbox", "--port", "0", "--data-dir", str(tmp_path / "sb")], dict(os.environ), tmp_path)
    try:
        wait_for(lambda: "sandbox ready at" in command.out.read_text(), timeout=30, what="the sandbox ready")
        assert command.ctrl_c() == 130
        assert "Traceback" not in command.output()
    finally:
        command.kill()


def test_ctrl_c_during_a_rotation_exits_130_and_the_rerun_finishes_it(
        conv_sandbox: SandboxProcess, greetings: tuple[dict[str, str], Path, list[Started]], tmp_path: Path) -> None:
    env, _, started = greetings
    command = Started(["keys", "rotate", "sig-app", "--switch-wait", "60s", "--grace", "0s"], env, tmp_path)
    started.append(command)
    wait_for(lambda: "verified" in command.err.read_text() or "wait" in command.err.read_text(), timeout=30,
             what="the rotation waiting for workers to switch")
    time.sleep(0.5)
    assert command.ctrl_c() == 130
    err = command.err.read_text()
    assert "Traceback" not in err
    assert "error: interrupted" in err
    rerun = run_provision(["keys", "rotate", "sig-app", "--switch-wait", "0s", "--grace", "0s", "--json"],
                          env=env, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["result"] == "resumed"


@pytest.mark.parametrize("node", LEAVES, ids=[n.path for n in LEAVES])
def test_an_interrupt_inside_any_command_is_exit_130_without_a_traceback(
        node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = click.Command.parse_args

    def interrupted(self: click.Command, ctx: click.Context, args: list[str]) -> list[str]:
        if self is node.command:
            raise KeyboardInterrupt
        return original(self, ctx, args)

    monkeypatch.setattr(click.Command, "parse_args", interrupted)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    human = run_cli(node.argv, env=env, cwd=tmp_path)
    assert human.code == 130 and human.crashed is None, human
    # click ends the terminal's '^C' line first: a blank line, then the error.
    assert human.err.lstrip("\n").splitlines()[0] == "error: interrupted", human
    machine = run_cli(["--json", *node.argv], env=env, cwd=tmp_path)
    assert machine.code == 130 and json.loads(machine.out)["error"] == "interrupted", machine
