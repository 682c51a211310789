"""The local Orkes-compatible sandbox server (an optional extra: starlette, uvicorn, PyJWT).

``provision sandbox`` runs it in the foreground; :class:`~orkes_provision.sandbox.harness.SandboxProcess`
runs it as a subprocess for tests, the demo and benchmarks. This module stays importable without
the extra installed: everything heavy is imported lazily by the modules that need it.

Layout, one concern per module:

- ``config``: the options of a run; ``server``: binding, bootstrap and uvicorn;
- ``db``: the SQLite (WAL) state; ``bootstrap``: the admin application and ``admin.env``;
- ``hashing`` and ``tokens``: key secrets (salted scrypt hashes) and HS256 JWTs;
- ``middleware``: latency, fault plan, authentication and ``requests.log`` around every request;
- ``access``: roles and the permission rules (written down in its docstring);
- ``api_*``: the HTTP endpoints; ``engine`` and ``expressions``: the workflow engine;
- ``polldata``: who polled which task queue, and when (``api_polldata`` serves it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["data_dir_from", "default_data_dir"]


def default_data_dir() -> Path:
    """Where ``provision sandbox`` keeps its state unless ``--data-dir`` says otherwise.

    ``$ORKES_PROVISION_SANDBOX_DIR`` if set, else ``$XDG_DATA_HOME/orkes-provision/sandbox``, with
    ``~/.local/share`` when that variable is unset or not absolute (the XDG spec says relative values
    are to be ignored). ``--profile sandbox`` reads ``admin.env`` from the same place.
    """
    return data_dir_from(os.environ)


def data_dir_from(env: Mapping[str, str]) -> Path:
    """``default_data_dir`` for the environment ``env``: ``ORKES_PROVISION_SANDBOX_DIR`` wins."""
    override = env.get("ORKES_PROVISION_SANDBOX_DIR", "").strip()
    if override:
        return Path(override).expanduser()
    base = env.get("XDG_DATA_HOME", "").strip()
    root = Path(base) if base and os.path.isabs(base) else Path(env.get("HOME") or Path.home()) / ".local" / "share"
    return root / "orkes-provision" / "sandbox"
