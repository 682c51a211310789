"""The sandbox's state: one SQLite database in WAL mode under the data dir.

Everything survives a restart: applications, roles, keys (salted hashes only), grants, users,
groups and their members, custom roles, task and workflow definitions, workflows, queued tasks and the JWT
signing key. The server runs every
statement on its event loop thread through this single connection; the lock only matters for
callers on other threads (the Starlette test client), and makes each transaction atomic.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS applications (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created_by TEXT, updated_by TEXT,
    create_time INTEGER NOT NULL, update_time INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS app_tags (
    app_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (app_id, key));
CREATE TABLE IF NOT EXISTS app_roles (app_id TEXT NOT NULL, role TEXT NOT NULL, PRIMARY KEY (app_id, role));
CREATE TABLE IF NOT EXISTS access_keys (
    id TEXT PRIMARY KEY, app_id TEXT NOT NULL, salt BLOB NOT NULL, hash BLOB NOT NULL,
    status TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS access_keys_app ON access_keys (app_id);
CREATE TABLE IF NOT EXISTS grants (
    subject_type TEXT NOT NULL, subject_id TEXT NOT NULL, target_type TEXT NOT NULL,
    target_id TEXT NOT NULL, access TEXT NOT NULL,
    PRIMARY KEY (subject_type, subject_id, target_type, target_id, access));
CREATE INDEX IF NOT EXISTS grants_target ON grants (target_type, target_id);
CREATE TABLE IF NOT EXISTS task_defs (name TEXT PRIMARY KEY, body TEXT NOT NULL, created_by TEXT);
CREATE TABLE IF NOT EXISTS workflow_defs (
    name TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL, created_by TEXT,
    PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS workflows (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL, status TEXT NOT NULL,
    body TEXT NOT NULL, created_by TEXT, create_time INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, workflow_id TEXT NOT NULL, seq INTEGER NOT NULL, task_def_name TEXT NOT NULL,
    status TEXT NOT NULL, domain TEXT, visible_at INTEGER NOT NULL, queued INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_workflow ON tasks (workflow_id, seq);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, uuid TEXT NOT NULL, create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS user_roles (user_id TEXT NOT NULL, role TEXT NOT NULL, PRIMARY KEY (user_id, role));
CREATE TABLE IF NOT EXISTS user_groups (
    id TEXT PRIMARY KEY, description TEXT NOT NULL, default_access TEXT NOT NULL, create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS group_roles (group_id TEXT NOT NULL, role TEXT NOT NULL, PRIMARY KEY (group_id, role));
CREATE TABLE IF NOT EXISTS group_members (
    group_id TEXT NOT NULL, user_id TEXT NOT NULL, PRIMARY KEY (group_id, user_id));
CREATE INDEX IF NOT EXISTS group_members_user ON group_members (user_id);
CREATE TABLE IF NOT EXISTS custom_roles (
    name TEXT PRIMARY KEY, permissions TEXT NOT NULL, create_time INTEGER NOT NULL, update_time INTEGER NOT NULL);
"""


class Database:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Create the file 0600 from the first byte: it holds the JWT signing key and key hashes.
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a crash of the process, which is what a sandbox needs.
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(SCHEMA)
        self._migrate()
        self._depth = 0

    def _migrate(self) -> None:
        # Data dirs made before the queue flag existed (their task tables are empty).
        columns = {str(r["name"]) for r in self._conn.execute("PRAGMA table_info(tasks)").fetchall()}
        if "queued" not in columns:
            self._conn.execute("ALTER TABLE tasks ADD COLUMN queued INTEGER NOT NULL DEFAULT 0")
        self._conn.execute("CREATE INDEX IF NOT EXISTS tasks_queue ON tasks (task_def_name, queued, visible_at)")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def tx(self) -> Iterator[Database]:
        """One atomic transaction; nested uses join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                self._depth = 0

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._lock:
            return self._conn.execute(sql, params).rowcount

    def one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
            return row

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, params).fetchall())

    def get_meta(self, key: str) -> str | None:
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        self.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                     "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def loads_obj(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("stored document is not an object")
    return value
