"""Start a worker with its credentials: the environment it needs, and the hand-over to it.

``worker_environment`` is pure: it builds the child's environment from the stored key. Every
SDK of the Orkes quickstart reads ``CONDUCTOR_SERVER_URL``, ``CONDUCTOR_AUTH_KEY`` and
``CONDUCTOR_AUTH_SECRET`` first (reference/orkes-api.md section 7; each pinned SDK's reads are cited
in tests/fixtures/runtime_contract.toml), so those three are all a worker gets; the secret travels
only in the environment, never on a command line.

Choices, per runtime (section 7 of the reference):

* The URL always ends in ``/api``: Python, Go and C# use it verbatim (Python silently turns auth
  off without it); Java and JavaScript strip and re-add ``/api``, so the one form suits all.
* Key and secret are stripped of whitespace: Python, Go and C# do not trim, and a pasted newline
  makes the token exchange fail.
* No alias variables are added. C#'s ``KEY``/``SECRET`` and Java's ``CONDUCTOR_SERVER_AUTH_*``
  are read only when ``CONDUCTOR_AUTH_*`` is absent, so setting them would only spread the secret
  into more names. Inherited copies of those fallbacks, and ``CONDUCTOR_AUTH_TOKEN`` (which wins
  over key and secret in conductor-cli), are removed so that a stale credential of the parent
  shell cannot shadow the stored key.
* Python: ``CONDUCTOR_HTTP2_ENABLED`` is left alone. conductor-python 2.0.0 asks httpx for HTTP/2,
  which over plain ``http://`` (the sandbox) still speaks HTTP/1.1, and over TLS negotiates.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn, Protocol

from pydantic import SecretStr

from orkes_provision.credentials.stores.base import HeldKey
from orkes_provision.errors import ConfigError, ProvisionError, StoreError, VerificationFailed
from orkes_provision.orkes.urls import is_loopback_host, normalize_server_url

if TYPE_CHECKING:
    from orkes_provision.access.doctor import DoctorReport
    from orkes_provision.credentials.delivery import Hints

SERVER_URL = "CONDUCTOR_SERVER_URL"
AUTH_KEY = "CONDUCTOR_AUTH_KEY"
AUTH_SECRET = "CONDUCTOR_AUTH_SECRET"

# Inherited variables through which some SDK or tool could pick up another credential.
SHADOWING_VARIABLES: tuple[str, ...] = (
    "CONDUCTOR_SERVER_AUTH_KEY", "CONDUCTOR_SERVER_AUTH_SECRET",  # Java fallbacks
    "CONDUCTOR_AUTH_TOKEN",  # conductor-cli: a token wins over key and secret
)

# Extra variables per runtime. Empty on purpose, see the module docstring; kept as the one
# place to add one should an SDK ever need it.
RUNTIME_ALIASES: dict[str, dict[str, str]] = {
    "python": {}, "java": {}, "javascript": {}, "go": {}, "csharp": {},
}


class CommandNotFound(ProvisionError):
    """The worker command does not exist (exit 127, as a shell would)."""

    exit_code = 127
    kind = "command_not_found"
    default_hint = "check the command's spelling and that it is on PATH"


class CommandNotExecutable(ProvisionError):
    """The worker command exists but cannot be executed (exit 126, as a shell would)."""

    exit_code = 126
    kind = "command_not_executable"
    default_hint = "check that the file is executable (chmod +x) and is a program or a script with a #! line"


def worker_environment(base_env: Mapping[str, str], key: HeldKey, runtime: str | None = None,
                       extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a worker process: ``base_env`` plus ``extra`` plus the credentials.

    The credentials always win over ``base_env`` and ``extra`` (so the provisioning admin key of
    the calling shell never reaches the worker). Values are stripped of surrounding whitespace.
    """
    env = {k: v for k, v in base_env.items() if k not in SHADOWING_VARIABLES}
    env.update(extra or {})
    for name in SHADOWING_VARIABLES:
        env.pop(name, None)
    key_id = key.key_id.strip()
    secret = key.secret.get_secret_value().strip()
    if not key_id or not secret:
        raise StoreError("the stored key is empty", "store a new one: 'provision app APP --new-key'")
    env[SERVER_URL] = api_url(key.server)
    env[AUTH_KEY] = key_id
    env[AUTH_SECRET] = secret
    env.update(RUNTIME_ALIASES.get(runtime or "", {}))
    _no_proxy_for_loopback(env, env[SERVER_URL])
    return env


@dataclass(frozen=True)
class _LocalKey:
    server: str
    key_id: str
    secret: SecretStr


class LocalCredential(Protocol):
    @property
    def key_id(self) -> str: ...

    @property
    def secret(self) -> SecretStr: ...


