"""First start: the bootstrap admin application, and ``admin.env`` with its key.

``admin.env`` is the one file of the data dir that holds a secret. It is created 0600 from its
first byte and replaced atomically. On every start its URL is rewritten with the real port; its
key is reused when it still belongs to the admin application and is ACTIVE, else a new key is made.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from orkes_provision.sandbox.config import ADMIN_ENV
from orkes_provision.sandbox.hashing import hash_secret, new_key_id, new_secret, verify_secret
from orkes_provision.sandbox.http import now_ms
from orkes_provision.sandbox.state import SandboxState

ADMIN_APP_NAME = "sandbox-admin"
_META_ADMIN_APP = "admin_app_id"


@dataclass(frozen=True)
class AdminCredentials:
    app_id: str
    key_id: str
    secret: SecretStr
    server_url: str


def ensure_admin(state: SandboxState, server_url: str) -> AdminCredentials:
    db = state.db
    app_id = db.get_meta(_META_ADMIN_APP)
    if app_id is None or db.one("SELECT id FROM applications WHERE id = ?", (app_id,)) is None:
        app_id = new_key_id()
        now = now_ms()
        with db.tx():
            db.execute("INSERT INTO applications (id, name, created_by, updated_by, create_time, update_time) "
                       "VALUES (?, ?, 'sandbox', 'sandbox', ?, ?)", (app_id, ADMIN_APP_NAME, now, now))
            db.set_meta(_META_ADMIN_APP, app_id)
    with db.tx():
        db.execute("INSERT OR IGNORE INTO app_roles (app_id, role) VALUES (?, 'ADMIN')", (app_id,))
    env_path = state.config.data_dir / ADMIN_ENV
    existing = read_env_file(env_path)
    key_id, secret = existing.get("CONDUCTOR_AUTH_KEY"), existing.get("CONDUCTOR_AUTH_SECRET")
    if not (key_id and secret and _key_works(state, app_id, key_id, secret)):
        key_id, secret = new_key_id(), new_secret()
        salt, digest = hash_secret(secret)
        with db.tx():
            db.execute("INSERT INTO access_keys (id, app_id, salt, hash, status, created_at) "
                       "VALUES (?, ?, ?, ?, 'ACTIVE', ?)", (key_id, app_id, salt, digest, now_ms()))
    write_env_file(env_path, {"CONDUCTOR_SERVER_URL": server_url, "CONDUCTOR_AUTH_KEY": key_id,
                              "CONDUCTOR_AUTH_SECRET": secret})
    return AdminCredentials(app_id=app_id, key_id=key_id, secret=SecretStr(secret), server_url=server_url)


def _key_works(state: SandboxState, app_id: str, key_id: str, secret: str) -> bool:
    row = state.db.one("SELECT * FROM access_keys WHERE id = ? AND app_id = ?", (key_id, app_id))
    return row is not None and row["status"] == "ACTIVE" and verify_secret(secret, row["salt"], row["hash"])


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines; blank lines and ``#`` comments skipped, no quoting (we never write any)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def write_env_file(path: Path, values: dict[str, str]) -> None:
    for key, value in values.items():
        # Values are URLs, UUIDs and URL-safe secrets; refuse anything a dotenv parser would rewrite.
        if any(c in value for c in "$'\"\\ \n#"):
            raise ValueError(f"refusing to write an unsafe value for {key}")
    body = "# Written by 'provision sandbox': the bootstrap ADMIN application of this sandbox.\n"
    body += "".join(f"{key}={value}\n" for key, value in values.items())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
