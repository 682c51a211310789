"""Credential stores: where an application's key id and secret are kept.

``open_store(spec)`` turns a ``--store`` value into a store:

- ``keyring`` (default where a keyring backend works): see ``keyring_store`` for the naming;
- ``env-file:PATH``: ``CONDUCTOR_SERVER_URL``/``CONDUCTOR_AUTH_KEY``/``CONDUCTOR_AUTH_SECRET`` in a file;
- ``json``: printed once to stdout, for piping into another secret manager;
- ``memory``: kept in the process (tests);
- ``k8s-secret:NAMESPACE/NAME``: a Kubernetes Secret (and ConfigMap) written through kubectl, see ``k8s_secret``;
- ``mounted-secret:DIR``: that Secret as a pod mounts it (read-only, followed as kubelet updates it).
"""

from __future__ import annotations

from typing import TextIO

from orkes_provision.credentials.stores.base import CredentialStore, StoredKey
from orkes_provision.errors import UsageError

__all__ = ["STORE_FORMS", "CredentialStore", "StoredKey", "open_store"]

STORE_FORMS = "keyring, env-file:PATH, json, k8s-secret:NAMESPACE/NAME, mounted-secret:DIR"


def open_store(spec: str | None, *, stdout: TextIO | None = None, show_secret: bool = False) -> CredentialStore:
    """Open the store named by ``spec`` (``None``: the keyring, if a usable backend exists).

    Raises ``UsageError`` for an unknown or unsupported spec and ``StoreError`` when the store
    cannot work here (no keyring backend, an env file that cannot be written), so that callers
    fail before they create a key.
    """
    if spec is None or spec.strip() == "keyring":
        from orkes_provision.credentials.stores.keyring_store import KeyringStore

        return KeyringStore()
    spec = spec.strip()
    kind, sep, arg = spec.partition(":")
    if kind == "env-file":
        if not sep or not arg.strip():
            raise UsageError("--store env-file needs a path", "write it as --store env-file:./worker.env")
        from orkes_provision.credentials.stores.envfile import EnvFileStore

        store = EnvFileStore(arg.strip())
        store.check_writable()
        return store
    if spec == "json":
        from orkes_provision.credentials.stores.json_store import JsonStore

        return JsonStore(stdout, show_secret=show_secret)
    if spec == "memory":
        from orkes_provision.credentials.stores.memory import MemoryStore

        return MemoryStore()
    if kind == "k8s-secret":
        from orkes_provision.credentials.stores.k8s_secret import K8sSecretStore

        k8s_store = K8sSecretStore.from_spec(spec)
        k8s_store.check_usable()
        return k8s_store
    if kind == "mounted-secret":
        if not sep or not arg.strip():
            raise UsageError("--store mounted-secret needs a directory",
                             "write it as --store mounted-secret:/var/run/orkes-provision/key")
        from orkes_provision.credentials.stores.mounted_secret import MountedSecretStore

        return MountedSecretStore(arg.strip())
    raise UsageError(f"unknown credential store {spec!r}", f"use one of: {STORE_FORMS}")
