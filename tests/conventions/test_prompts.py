"""Prompts: every command that can cut a worker off asks on a terminal (on stderr), needs --yes without
one, and changes nothing when the answer is no (exit 130); the last ACTIVE key gets a warning first."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orkes_provision.access.state import find_application, read_app_state
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials, Target, TaskDef, app_subject
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import PROVISION, run_provision
from tests.conventions.test_help import DESTRUCTIVE


@dataclass
class Lab:
    sandbox: SandboxProcess
    root: Path
    admin: OrkesClient

    @property
    def env(self) -> dict[str, str]:
        return {"PATH": os.environ["PATH"], "HOME": str(self.root), "XDG_CONFIG_HOME": str(self.root / "config"),
                "XDG_STATE_HOME": str(self.root / "state"), "LANG": "C.UTF-8", **self.sandbox.admin_env}

    def run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return run_provision(args, env=self.env, cwd=self.root)

    def on_terminal(self, args: list[str], answer: str) -> subprocess.CompletedProcess[str]:
        """Run with a terminal as stdin; type ``answer`` once the question is on stderr."""
        master, slave = os.openpty()
        proc = subprocess.Popen([PROVISION, *args], env=self.env, cwd=self.root, stdin=slave, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        os.close(slave)
        assert proc.stderr is not None and proc.stdout is not None
        err = b""
        deadline = time.monotonic() + 30
        while b"[y/N]" not in err and time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([proc.stderr], [], [], 0.2)
            if ready:
                err += os.read(proc.stderr.fileno(), 4096)
        asked_before_answer = b"[y/N]" in err
        os.write(master, answer.encode() + b"\n")
        out, rest = proc.communicate(timeout=30)
        os.close(master)
        assert asked_before_answer, f"no question on stderr: {err.decode()}"
        return subprocess.CompletedProcess(args, proc.returncode, out.decode(), (err + rest).decode())


@pytest.fixture
def lab(conv_sandbox: SandboxProcess, tmp_path: Path) -> Iterator[Lab]:
    with OrkesClient(Credentials(server=conv_sandbox.url, key_id=conv_sandbox.admin_key_id,
                                 secret=conv_sandbox.admin_secret)) as admin:
        yield Lab(conv_sandbox, tmp_path, admin)


@dataclass
class Case:
    """A destructive command: ``setup`` makes what it would change and returns its argv (no --yes);
    ``state`` reads what it would change."""

    setup: Callable[[Lab, str], list[str]]
    state: Callable[[Lab, str], object]


def _app_with_keys(lab: Lab, name: str, count: int = 2) -> tuple[str, list[str]]:
    app = lab.admin.create_application(name)
    return app.id, [lab.admin.create_key(app.id).id for _ in range(count)]


def _keys(lab: Lab, name: str) -> object:
    app = find_application(lab.admin, name)
    return sorted((k.id, k.status) for k in lab.admin.list_keys(app.id))


def _setup_key_command(verb: str) -> Callable[[Lab, str], list[str]]:
    def setup(lab: Lab, name: str) -> list[str]:
        _, keys = _app_with_keys(lab, name)
        return ["keys", verb, name, keys[0]]
    return setup


def _setup_revoke(lab: Lab, name: str) -> list[str]:
    app_id, _ = _app_with_keys(lab, name, 1)
    lab.admin.register_task_defs([TaskDef(name=f"{name}-task")])
    lab.admin.grant(app_subject(app_id), Target(type="TASK_DEF", id=f"{name}-task"), ["EXECUTE"])
    return ["revoke", name, f"{name}-task"]


def _grants(lab: Lab, name: str) -> object:
    return read_app_state(lab.admin, find_application(lab.admin, name)).grants


def _setup_apply(lab: Lab, name: str) -> list[str]:
    (lab.root / "env.toml").write_text(f'name = "{name}"\n[[applications]]\nname = "{name}-app"\nroles = []\n')
    return ["apply", "-f", str(lab.root / "env.toml")]


def _apps(lab: Lab, name: str) -> object:
    return sorted(a.name for a in lab.admin.list_applications() if a.name.startswith(name))


CASES = {
    "apps delete": Case(lambda lab, name: (_app_with_keys(lab, name, 0), ["apps", "delete", name])[1], _apps),
    "keys delete": Case(_setup_key_command("delete"), _keys),
    "keys deactivate": Case(_setup_key_command("deactivate"), _keys),
    "revoke": Case(_setup_revoke, _grants),
    "apply": Case(_setup_apply, _apps),
}


def test_every_destructive_command_has_a_case_here() -> None:
    assert set(CASES) == DESTRUCTIVE


@pytest.mark.parametrize("command", sorted(CASES))
def test_without_a_terminal_it_needs_yes_and_changes_nothing(lab: Lab, command: str) -> None:
    case, name = CASES[command], f"p-{command.replace(' ', '-')}-1"
    args = case.setup(lab, name)
    before = case.state(lab, name)
    result = lab.run([*args, "--json"])
    assert result.returncode == 2, result
    error = json.loads(result.stdout)
    assert error["error"] == "usage" and "stdin is not a terminal" in error["message"], result
    assert "--yes" in error["hint"]
    assert case.state(lab, name) == before


@pytest.mark.parametrize("command", sorted(CASES))
def test_on_a_terminal_it_asks_and_no_changes_nothing_with_exit_130(lab: Lab, command: str) -> None:
    case, name = CASES[command], f"p-{command.replace(' ', '-')}-2"
    args = case.setup(lab, name)
    before = case.state(lab, name)
    result = lab.on_terminal(args, "n")
    assert result.returncode == 130, result
    assert "[y/N]" not in result.stdout, "the question belongs on stderr"
    assert "error: " in result.stderr and "the answer was no" in result.stderr
    assert case.state(lab, name) == before


@pytest.mark.parametrize("command", sorted(CASES))
def test_on_a_terminal_yes_goes_ahead(lab: Lab, command: str) -> None:
    case, name = CASES[command], f"p-{command.replace(' ', '-')}-3"
    args = case.setup(lab, name)
    before = case.state(lab, name)
    result = lab.on_terminal(args, "y")
    assert result.returncode == 0, result
    assert case.state(lab, name) != before


@pytest.mark.parametrize("verb", ["deactivate", "delete"])
def test_retiring_the_last_active_key_warns_first_even_with_yes(lab: Lab, verb: str) -> None:
    _, (only,) = _app_with_keys(lab, f"p-last-{verb}", 1)
    result = lab.run(["keys", verb, f"p-last-{verb}", only, "--yes"])
    assert result.returncode == 0, result
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warning == [f"warning: {only} is the last ACTIVE key of p-last-{verb}: every worker of p-last-{verb} "
                       f"loses access until a new key is delivered ('provision keys rotate p-last-{verb}' replaces it "
                       "instead)"]
    _, (first, _second) = _app_with_keys(lab, f"p-other-{verb}", 2)
    quiet = lab.run(["keys", verb, f"p-other-{verb}", first, "--yes"])
    assert quiet.returncode == 0 and "warning:" not in quiet.stderr, quiet


def test_the_warning_comes_before_the_question_on_a_terminal(lab: Lab) -> None:
    _, (only,) = _app_with_keys(lab, "p-last-ask", 1)
    result = lab.on_terminal(["keys", "delete", "p-last-ask", only], "n")
    assert result.returncode == 130
    assert result.stderr.index("warning: ") < result.stderr.index("[y/N]")
