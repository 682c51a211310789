"""Running ``kubectl``: secrets on stdin only, server-side apply, errors made one line.

Why ``kubectl`` and not a client library: it is what cluster users already have configured
(context, exec credential plugins, proxies), and it adds no dependency. Secrets reach it only on
stdin (``kubectl apply -f -``), never in argv, where any user of the machine could read them
from ``/proc``; the provisioning credentials of this process are removed from its environment.

Manifests are applied with server-side apply (``--server-side``): client-side apply would copy the
whole manifest, secret included, into the ``kubectl.kubernetes.io/last-applied-configuration``
annotation, and server-side apply also leaves keys of a Secret or ConfigMap that others own alone.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from pydantic import SecretStr

from orkes_provision.errors import StoreError
from orkes_provision.kube.manifests import Manifest, manifest_stream

log = logging.getLogger(__name__)

KUBECTL = "kubectl"
FIELD_MANAGER = "orkes-provision"
# kubectl needs none of these, and an exec credential plugin it starts would inherit them.
_HIDDEN_FROM_KUBECTL = ("CONDUCTOR_AUTH_KEY", "CONDUCTOR_AUTH_SECRET", "CONDUCTOR_AUTH_TOKEN",
                        "CONDUCTOR_SERVER_AUTH_KEY", "CONDUCTOR_SERVER_AUTH_SECRET")
DEFAULT_TIMEOUT = 60.0


def kubectl_path() -> str:
    """The ``kubectl`` on PATH, or ``StoreError`` saying how to get one."""
    found = shutil.which(KUBECTL)
    if found is None:
        raise StoreError("kubectl is not installed or not on PATH",
                         "install kubectl (https://kubernetes.io/docs/tasks/tools/) and point it at your cluster")
    return found


def kubectl(args: Sequence[str], *, stdin: str | None = None, timeout: float = DEFAULT_TIMEOUT,
            redact: Sequence[SecretStr] = (), check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``kubectl ARGS`` with ``stdin`` and return the finished process.

    ``args`` must never hold a secret; secrets go in ``stdin``. With ``check`` a non-zero exit is a
    ``StoreError`` carrying the first line of kubectl's error output, with every secret of
    ``redact`` masked, plain and base64 (kubectl may quote what it was given).
    """
    argv = [kubectl_path(), *args]
    env = {k: v for k, v in os.environ.items() if k not in _HIDDEN_FROM_KUBECTL}
    shown = _shown_command(args)
    log.debug("running %s", shown)
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, env=env,
                              check=False)
    except subprocess.TimeoutExpired:
        raise StoreError(f"{shown} did not answer within {timeout:.0f}s",
                         "check that the cluster is reachable: kubectl cluster-info") from None
    except OSError as err:
        raise StoreError(f"cannot run kubectl: {err.strerror or err}", "check the kubectl installation") from None
    if check and done.returncode != 0:
        raise kubectl_failure(shown, done.stderr, redact)
    return done


def kubectl_failure(shown: str, stderr: str, redact: Sequence[SecretStr] = ()) -> StoreError:
    """The error for a failed kubectl call: its first error line (masked), with a hint for the usual causes."""
    line = first_line(stderr, redact) or "no error output"
    if "(NotFound)" in line and "namespaces" in line:
        hint = "create the namespace first: kubectl create namespace NAME"
    elif "(Forbidden)" in line:
        hint = "the current kubectl context lacks the permission; ask a cluster admin for it (RBAC)"
    elif "connection" in line.lower() or "unable to connect" in line.lower() or "dial tcp" in line:
        hint = "check that the cluster is up and kubectl's context is right: kubectl config current-context"
    else:
        hint = "run the same kubectl command yourself to see the full error"
    return StoreError(f"{shown} failed: {line}", hint)


def first_line(text: str, redact: Sequence[SecretStr] = ()) -> str:
    """The first non-blank line of ``text``, each secret of ``redact`` (and its base64) masked."""
    masks = [form for secret in redact for form in _forms(secret.get_secret_value()) if form]
    for line in text.splitlines():
        line = line.strip()
        if line:
            for mask in masks:
                line = line.replace(mask, "********")
            return line[:300]
    return ""


def _forms(value: str) -> tuple[str, str]:
    return value, base64.b64encode(value.encode("utf-8")).decode("ascii")


def _shown_command(args: Sequence[str]) -> str:
    return " ".join(["kubectl", *args])[:200]


def get_object(kind: str, namespace: str, name: str, *, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any] | None:
    """``kubectl get KIND NAME -n NS -o json``; ``None`` when it does not exist."""
    done = kubectl(["get", kind, name, "-n", namespace, "-o", "json", "--ignore-not-found"], timeout=timeout)
    if not done.stdout.strip():
        return None
    return parse_json(done.stdout, f"kubectl get {kind} {name}")


def apply_manifests(manifests: Sequence[Manifest], *, timeout: float = DEFAULT_TIMEOUT,
                    redact: Sequence[SecretStr] = ()) -> list[str]:
    """Server-side apply ``manifests`` through stdin; returns kubectl's report lines.

    ``--force-conflicts``: the user named these objects for this tool to write, so fields that an
    earlier ``kubectl create`` or ``apply`` owned are taken over rather than refused.
    """
    if not manifests:
        return []
    done = kubectl(["apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "--force-conflicts", "-f", "-"],
                   stdin=manifest_stream(manifests), timeout=timeout, redact=redact)
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def parse_json(text: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise StoreError(f"{what} did not print JSON", "check the kubectl version (1.24 or later)") from None
    if not isinstance(data, dict):
        raise StoreError(f"{what} printed unexpected JSON", "check the kubectl version (1.24 or later)")
    return data
