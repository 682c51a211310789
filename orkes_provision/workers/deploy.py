"""``provision deploy kubernetes`` as a library call: a worker of the project file as a Deployment.

The Deployment gets the key id and secret from a Secret and the server URL from a ConfigMap of
the same name (``secretKeyRef``/``configMapKeyRef``), so it holds no secret itself. Where those
come from depends on the credential store of the application:

- ``k8s-secret:NAMESPACE/NAME``: the store already wrote them into the cluster; only the
  Deployment is rendered, in that namespace, reading ``NAME``.
- any other store (keyring, env file): the key is read from it and a Secret and ConfigMap are
  rendered beside the Deployment. The Secret then holds the key: it is written only to a file
  created 0600 (``render_to_directory``) or to ``kubectl apply`` on stdin, never printed.

Either way the pod template carries the SHA-256 of the key id, so that a new key rolls the pods
(``agent=False``). With the credential agent (the default of the command) the agent runs as a
native sidecar that alone mounts the Secret and follows it as kubelet refreshes it: a new key rolls
nothing, and the worker container holds only a local key (``kube.manifests``).

The pods reach Conductor at the server URL the key was created for. A loopback URL there
(``127.0.0.1``, ``localhost``, ``::1``) would be each pod's own loopback: rendering refuses it,
and the key must be created for an address the cluster can reach (``--server``).
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from orkes_provision.credentials.delivery import Hints, find_stored_key
from orkes_provision.credentials.stores import CredentialStore, StoredKey
from orkes_provision.credentials.stores.k8s_secret import K8sSecretStore
from orkes_provision.errors import ConfigError, StoreError, UsageError
from orkes_provision.fileio import atomic_write, write_private_file
from orkes_provision.kube import kubectl, manifests, rollout
from orkes_provision.kube.manifests import Manifest
from orkes_provision.workers.project import Project

DEFAULT_NAMESPACE = "default"


@dataclass
class WorkerManifests:
    """The rendered objects for one worker; ``secret_in_cluster`` when the store keeps the Secret itself."""

    worker: str
    app: str
    namespace: str
    deployment: Manifest
    credentials: str
    key_id: str
    store: str
    secret_in_cluster: bool
    agent: bool = False
    extra: list[Manifest] = field(default_factory=list)
    redact: tuple[SecretStr, ...] = field(default=(), repr=False)

    @property
    def manifests(self) -> list[Manifest]:
        """Everything to apply, the Secret and ConfigMap first so that the pods find them."""
        return [*self.extra, self.deployment]

    @property
    def public_manifests(self) -> list[Manifest]:
        """The manifests that hold no secret (what may be printed)."""
        return [m for m in self.manifests if not m.holds_secret]

    def to_dict(self) -> dict[str, object]:
        return {"worker": self.worker, "app": self.app, "namespace": self.namespace,
                "deployment": self.deployment.name, "credentials": self.credentials, "keyId": self.key_id,
                "keyIdChecksum": manifests.key_id_checksum(self.key_id), "store": self.store,
                "secretInCluster": self.secret_in_cluster, "agent": self.agent,
                "objects": [m.ref for m in self.manifests]}


def worker_manifests(project: Project, worker_name: str, *, store: CredentialStore, server: str | None,
                     image: str | None = None, namespace: str | None = None, replicas: int | None = None,
                     secret_name: str | None = None, cpu: str = "100m", memory: str = "256Mi",
                     run_as_user: int = manifests.DEFAULT_RUN_AS_USER,
                     server_flag: bool = False, agent: bool = False,
                     agent_image: str | None = None) -> WorkerManifests:
    """Render the Deployment of ``worker_name`` (and, for a store outside the cluster, its Secret and ConfigMap).

    ``server`` keys the stored credentials of a store outside the cluster; for a Secret in the
    cluster it is only checked against the server the Secret names. ``server_flag``: it came from
    ``--server`` (the hints then say so). Raises ``ConfigError`` when the project has no such
    worker or application, or the store no key, and ``UsageError`` when the pods could not reach
    the key's server (a loopback URL).
    """
    worker = project.worker(worker_name)
    app = project.app_name
    if app is None:
        raise ConfigError(f"{project.path or 'the project file'}: no [application] section",
                          "add [application] with name = \"...\" (the application the worker runs as)")
    image = image or getattr(worker, "image", None)
    if not image:
        raise UsageError(f"no container image for worker {worker.name}",
                         "give --image REGISTRY/NAME:TAG (an image holding the worker's code)")
    name = manifests.dns_label(worker.name)
    if not name:
        raise UsageError(f"worker name {worker.name!r} cannot name a Deployment",
                         "rename the worker with letters, digits or '-'")
    if isinstance(store, K8sSecretStore):
        if namespace is not None and namespace != store.namespace:
            raise UsageError(f"--namespace {namespace} differs from the store's namespace {store.namespace}",
                             "a pod can only read a Secret of its own namespace; drop --namespace or change --store")
        if secret_name is not None and secret_name != store.name:
            raise UsageError(f"--secret {secret_name} differs from the store's Secret {store.name}",
                             "drop --secret; the store names the Secret")
        key = store.read()
        if key is None:
            raise ConfigError(f"Secret {store.namespace}/{store.name} holds no key yet",
                              f"create one: {Hints(app=app, store=store.spec).create_app('--worker')}")
        if key.app and key.app != app:
            raise ConfigError(f"Secret {store.namespace}/{store.name} holds the key of application {key.app!r}, "
                              f"not {app!r}", "point [application].store or --store at this application's Secret")
        if server is not None and key.server != server:
            raise ConfigError(f"Secret {store.namespace}/{store.name} holds the key of {app} for {key.server}, "
                              f"not {server}", f"write a key for {server} into it: "
                              f"{Hints(app=app, store=store.spec, options=('--server', server)).new_key()}")
        namespace, credentials = store.namespace, store.name
        extra: list[Manifest] = []
        redact: tuple[SecretStr, ...] = ()
    else:
        namespace = manifests.check_namespace(namespace or DEFAULT_NAMESPACE)
        credentials = manifests.check_object_name(secret_name or default_secret_name(app), "Secret")
        key = _stored_key(store, server, app, server_flag=server_flag)
        extra = [manifests.secret_manifest(namespace, credentials, server=key.server, app=app, key_id=key.key_id,
                                      secret=key.secret),
                 manifests.configmap_manifest(namespace, credentials, server=key.server, app=app)]
        redact = (key.secret,)
    check_reachable_from_pods(key.server, app=app, store=store.spec)
    deployment = manifests.WorkerDeployment(
        name=name, namespace=namespace, app=app, worker=worker.name, image=image, command=list(worker.command),
        credentials=credentials, key_id=key.key_id, replicas=worker.replicas if replicas is None else replicas,
        env=dict(worker.env), cpu=cpu, memory=memory, run_as_user=run_as_user,
        agent_image=(agent_image or image) if agent else None).render()
    return WorkerManifests(worker=worker.name, app=app, namespace=namespace, deployment=deployment,
                           credentials=credentials, key_id=key.key_id, store=store.spec,
                           secret_in_cluster=isinstance(store, K8sSecretStore), agent=agent, extra=extra,
                           redact=redact)


def default_secret_name(app: str) -> str:
    """``<app>-conductor`` as a Kubernetes name (``conductor-credentials`` if the app name has no usable letter)."""
    base = manifests.dns_label(app)[:50].strip("-")
    return f"{base}-conductor" if base else "conductor-credentials"


def render_to_directory(rendered: WorkerManifests, directory: Path) -> list[Path]:
    """Write each manifest to ``directory``; a file holding a secret is created 0600 and replaced atomically."""
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} is not a directory", "give --render a directory path")
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as err:
        raise StoreError(f"cannot create {directory}: {err.strerror or err}", "choose another --render DIR") from None
    written: list[Path] = []
    for manifest in rendered.manifests:
        path = directory / manifest.filename
        if path.is_symlink():
            raise StoreError(f"refusing to write {path}: it is a symbolic link", "remove it or choose another DIR")
        try:
            if manifest.holds_secret:
                write_private_file(path, manifest.text.encode("utf-8"))
            else:
                atomic_write(path, manifest.text.encode("utf-8"), mode=0o644)
        except OSError as err:
            raise StoreError(f"cannot write {path}: {err.strerror or err}", "choose another --render DIR") from None
        written.append(path)
    return written


def apply_to_cluster(rendered: WorkerManifests, *, wait: bool = False,
                     timeout: float = 300.0) -> list[str]:
    """``kubectl apply`` the manifests (on stdin); with ``wait``, block until the rollout completes."""
    lines = kubectl.apply_manifests(rendered.manifests, redact=rendered.redact)
    if wait:
        rollout.wait_for_rollout(rendered.namespace, rendered.deployment.name, timeout)
    return lines


_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def pods_cannot_reach(server: str) -> bool:
    """True when ``server`` names this machine only: a loopback or unspecified address, or ``localhost``.

    Inside a pod such an address is the pod itself. Names are judged by what they say, not by what
    they resolve to here: a pod resolves ``localhost`` to its own loopback, whatever this machine does.
    """
    host = (urllib.parse.urlsplit(server).hostname or "").lower().rstrip(".")
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
    except ValueError:
        try:
            # What a pod's resolver reads as an IPv4 address too: 127.1, 0x7f.0.0.1, 2130706433.
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except (OSError, ValueError):
            return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def check_reachable_from_pods(server: str, *, app: str, store: str) -> None:
    """``UsageError`` when the pods would get a ``CONDUCTOR_SERVER_URL`` that points at themselves."""
    if not pods_cannot_reach(server):
        return
    create = Hints(app=app, store=store, options=("--server", "URL")).new_key()
    raise UsageError(
        f"the pods would reach Conductor at {server}, a loopback address: inside a pod that is the pod itself",
        f"with URL an address of the server the cluster reaches, run '{create}', then deploy with "
        "--server URL (docs/kubernetes.md, 'Against a real cluster')")


def _stored_key(store: CredentialStore, server: str | None, app: str, *, server_flag: bool = False) -> StoredKey:
    if server is None:
        raise ConfigError(f"no server to look up the key of {app} in {store.describe()}",
                          "give --server, set server in the project file, or set CONDUCTOR_SERVER_URL")
    key = find_stored_key(store, server, app)
    if key is None:
        raise ConfigError(f"{store.describe()} holds no key of {app} for {server}",
                          f"create one: {Hints(app=app, store=store.spec).create_app('--worker')}")
    if key.server != server:
        # The manifests carry the server URL to the pods: an alias cannot be proven here without
        # a request, and a key is never sent to a server it was not issued for.
        if pods_cannot_reach(key.server):
            # Deploying with the key's own server would be refused: the way on is a key for this one.
            hint = f"store a key for {server}: " \
                   f"{Hints(app=app, store=store.spec, options=('--server', server)).new_key()}"
        else:
            hint = f"drop --server, or deploy with --server {key.server}" if server_flag \
                else f"deploy with --server {key.server}"
        raise ConfigError(f"{store.describe()} holds the key of {app} for {key.server}, not {server}", hint)
    return key
