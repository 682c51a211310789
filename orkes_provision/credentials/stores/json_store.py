"""The json store: print the new key once, as JSON, for piping into another secret manager.

``provision app --store json | vault kv put secret/worker -`` and the like. Nothing is kept, so
``load`` never finds a key (each run that needs a key creates one). Refused when stdout is a
terminal, where the secret would land in scrollback, unless ``--show-secret`` is given.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

from orkes_provision.credentials.stores.base import StoredKey, canonical_server
from orkes_provision.errors import UsageError


class JsonStore:
    spec = "json"

    def __init__(self, stdout: TextIO | None = None, *, show_secret: bool = False) -> None:
        self._stdout = stdout
        self._show_secret = show_secret
        self.check_not_terminal()

    @property
    def stream(self) -> TextIO:
        return self._stdout if self._stdout is not None else sys.stdout

    def check_not_terminal(self) -> None:
        """Refuse before any key is created, not after."""
        if self._show_secret:
            return
        isatty = getattr(self.stream, "isatty", None)
        if callable(isatty) and isatty():
            raise UsageError("--store json prints the key secret, and stdout is a terminal",
                             "pipe the output into your secret manager, or add --show-secret to print it here")

    def load(self, server: str, app: str) -> StoredKey | None:
        return None

    def save(self, key: StoredKey) -> None:
        self.check_not_terminal()
        document = {"server": canonical_server(key.server), "app": key.app, "keyId": key.key_id,
                    "secret": key.secret.get_secret_value()}
        self.stream.write(json.dumps(document) + "\n")
        self.stream.flush()

    def delete(self, server: str, app: str) -> None:
        return None

    def describe(self, server: str | None = None, app: str | None = None) -> str:
        return "json (printed once to stdout; not kept)"
