"""The mounted-secret store: a key read from a directory kubelet keeps up to date (read-only).

In a pod rendered by ``provision deploy kubernetes`` the credential agent's sidecar mounts the
application's Secret and ConfigMap as one projected volume: a file per entry,
``CONDUCTOR_SERVER_URL``, ``CONDUCTOR_AUTH_KEY`` and ``CONDUCTOR_AUTH_SECRET``. When the Secret
changes (a rotation), kubelet writes the new files into a fresh timestamped directory and swaps
the ``..data`` link to it, so a reader sees either the old key or the new one, never half of each.
The agent re-reads the store every second; ``read`` looks at the files' modification times and
inodes first and parses them only when they changed.

The entries are kubelet's links into ``..data``: each is resolved, then read under the trust rule
(owned by root or the caller, not writable by others), as any file credentials come from.
Nothing is ever written: ``save`` and ``delete`` are refused (the Secret is changed in the cluster,
by ``provision keys rotate --store k8s-secret:NS/NAME``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from pydantic import SecretStr

from orkes_provision import trust
from orkes_provision.credentials.stores.base import StoredKey, canonical_server
from orkes_provision.credentials.stores.envfile import KEY_VAR, SECRET_VAR, SERVER_VAR
from orkes_provision.errors import StoreError

ENTRIES = (SERVER_VAR, KEY_VAR, SECRET_VAR)
APP_ENTRY = "ORKES_PROVISION_APP"  # optional: the application the key belongs to


class MountedSecretStore:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory).absolute()
        self.spec = f"mounted-secret:{self.directory}"
        self._lock = threading.Lock()
        self._seen: tuple[tuple[int, int], ...] | None = None
        self._key: StoredKey | None = None

    def read(self) -> StoredKey | None:
        """The key in the directory (``None`` while an entry is missing); parsed again only when a file changed."""
        marks = self._marks()
        with self._lock:
            if marks is not None and marks == self._seen:
                return self._key
        key = self._parse() if marks is not None else None
        with self._lock:
            self._seen, self._key = marks, key
        return key

    def load(self, server: str, app: str) -> StoredKey | None:
        key = self.read()
        if key is None or key.server != canonical_server(server) or (key.app and key.app != app):
            return None
        return key

    def save(self, key: StoredKey) -> None:
        raise StoreError(f"{self.describe()} is read-only: kubelet writes it from the Secret",
                         "change the Secret in the cluster: --store k8s-secret:NAMESPACE/NAME")

    def delete(self, server: str, app: str) -> None:
        self.save(StoredKey(server, app, "", SecretStr("")))

    def describe(self, server: str | None = None, app: str | None = None) -> str:
        return f"the mounted Secret in {self.directory}"

    def _marks(self) -> tuple[tuple[int, int], ...] | None:
        marks = []
        for name in ENTRIES:
            try:
                info = os.stat(self.directory / name)  # follows kubelet's link to the current files
            except FileNotFoundError:
                return None
            except OSError as err:
                raise StoreError(f"cannot read {self.directory / name}: {err.strerror or err}",
                                 "check the volume mount of the agent's container") from None
            marks.append((info.st_ino, info.st_mtime_ns))
        return tuple(marks)

    def _parse(self) -> StoredKey | None:
        values: dict[str, str] = {}
        # All entries from one generation of kubelet's files: "..data" resolved once, not per file.
        generation = self.directory / "..data"
        base = Path(os.path.realpath(generation)) if generation.is_symlink() else self.directory
        for name in (*ENTRIES, APP_ENTRY):
            path = Path(os.path.realpath(base / name))
            data = trust.read_trusted(path, error=StoreError, way_out="mount the Secret with kubelet's defaults")
            if data is None:
                if name == APP_ENTRY:
                    continue
                return None
            try:
                values[name] = data.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise StoreError(f"{self.directory / name} is not UTF-8 text",
                                 "write the Secret with 'provision app APP --store k8s-secret:NS/NAME'") from None
        if not all(values.get(name) for name in ENTRIES):
            return None
        return StoredKey(server=canonical_server(values[SERVER_VAR]), app=values.get(APP_ENTRY, ""),
                         key_id=values[KEY_VAR], secret=SecretStr(values[SECRET_VAR]))
