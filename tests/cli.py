"""Running the real ``provision`` console script in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

PROVISION = str(Path(sys.executable).with_name("provision"))


def provision(args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | str | None = None,
              input: str | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``provision ARGS``; ``env`` is added to (and overrides) the test's environment."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([PROVISION, *args], env=full_env, cwd=cwd, input=input, capture_output=True,
                          text=True, timeout=timeout, check=False)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr
