"""Kubernetes manifests: names checked, YAML values quoted, templates rendered, Secrets and ConfigMaps.

Templates (``kube/templates/*.yaml``) are YAML with ``${name}`` placeholders. Every value is
quoted by ``yaml_scalar`` (a YAML double-quoted string, or a number), so no value can change the
document's structure. A placeholder alone on its line takes a mapping or a list and becomes a
block at that indentation; an empty one removes the line.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from orkes_provision.errors import StoreError, UsageError

log = logging.getLogger(__name__)

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "orkes-provision"
APP_ANNOTATION = "orkes-provision/app"
SERVER_ANNOTATION = "orkes-provision/server"
KEY_ID_ANNOTATION = "orkes-provision/key-id"
WORKER_ANNOTATION = "orkes-provision/worker"
CREDENTIALS_ANNOTATION = "orkes-provision/credentials"
CHECKSUM_ANNOTATION = "orkes-provision/key-id-checksum"

SERVER_KEY = "CONDUCTOR_SERVER_URL"
AUTH_KEY = "CONDUCTOR_AUTH_KEY"
AUTH_SECRET = "CONDUCTOR_AUTH_SECRET"

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


# --- names ------------------------------------------------------------------------------------


def check_namespace(namespace: str) -> str:
    """``namespace`` if it is a valid Kubernetes namespace name (RFC 1123 label), else ``UsageError``."""
    if not _DNS_LABEL.match(namespace):
        raise UsageError(f"not a Kubernetes namespace name: {namespace[:80]!r}",
                         "use lower-case letters, digits and '-', at most 63 characters, e.g. 'workers'")
    return namespace


def check_object_name(name: str, what: str = "object") -> str:
    """``name`` if it can name a Secret, ConfigMap or Deployment (RFC 1123 subdomain), else ``UsageError``."""
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise UsageError(f"not a valid Kubernetes {what} name: {name[:80]!r}",
                         "use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit")
    return name


def dns_label(value: str) -> str:
    """``value`` turned into an RFC 1123 label (lower case, ``-`` for anything else, at most 63 chars)."""
    label = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")[:63].strip("-")
    return label


def label_value(value: str) -> str | None:
    """``value`` as a label value (63 chars of ``[A-Za-z0-9-_.]``, alphanumeric at both ends), or None."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", value)[:63]
    cleaned = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)
    return cleaned or None


def check_quantity(value: str, what: str) -> str:
    if not _QUANTITY.match(value):
        raise UsageError(f"not a Kubernetes quantity for {what}: {value[:40]!r}",
                         "write it like 100m or 0.5 for CPU, 256Mi or 1Gi for memory")
    return value


def key_id_checksum(key_id: str) -> str:
    """The pod-template annotation value for ``key_id``: its SHA-256, so that a new key rolls the pods.

    Only the key id is hashed, never the secret: the annotation is readable by anyone who can
    read the Deployment.
    """
    return hashlib.sha256(key_id.encode("utf-8")).hexdigest()


# --- YAML -------------------------------------------------------------------------------------

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
# Words a YAML 1.1 parser (go-yaml in kubectl, PyYAML) reads as booleans or null when unquoted.
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


def _printable(ch: str) -> bool:
    # YAML's printable set, minus the characters that a YAML 1.1 parser takes as line breaks.
    code = ord(ch)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return False
    return not (code in (0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF) or 0xD800 <= code <= 0xDFFF)


def yaml_scalar(value: object) -> str:
    """``value`` as a YAML scalar that every parser reads back exactly: strings are always quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "null"
    if not isinstance(value, str):
        raise TypeError(f"cannot render {type(value).__name__} as a YAML scalar")
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif _printable(ch):
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _yaml_key(key: str) -> str:
    return key if _PLAIN_KEY.match(key) and key.lower() not in _YAML_WORDS else yaml_scalar(key)


def yaml_flow(value: object) -> str:
    """``value`` on one line: a scalar, or a JSON-like flow collection (which YAML reads too)."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{yaml_scalar(str(k))}: {yaml_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(yaml_flow(v) for v in value) + "]"
    return yaml_scalar(value)


def yaml_block(value: object, indent: int = 0) -> list[str]:
    """``value`` (a mapping or a list) as block YAML lines indented by ``indent`` spaces."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, Mapping | list | tuple) and item:
                lines.append(f"{pad}{_yaml_key(str(key))}:")
                lines.extend(yaml_block(item, indent + 2))
            else:
                lines.append(f"{pad}{_yaml_key(str(key))}: {yaml_flow(item)}")
        return lines
    if isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, Mapping | list | tuple) and item:
                inner = yaml_block(item, indent + 2)
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines.extend(inner[1:])
            else:
                lines.append(f"{pad}- {yaml_flow(item)}")
        return lines
    raise TypeError(f"cannot render {type(value).__name__} as a YAML block")


_PLACEHOLDER = re.compile(r"\$\{([a-z_][a-z0-9_]*)\}")
_BLOCK_LINE = re.compile(r"^(?P<indent>[ ]*)\$\{(?P<name>[a-z_][a-z0-9_]*)\}[ ]*$")


def render_template_text(text: str, values: Mapping[str, object]) -> str:
    """Fill the ``${name}`` placeholders of ``text`` (see the module docstring).

    A placeholder without a value, or a value no placeholder uses, is a bug: ``KeyError``.
    """
    used: set[str] = set()
    out: list[str] = []
    for line in text.splitlines():
        block = _BLOCK_LINE.match(line)
        if block is not None:
            name = block.group("name")
            used.add(name)
            value = values[name]
            if not isinstance(value, Mapping | list | tuple):
                raise TypeError(f"placeholder {name} on its own line needs a mapping or a list")
            out.extend(yaml_block(value, len(block.group("indent"))))
            continue

        def substitute(match: re.Match[str]) -> str:
            used.add(match.group(1))
            return yaml_flow(values[match.group(1)])

        out.append(_PLACEHOLDER.sub(substitute, line))
    unused = set(values) - used
    if unused:
        raise KeyError(f"template values not used: {', '.join(sorted(unused))}")
    return "\n".join(out) + "\n"


def render_template(name: str, values: Mapping[str, object], templates_dir: Path | None = None) -> str:
    """Render ``kube/templates/<name>`` with ``values``."""
    path = (templates_dir or TEMPLATES_DIR) / name
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise StoreError(f"cannot read the Kubernetes template {path}: {err.strerror or err}",
                         "reinstall orkes-provision; the templates ship with it") from None
    return render_template_text(text, values)


# --- manifests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """One rendered object. ``text`` may hold a secret (``holds_secret``): it is never in the repr."""

    kind: str
    name: str
    namespace: str
    text: str = field(repr=False)
    holds_secret: bool = False

    @property
    def filename(self) -> str:
        return f"{self.name}.{self.kind.lower()}.yaml"

    @property
    def ref(self) -> str:
        return f"{self.kind.lower()}/{self.name}"


def managed_labels(app: str) -> dict[str, str]:
    labels = {MANAGED_BY_LABEL: MANAGED_BY}
    part_of = label_value(app)
    if part_of is not None:
        labels["app.kubernetes.io/part-of"] = part_of
    return labels


def secret_manifest(namespace: str, name: str, *, server: str, app: str, key_id: str,
                    secret: SecretStr) -> Manifest:
    """The Secret holding ``CONDUCTOR_AUTH_KEY`` and ``CONDUCTOR_AUTH_SECRET`` (base64 ``data``).

    ``data``, not ``stringData``: server-side apply tracks ``data`` per key, and reading back
    gives the same field that was written.
    """
    values = {
        "name": name, "namespace": namespace, "labels": managed_labels(app),
        "annotations": {APP_ANNOTATION: app, SERVER_ANNOTATION: server, KEY_ID_ANNOTATION: key_id},
        "key_id_b64": _b64(key_id), "secret_b64": _b64(secret.get_secret_value()),
    }
    return Manifest("Secret", name, namespace, render_template("secret.yaml", values), holds_secret=True)


def configmap_manifest(namespace: str, name: str, *, server: str, app: str) -> Manifest:
    """The ConfigMap holding ``CONDUCTOR_SERVER_URL`` (not a secret, so that it can be read and diffed)."""
    values = {
        "name": name, "namespace": namespace, "labels": managed_labels(app),
        "annotations": {APP_ANNOTATION: app}, "server": server,
    }
    return Manifest("ConfigMap", name, namespace, render_template("configmap.yaml", values))


@dataclass(frozen=True)
class WorkerDeployment:
    """What a worker's Deployment is made of; ``render`` turns it into a manifest."""

    name: str
    namespace: str
    app: str
    worker: str
    image: str
    command: Sequence[str]
    credentials: str  # the Secret and the ConfigMap (same name)
    key_id: str
    replicas: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    cpu: str = "100m"
    memory: str = "256Mi"

    def selector(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": self.name, "app.kubernetes.io/component": "conductor-worker"}

    def render(self) -> Manifest:
        check_namespace(self.namespace)
        check_object_name(self.name, "Deployment")
        check_object_name(self.credentials, "Secret")
        check_quantity(self.cpu, "--cpu")
        check_quantity(self.memory, "--memory")
        if not self.image.strip() or any(ch.isspace() for ch in self.image):
            raise UsageError(f"not a container image reference: {self.image[:80]!r}",
                             "give --image REGISTRY/NAME:TAG, e.g. --image ghcr.io/acme/greetings-worker:1.0")
        bad = sorted(n for n in self.env if not _ENV_NAME.match(n))
        if bad:
            raise UsageError(f"worker {self.worker}: {bad[0]!r} is not a valid environment variable name",
                             "rename it in the project file's env table")
        if self.replicas < 0:
            raise UsageError("--replicas must be 0 or more")
        labels = {**self.selector(), **managed_labels(self.app)}
        values = {
            "name": self.name, "namespace": self.namespace, "labels": labels, "pod_labels": labels,
            "annotations": {APP_ANNOTATION: self.app, WORKER_ANNOTATION: self.worker,
                            CREDENTIALS_ANNOTATION: self.credentials},
            "selector": self.selector(), "replicas": self.replicas, "key_id_checksum": key_id_checksum(self.key_id),
            "container": dns_label(self.worker) or "worker", "image": self.image, "command": list(self.command),
            "config_map": self.credentials, "secret": self.credentials,
            "extra_env": [{"name": k, "value": v} for k, v in self.env.items()],
            "cpu": self.cpu, "memory": self.memory,
        }
        return Manifest("Deployment", self.name, self.namespace, render_template("deployment.yaml", values))


def manifest_stream(manifests: Iterable[Manifest]) -> str:
    """Several manifests as one multi-document YAML stream."""
    return "---\n".join(m.text for m in manifests)


def _b64(value: str) -> str:
    return base64.b64encode(value.encode("utf-8")).decode("ascii")
