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
- ``api_*``: the HTTP endpoints; ``engine`` and ``expressions``: the workflow engine.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_data_dir"]


def default_data_dir() -> Path:
    """Where ``provision sandbox`` keeps its state unless ``--data-dir`` says otherwise.

    ``$XDG_DATA_HOME/orkes-provision/sandbox``, with ``~/.local/share`` when the variable is unset
    or not absolute (the XDG spec says relative values are to be ignored).
    """
    base = os.environ.get("XDG_DATA_HOME", "").strip()
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "share"
    return root / "orkes-provision" / "sandbox"