def agent_environment(base_env: Mapping[str, str], agent_url: str, credential: LocalCredential,
                      runtime: str | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``worker_environment`` with a credential agent: its URL and a local key that only it accepts."""
    return worker_environment(base_env, _LocalKey(agent_url, credential.key_id, credential.secret), runtime, extra)


def _no_proxy_for_loopback(env: dict[str, str], server: str) -> None:
    # A worker's SDK may send its key through HTTP_PROXY even to loopback (plain http: in clear);
    # NO_PROXY is the one setting every SDK's HTTP client reads to prevent that.
    host = urllib.parse.urlsplit(server).hostname or ""
    if not is_loopback_host(host):
        return
    for name in ("NO_PROXY", "no_proxy"):
        entries = [e.strip() for e in env.get(name, "").split(",") if e.strip()]
        if host not in entries:
            env[name] = ",".join([*entries, host])


def api_url(server: str) -> str:
    """``server`` in the one form every SDK accepts: ending in ``/api``, no trailing slash."""
    # The http/https policy was applied when the server was chosen; here only the form matters.
    return normalize_server_url(server, insecure_http=True)


def describe_environment(env: Mapping[str, str]) -> list[str]:
    """Lines saying which credential variables a worker gets, with the secret masked."""
    return [f"{SERVER_URL}={env.get(SERVER_URL, '')}", f"{AUTH_KEY}={env.get(AUTH_KEY, '')}",
            f"{AUTH_SECRET}=********"]


def command_does(*, worker: bool, starter: bool, project_roles: Sequence[str] | None) -> frozenset[str]:
    """What the command run with the key does, for the preflight: ``worker``, ``starter`` or both.

    The flags say it; else the project file's application: without a worker role it is a starter
    (the docs' starter has ``roles = []``); else, as before, a worker.
    """
    if worker or starter:
        return frozenset({"worker"} if worker else set()) | frozenset({"starter"} if starter else set())
    if project_roles is not None and not set(project_roles) & {"WORKER", "UNRESTRICTED_WORKER", "ADMIN"}:
        return frozenset({"starter"})
    return frozenset({"worker"})


def check_preflight(report: DoctorReport, app: str, hints: Hints | None = None) -> None:
    """Refuse to launch when the doctor found a problem: the first one, with its fixing command."""
    problems = report.problems
    if not problems:
        return
    first = problems[0]
    more = len(problems) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    doctor = hints.doctor() if hints is not None else shlex.join(["provision", "doctor", app])
    hint = (f"fix it (or pass --no-preflight to start the worker anyway): {first.fix}" if first.fix
            else f"see every problem (or pass --no-preflight to start the worker anyway): {doctor}")
    raise VerificationFailed(f"preflight: {first.problem}{suffix}", hint)


def require_program(argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> str:
    """The path ``argv[0]`` resolves to (with ``env``'s PATH, from ``cwd``); ``CommandNotFound`` if none."""
    if not argv or not argv[0].strip():
        raise CommandNotFound("no command to run", "give it after '--': provision run -- python3 main.py")
    program = argv[0]
    if os.sep in program and cwd is not None and not os.path.isabs(program):
        program = os.path.join(cwd, program)
    found = shutil.which(program, path=env.get("PATH", os.defpath))
    if found is None:
        if os.sep in program and os.path.isfile(program):
            raise CommandNotExecutable(f"cannot execute {argv[0]}: permission denied")
        raise CommandNotFound(f"command not found: {argv[0]}")
    return found


def exec_command(argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> NoReturn:
    """Replace this process with ``argv``: its signals, output and exit code become the worker's.

    Raises ``CommandNotFound`` (exit 127) or ``CommandNotExecutable`` (exit 126) when the exec
    fails, before anything of this process is lost.
    """
    if not argv:
        raise CommandNotFound("no command to run", "give it after '--': provision run -- python3 main.py")
    program = argv[0]
    if cwd is not None:
        try:
            os.chdir(cwd)
        except OSError as err:
            raise ConfigError(f"cannot enter the worker directory {cwd}: {err.strerror}",
                                 "check 'cwd' in the project file") from None
    # Whatever this process buffered must be out before the exec discards the buffers.
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(program, list(argv), dict(env))  # noqa: S606 - argv as given, no shell: nothing to inject
    except FileNotFoundError:
        raise CommandNotFound(f"command not found: {program}") from None
    except PermissionError:
        raise CommandNotExecutable(f"cannot execute {program}: permission denied") from None
    except OSError as err:
        raise CommandNotExecutable(f"cannot execute {program}: {err.strerror}") from None


def run_attached(argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> int:
    """Run ``argv`` as a child in this process group, wait for it, return its status as a shell reports it.

    For a worker served by a credential agent in this process: the agent must outlive the
    worker, so there is no exec. The child shares the terminal's process group (Ctrl-C reaches
    it directly, and this process waits for it rather than dying first); SIGTERM and SIGHUP sent
    to this process are passed on.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        proc = subprocess.Popen(list(argv), env=dict(env), cwd=cwd)
    except FileNotFoundError:
        raise CommandNotFound(f"command not found: {argv[0]}") from None
    except PermissionError:
        raise CommandNotExecutable(f"cannot execute {argv[0]}: permission denied") from None
    except OSError as err:
        raise CommandNotExecutable(f"cannot execute {argv[0]}: {err.strerror}") from None

    def forward(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    def interrupted(signum: int, frame: FrameType | None) -> None:
        pass  # the terminal sent it to the child too; the child's exit decides

    previous = {signum: signal.signal(signum, handler) for signum, handler in
                ((signal.SIGTERM, forward), (signal.SIGHUP, forward), (signal.SIGINT, interrupted))}
    try:
        code = proc.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code
