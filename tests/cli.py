"""Running the real ``provision`` console script in a subprocess, as a user would.

The process is forked from one that has imported the package already (``tests/forkserver.py``),
unless its environment changes how an interpreter starts; ``ORKES_PROVISION_TESTS_EXEC=1`` starts
every one afresh.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests import forkserver

PROVISION = str(Path(sys.executable).with_name("provision"))


def provision(args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | str | None = None,
              input: str | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``provision ARGS``; ``env`` is added to (and overrides) the test's environment."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return run_provision(args, env=full_env, cwd=cwd, input=input, timeout=timeout)


def run_provision(args: Sequence[str], *, env: Mapping[str, str], cwd: Path | str | None = None,
                  input: str | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``provision ARGS`` with exactly the environment ``env``, stdin empty unless ``input`` is given."""
    if forkserver.SERVER.can_fork(env):
        return forkserver.run([PROVISION, *args], env=env, cwd=cwd, input=input, timeout=timeout)
    return subprocess.run([PROVISION, *args], env=dict(env), cwd=cwd, input=input, capture_output=True, text=True,
                          timeout=timeout, check=False, stdin=subprocess.DEVNULL if input is None else None)


def start(cmd: Sequence[str], *, env: Mapping[str, str], **popen: Any) -> Any:
    """``subprocess.Popen(cmd, env=env, **popen)``; a ``provision`` command is forked (``forkserver.popen``)."""
    if cmd and cmd[0] == PROVISION:
        return forkserver.popen(cmd, env=env, **popen)
    return subprocess.Popen(list(cmd), env=dict(env), **popen)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def stop_group(proc: Any, timeout: float = 20.0) -> None:
    """Stop the process group ``proc`` leads: SIGTERM, then SIGKILL if it is not gone within ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@contextlib.contextmanager
def process_group(cmd: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: Path, append: bool = True,
                  stop_timeout: float = 20.0) -> Iterator[Any]:
    """``cmd`` in its own process group, output to ``log``; the whole group is stopped at the end."""
    with log.open("ab" if append else "wb") as out:
        proc = start(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                     start_new_session=True)
        try:
            yield proc
        finally:
            stop_group(proc, stop_timeout)
