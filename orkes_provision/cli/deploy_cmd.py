"""``provision deploy``: render or apply worker deployments (Kubernetes)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from orkes_provision.cli.common import (
    DURATION,
    K8S_NAME,
    STORE_KINDS,
    WORKER_NAME,
    ProvisionGroup,
    command_options,
    common_options,
    emit,
    info,
    opts,
)
from orkes_provision.errors import UsageError

if TYPE_CHECKING:
    from orkes_provision.workers.deploy import WorkerManifests


@click.group("deploy", cls=ProvisionGroup)
@common_options
def deploy() -> None:
    """Render or apply worker deployments.

    \b
    Example:
      provision deploy kubernetes greetings --image ghcr.io/acme/greetings:1.0 --apply
    """


@deploy.command("kubernetes")
@click.argument("worker", type=WORKER_NAME)
@click.option("--render", "render_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path),
              help="Write the manifests to DIR (a file holding the secret is created 0600).")
@click.option("--apply", "apply_", is_flag=True, help="Pipe the manifests to 'kubectl apply --server-side -f -'.")
@click.option("--namespace", "-n", metavar="NS", type=K8S_NAME,
              help="Namespace (default: the store's, else 'default').")
@click.option("--replicas", type=click.IntRange(min=0, max=1000), help="Pods to run (default: the worker's replicas).")
@click.option("--image", metavar="IMAGE", help="Container image holding the worker's code (required).")
@click.option("--store", "store_spec", metavar="SPEC",
              help=f"Where the key is: {STORE_KINDS} (default: the project's store).")
@click.option("--secret", "secret_name", metavar="NAME", type=K8S_NAME,
              help="Secret/ConfigMap name when the store is outside the cluster (default: APP-conductor).")
@click.option("--cpu", default="100m", show_default=True, metavar="QTY", help="CPU request.")
@click.option("--memory", default="256Mi", show_default=True, metavar="QTY", help="Memory request and limit.")
@click.option("--run-as-user", type=click.IntRange(min=1, max=2**31 - 1), default=65532, show_default=True,
              metavar="UID", help="The non-root user id the worker runs as (one that can read the image's files).")
@click.option("--no-agent", is_flag=True,
              help="No credential agent: the worker container gets the key from the Secret, and a rotation "
                   "rolls the pods.")
@click.option("--agent-image", metavar="IMAGE",
              help="Image of the agent's sidecar, one with orkes-provision installed (default: --image).")
@click.option("--wait", is_flag=True, help="With --apply: wait until the rollout completes.")
@click.option("--timeout", type=DURATION, default="5m", show_default=True, metavar="DURATION",
              help="How long --wait waits (90s, 5m, ...).")
@click.option("--project", "project_file", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path),
              help="The project file (default: the nearest orkes-provision.toml).")
@command_options(timeout=False)
def kubernetes(worker: str, render_dir: Path | None, apply_: bool, namespace: str | None, replicas: int | None,
               image: str | None, store_spec: str | None, secret_name: str | None, cpu: str, memory: str,
               run_as_user: int, no_agent: bool, agent_image: str | None, wait: bool, timeout: timedelta,
               project_file: Path | None) -> None:
    """Render a Deployment for WORKER of the project file, or apply it with kubectl.

    Each pod runs the credential agent ('provision agent') as a native sidecar (Kubernetes
    1.29+): it alone mounts the Secret (the key) and the ConfigMap (the server URL) of the same
    name, and follows the Secret as kubelet refreshes the files, so a key rotation reaches running
    pods without a restart. The worker container gets the agent's loopback URL and a local key
    only that agent accepts, never the real one. The sidecar runs --agent-image (default: --image,
    which must then have orkes-provision installed).

    With --no-agent the worker container gets CONDUCTOR_SERVER_URL, CONDUCTOR_AUTH_KEY and
    CONDUCTOR_AUTH_SECRET from the ConfigMap and the Secret, and its pod template carries a
    checksum of the key id, so a key rotation restarts the pods. The Deployment holds no secret
    either way.

    With a k8s-secret:NS/NAME store the Secret already is in the cluster. With another store
    (keyring, env file) the key is read from it and a Secret and ConfigMap are rendered too; the
    Secret is then only written to DIR (mode 0600) or to kubectl's stdin, never printed.
    Without --render or --apply the manifests that hold no secret are printed.

    The pods run as a non-root user (--run-as-user) on a read-only root filesystem with a
    writable /tmp, as Pod Security "restricted" requires. They reach Conductor at the URL the key
    was created for: a loopback URL (127.0.0.1, localhost) is refused, since in a pod it is the pod.

    \b
    Examples:
      provision app greetings-app --worker --grant greetings --store k8s-secret:workers/greetings
      provision deploy kubernetes greetings --image ghcr.io/acme/greetings:1.0 --apply --wait
      provision deploy kubernetes greetings --image ghcr.io/acme/greetings:1.0 --render k8s/
      provision deploy kubernetes greetings --image ghcr.io/acme/greetings:1.0 --no-agent --apply
      kubectl apply --server-side -f k8s/
    """
    from orkes_provision.cli.context import credentials_server
    from orkes_provision.credentials.delivery import choose_key_server, choose_store
    from orkes_provision.credentials.stores import open_store
    from orkes_provision.credentials.stores.k8s_secret import K8sSecretStore
    from orkes_provision.orkes.urls import normalize_server_url
    from orkes_provision.workers.deploy import apply_to_cluster, render_to_directory, worker_manifests
    from orkes_provision.workers.project import require_project

    if render_dir is not None and apply_:
        raise UsageError("--render and --apply exclude each other", "render to a directory, or apply; not both")
    if wait and not apply_:
        raise UsageError("--wait needs --apply", "add --apply, or drop --wait")
    if no_agent and agent_image:
        raise UsageError("--agent-image and --no-agent exclude each other", "drop one of them")
    project = require_project(project_file)
    defaults = project.defaults()
    app = project.app_name or ""
    choice = choose_store(store_spec, app=app, project=defaults)
    if choice.source != "--store":
        info(f"Key store: {choice.value} (from {choice.source})")
    store = open_store(choice.value)
    # A Secret in the cluster names its own server (--server is checked against it); any other
    # store is keyed by the server.
    given = opts().server
    flag = normalize_server_url(given, insecure_http=opts().insecure_http) if given else None
    server = flag if isinstance(store, K8sSecretStore) or not app else choose_key_server(
        app=app, store=store, flag=opts().server, project=defaults, credentials_server=credentials_server,
        insecure_http=opts().insecure_http).value
    rendered = worker_manifests(project, worker, store=store, server=server, image=image, namespace=namespace,
                                replicas=replicas, secret_name=secret_name, cpu=cpu, memory=memory,
                                run_as_user=run_as_user, server_flag=flag is not None, agent=not no_agent,
                                agent_image=agent_image)
    result = rendered.to_dict()
    if render_dir is not None:
        paths = render_to_directory(rendered, render_dir)
        result["files"] = [str(p) for p in paths]
        emit(result, lambda: _render_text(rendered, paths))
        return
    if apply_:
        info(f"Applying {', '.join(m.ref for m in rendered.manifests)} in namespace {rendered.namespace}...")
        lines = apply_to_cluster(rendered, wait=wait, timeout=max(1.0, timeout.total_seconds()))
        result["kubectl"] = lines
        result["rolledOut"] = wait
        emit(result, lambda: _apply_text(rendered, lines, wait))
        return
    result["manifests"] = [m.text for m in rendered.public_manifests]
    hidden = [m.ref for m in rendered.manifests if m.holds_secret]
    if hidden:
        info(f"Not printed: {', '.join(hidden)} (it holds the key); use --render DIR or --apply.")
    emit(result, lambda: "---\n".join(m.text for m in rendered.public_manifests).rstrip("\n"))


def _render_text(rendered: WorkerManifests, paths: list[Path]) -> str:
    lines = [f"Wrote {len(paths)} manifest(s) for worker {rendered.worker} (namespace {rendered.namespace}):"]
    for path, manifest in zip(paths, rendered.manifests, strict=True):
        note = "  (holds the key secret: mode 0600, keep it out of version control)" if manifest.holds_secret else ""
        lines.append(f"  {path}{note}")
    if rendered.secret_in_cluster:
        lines.append(f"The Deployment reads Secret and ConfigMap {rendered.credentials}, which the store keeps "
                     "in the cluster.")
    directory = paths[0].parent if paths else Path(".")
    lines.append(f"Next: kubectl apply --server-side -f {directory}")
    return "\n".join(lines)


def _apply_text(rendered: WorkerManifests, lines: list[str], waited: bool) -> str:
    out = list(lines)
    out.append(f"Worker {rendered.worker}: Deployment {rendered.namespace}/{rendered.deployment.name} reads "
               f"Secret {rendered.credentials} (key {rendered.key_id})"
               + ("; rollout complete." if waited else "."))
    if not waited:
        out.append(f"Watch it: kubectl -n {rendered.namespace} rollout status deployment/{rendered.deployment.name}")
    return "\n".join(out)
