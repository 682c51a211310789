"""The secret-leak harness: run ``provision`` commands with secrets in play, and keep everything a
secret could leak into, so the tests can look for every secret in every place.

Secrets looked for (``LeakSession.secrets``, each also in base64, as a Kubernetes Secret holds it):
the sandbox's admin secret, a chosen ``SENTINEL`` (given as a wrong admin secret, a stale stored
secret, a refused login, a worker's key), the secret of every key any run created and every token
any client minted (the client's ``create_key`` and ``_mint`` are wrapped to learn them), the admin
secret of a sandbox started by ``provision sandbox``, and whatever the keyring holds.

Places kept per run: stdout, stderr, every log record at DEBUG level (message and traceback), every
exception the CLI reported (str and repr of it and of its causes and contexts) and anything that
escaped it. Runs in-process (``cli``) for those hooks, or as real subprocesses (``subprocess``) for
``run``/``worker run``, whose workers report their own and every other command line (``leak_probe.py``).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import click
import keyring
from click.testing import CliRunner
from keyring.backend import KeyringBackend

from orkes_provision.cli import cli as root_command
from orkes_provision.cli import main
from orkes_provision.credentials.stores.memory import MemoryKeyring
from orkes_provision.errors import ProvisionError
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.sandbox.harness import SandboxProcess

PROVISION = str(Path(sys.executable).with_name("provision"))
PROBE = Path(__file__).with_name("leak_probe.py")
FAKE_KUBECTL = Path(__file__).resolve().parents[1] / "kube" / "fake_kubectl.py"
SENTINEL = "Sentinel-Leak-" + secrets.token_hex(12)


@dataclass
class Run:
    command: str
    args: list[str]
    code: int
    out: str
    err: str
    logs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    crashed: str | None = None
    created: set[str] = field(default_factory=set)  # key secrets this run created
    json_store: bool = False  # its stdout carries the created key's secret, once, by design

    def places(self) -> dict[str, str]:
        """Where to look, by name (stdout is left out of a json-store run: it is checked on its own)."""
        found = {"stderr": self.err, "logs": "\n".join(self.logs), "exceptions": "\n".join(self.errors),
                 "escaped exception": self.crashed or ""}
        if not self.json_store:
            found["stdout"] = self.out
        return found


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.name} {record.levelname} {record.getMessage()}"
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.lines.append(text)


def exception_texts(err: BaseException) -> list[str]:
    """str and repr of ``err`` and of every cause and context behind it (bounded), hints included."""
    texts: list[str] = []
    seen: set[int] = set()
    todo: list[BaseException] = [err]
    while todo and len(seen) < 20:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current)]
        if isinstance(current, ProvisionError):
            texts += [current.message, current.hint]
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
    return texts


def command_path(args: list[str]) -> str:
    """The (sub)command ``args`` run, e.g. ``keys rotate``, resolved through the real click tree."""
    ctx = click.Context(root_command)
    command: click.Command = root_command
    path: list[str] = []
    for arg in args:
        if not isinstance(command, click.Group):
            break
        sub = command.get_command(ctx, arg)
        if sub is None:
            break
        path.append(arg)
        command = sub
    return " ".join(path)


def leaf_commands() -> set[str]:
    """Every command ``provision --help`` lists, with the subcommands of groups."""
    ctx = click.Context(root_command)
    leaves: set[str] = set()
    for name in root_command.list_commands(ctx):
        command = root_command.get_command(ctx, name)
        if isinstance(command, click.Group):
            leaves |= {f"{name} {sub}" for sub in command.list_commands(click.Context(command))}
            if command.invoke_without_command:  # 'provision sandbox' runs something itself too
                leaves.add(name)
        else:
            leaves.add(name)
    return leaves


class LeakSession:
    def __init__(self, root: Path, sandbox: SandboxProcess) -> None:
        self.root = root
        self.sandbox = sandbox
        self.secrets: set[str] = {SENTINEL, sandbox.admin_secret.get_secret_value()}
        self.key_secrets: set[str] = set()
        self.runs: list[Run] = []
        self.allowed_files: set[Path] = set()
        self.scan_dirs: list[Path] = [root, sandbox.data_dir]
        self.detached: list[Path] = []  # data dirs of sandboxes started with --detach: stopped at the end
        self.keyring = MemoryKeyring()
        self.kubectl_bin = root / "bin"
        self._errors: list[str] = []
        self._patches = contextlib.ExitStack()
        for name in ("config", "state", "data", "home", "work"):
            (root / name).mkdir(parents=True, exist_ok=True)

    # ----- set-up --------------------------------------------------------------------------------

    def __enter__(self) -> LeakSession:
        self.kubectl_bin.mkdir(exist_ok=True)
        script = self.kubectl_bin / "kubectl"
        script.write_text(f"#!{sys.executable}\n" + FAKE_KUBECTL.read_text())
        script.chmod(0o755)
        self.allow(self.kubectl_bin / "state.json", self.kubectl_bin / "calls.jsonl", self.sandbox.admin_env_path)
        previous: KeyringBackend = keyring.get_keyring()
        keyring.set_keyring(self.keyring)
        self._patches.callback(keyring.set_keyring, previous)
        self._wrap_client()
        self._capture_reported_errors()
        return self

    def __exit__(self, *exc: object) -> None:
        from orkes_provision.sandbox.control import stop_sandbox

        for data_dir in self.detached:
            stop_sandbox(data_dir)
        self._patches.close()

    def _wrap_client(self) -> None:
        create_key, mint = OrkesClient.create_key, OrkesClient._mint

        def recording_create_key(client: OrkesClient, app_id: str) -> Any:
            key = create_key(client, app_id)
            self.key_secrets.add(key.secret.get_secret_value())
            self.secrets.add(key.secret.get_secret_value())
            return key

        def recording_mint(client: OrkesClient, key_id: str, secret: Any, *rest: Any) -> Any:
            token = mint(client, key_id, secret, *rest)
            self.secrets.add(token.get_secret_value())
            return token

        self._patches.enter_context(mock.patch.object(OrkesClient, "create_key", recording_create_key))
        self._patches.enter_context(mock.patch.object(OrkesClient, "_mint", recording_mint))

    def _capture_reported_errors(self) -> None:
        import orkes_provision.cli as cli_package
        import orkes_provision.cli.env_cmd as env_cmd

        for module in (cli_package, env_cmd):
            original: Callable[..., None] = module.report_error

            def capturing(err: ProvisionError, options: Any, _original: Callable[..., None] = original) -> None:
                self._errors.extend(exception_texts(err))
                _original(err, options)

            self._patches.enter_context(mock.patch.object(module, "report_error", capturing))

    def allow(self, *paths: Path) -> None:
        """Files where a secret is meant to be (credential stores)."""
        self.allowed_files.update(p.resolve() for p in paths)

    # ----- environment -----------------------------------------------------------------------------

    def env(self, variant: str) -> dict[str, str]:
        """``admin``: the sandbox's admin key; ``sentinel``: the admin key id with SENTINEL as its secret;
        ``none``: no CONDUCTOR_* at all (a profile or a project file decides)."""
        env = {"HOME": str(self.root / "home"), "XDG_CONFIG_HOME": str(self.root / "config"),
               "XDG_STATE_HOME": str(self.root / "state"), "XDG_DATA_HOME": str(self.root / "data"),
               "PATH": f"{self.kubectl_bin}:{Path(sys.executable).parent}:/usr/bin:/bin", "LANG": "C.UTF-8",
               "ORKES_PROVISION_TIMEOUT": "10"}
        if variant in ("admin", "sentinel"):
            env["CONDUCTOR_SERVER_URL"] = self.sandbox.url
            env["CONDUCTOR_AUTH_KEY"] = self.sandbox.admin_key_id
            env["CONDUCTOR_AUTH_SECRET"] = self.sandbox.admin_secret.get_secret_value() if variant == "admin" \
                else SENTINEL
        return env

    # ----- running ---------------------------------------------------------------------------------

    def cli(self, args: list[str], *, stdin: str = "", variant: str = "admin", cwd: Path | None = None,
            json_store: bool = False) -> Run:
        """``provision ARGS`` in this process, with every log record and reported exception kept."""
        records = _Records()
        root_logger, package_logger = logging.getLogger(), logging.getLogger("orkes_provision")
        saved = (root_logger.level, package_logger.handlers[:], package_logger.level)
        root_logger.addHandler(records)
        root_logger.setLevel(logging.DEBUG)
        self._errors = []
        before = set(self.key_secrets)
        crashed: str | None = None
        try:
            with mock.patch.dict(os.environ, self.env(variant), clear=True), \
                    contextlib.chdir(cwd or self.root / "work"), CliRunner().isolation(input=stdin) as streams:
                try:
                    main(list(args))
                    code = 0
                except SystemExit as stop:
                    code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
                except BaseException:
                    crashed, code = traceback.format_exc(), -1
                out, err = streams[0].getvalue().decode(), streams[1].getvalue().decode()
        finally:
            root_logger.removeHandler(records)
            root_logger.setLevel(saved[0])
            package_logger.handlers[:] = saved[1]
            package_logger.setLevel(saved[2])
        self._collect_keyring()
        run = Run(command_path(args), list(args), code, out, err, records.lines, list(self._errors), crashed,
                  self.key_secrets - before, json_store)
        self.runs.append(run)
        return run

    def subprocess(self, args: list[str], *, variant: str = "admin", cwd: Path | None = None,
                   timeout: float = 90) -> Run:
        """``provision ARGS`` as a real process in its own session; whatever it leaves running is killed."""
        proc = subprocess.Popen([PROVISION, *args], env=self.env(variant), cwd=cwd or self.root / "work",
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        run = Run(command_path(args), list(args), proc.returncode, out, err)
        self.runs.append(run)
        return run

    def sandbox_command(self, data_dir: Path) -> Run:
        """``provision sandbox`` in the foreground until it is up, then stopped with SIGTERM (as Ctrl-C would)."""
        args = ["sandbox", "--port", "0", "--data-dir", str(data_dir)]
        proc = subprocess.Popen([PROVISION, *args], env=self.env("none"), cwd=self.root / "work",
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while not (data_dir / "server.json").exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            admin = _env_value(data_dir / "admin.env", "CONDUCTOR_AUTH_SECRET")
            if admin:
                self.secrets.add(admin)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            out, err = proc.communicate(timeout=20)
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        self.allow(data_dir / "admin.env")
        self.scan_dirs.append(data_dir)
        run = Run("sandbox", args, proc.returncode, out, err)
        self.runs.append(run)
        return run

    def _collect_keyring(self) -> None:
        self.secrets.update(v for v in self.keyring.passwords.values() if v)

    # ----- looking -----------------------------------------------------------------------------------

    def needles(self) -> dict[str, bytes]:
        """label -> bytes to look for; labels say which secret (by number and length), never what it is."""
        found: dict[str, bytes] = {}
        for number, value in enumerate(sorted(s for s in self.secrets if len(s) >= 8)):
            label = "the SENTINEL" if value == SENTINEL else f"secret #{number} ({len(value)} chars)"
            found[label] = value.encode()
            found[f"{label} in base64"] = base64.b64encode(value.encode())
        return found

    def leaks_in(self, text: str | bytes) -> list[str]:
        data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
        return [label for label, needle in self.needles().items() if needle in data]

    def files(self) -> Iterator[Path]:
        """Every file under the scanned directories that is not a credential store."""
        seen: set[Path] = set()
        for directory in self.scan_dirs:
            for path in sorted(directory.rglob("*")):
                resolved = path.resolve()
                if path.is_file() and not path.is_symlink() and resolved not in self.allowed_files \
                        and resolved not in seen:
                    seen.add(resolved)
                    yield path


def _env_value(path: Path, name: str) -> str | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(name + "="):
                return line.partition("=")[2].strip()
    except FileNotFoundError:
        return None
    return None
