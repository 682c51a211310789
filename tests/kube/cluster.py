"""A real Kubernetes control plane on loopback for the tests: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (which plays the kubelet of one fake node, so pods become Ready and
``kubectl rollout status`` completes). No containers run: a pod is admitted, scheduled and marked
Ready, which is all these tests look at.

The Kubernetes binaries are built by ``scripts/build-kube`` (pinned in ``tests/kube/module/go.mod``,
cached); etcd and kubectl come from Debian (``etcd-server``, ``kubectl``). Where any of it is
missing the tests that need the cluster are skipped, saying what is missing; with
``REQUIRE_KUBE_APISERVER=1`` (CI) they fail instead.

The admin authenticates with a static token (``--token-auth-file``, group ``system:masters``);
other users are ServiceAccounts with tokens from ``kubectl create token``. The namespace
``RESTRICTED`` enforces Pod Security "restricted".
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "scripts" / "build-kube"
REQUIRED_VARIABLE = "REQUIRE_KUBE_APISERVER"
RESTRICTED = "restricted"
NODE = "kwok-node-0"
START_TIMEOUT = 120.0
STOP_TIMEOUT = 5.0


class ClusterUnavailable(Exception):
    """The cluster cannot be started here; the message says why."""


def unavailable(reason: str) -> None:
    """Skip, saying why, or fail when the cluster is required (CI)."""
    message = f"no Kubernetes API server: {reason}"
    if os.environ.get(REQUIRED_VARIABLE) == "1":
        pytest.fail(f"{message} ({REQUIRED_VARIABLE}=1)", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    root: Path
    bin_dir: Path
    kubeconfig: Path
    server: str
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """The environment a kubectl (or ``provision``) run needs to talk to this cluster as the admin."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(self, *args: str, stdin: str | None = None, kubeconfig: Path | None = None,
                check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(kubeconfig or self.kubeconfig)}
        done = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, env=env,
                              timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    def get(self, kind: str, name: str, namespace: str = RESTRICTED) -> dict[str, object]:
        return dict(json.loads(self.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout))

    def apply(self, document: dict[str, object]) -> None:
        self.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(document))

    def namespace(self, name: str, *, restricted: bool = True) -> str:
        """Create namespace ``name`` (Pod Security "restricted" enforced unless told otherwise)."""
        labels = {"pod-security.kubernetes.io/enforce": "restricted",
                  "pod-security.kubernetes.io/enforce-version": "latest"} if restricted else {}
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
        return name

    def kubeconfig_for_token(self, name: str, token: str) -> Path:
        """A kubeconfig that authenticates with ``token`` (a ServiceAccount's), written 0600."""
        path = self.root / f"{name}.kubeconfig"
        write_kubeconfig(path, self.server, self.root / "certs" / "apiserver.crt", token)
        return path

    def logs(self, lines: int = 15) -> str:
        out = []
        for name, _ in self.processes:
            log = self.root / f"{name}.log"
            if log.exists():
                tail = log.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {name} ---\n" + "\n".join(tail))
        return "\n".join(out)

    def stop(self) -> None:
        """Stop every component, the last started first (etcd last), each given a few seconds."""
        for _name, process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                # kube-apiserver drains its requests for a while after SIGTERM; nothing here needs that.
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_TIMEOUT)
        self.processes.clear()


def write_kubeconfig(path: Path, server: str, ca: Path, token: str) -> None:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "test", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(config, handle)


def find_binaries() -> Path:
    """The directory of the built Kubernetes binaries; ``ClusterUnavailable`` saying what is missing."""
    for tool in ("etcd", "kubectl", "openssl"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, check=False).returncode:
            raise ClusterUnavailable(f"{tool} is not installed (apt-get install etcd-server kubectl openssl)")
    done = subprocess.run([str(BUILD), "--check"], capture_output=True, text=True, check=False, timeout=30)
    if done.returncode != 0:
        raise ClusterUnavailable(done.stderr.strip() or "scripts/build-kube --check failed")
    return Path(done.stdout.strip())


def start(root: Path) -> Cluster:
    """Start the control plane in ``root``; the caller stops it (``Cluster.stop``) whatever happens."""
    bin_dir = find_binaries()
    certs = root / "certs"
    certs.mkdir(parents=True)
    subprocess.run(["openssl", "genrsa", "-out", str(certs / "sa.key"), "2048"], check=True, capture_output=True)
    subprocess.run(["openssl", "rsa", "-in", str(certs / "sa.key"), "-pubout", "-out", str(certs / "sa.pub")],
                   check=True, capture_output=True)
    token = secrets.token_hex(24)
    tokens = root / "tokens.csv"
    tokens.write_text(f'{token},admin,admin,"system:masters"\n')
    tokens.chmod(0o600)
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    server = f"https://127.0.0.1:{api_port}"
    kubeconfig = root / "admin.kubeconfig"
    cluster = Cluster(root, bin_dir, kubeconfig, server)
    try:
        _spawn(cluster, "etcd", ["etcd", "--name", "test", "--data-dir", str(root / "etcd"),
                                 "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
                                 "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
                                 "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
                                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
                                 "--initial-cluster", f"test=http://127.0.0.1:{peer_port}",
                                 ])
        _spawn(cluster, "kube-apiserver", [
            str(bin_dir / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
            f"--cert-dir={certs}", f"--token-auth-file={tokens}", "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={certs / 'sa.pub'}",
            f"--service-account-signing-key-file={certs / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/24", "--enable-priority-and-fairness=false",
            "--profiling=false", "--watch-cache=false", "--v=1",
            # It taints a new node not-ready until the node lifecycle controller, not run here, clears it.
            "--disable-admission-plugins=TaintNodesByCondition"])
        _wait_for_file(cluster, certs / "apiserver.crt")
        write_kubeconfig(kubeconfig, server, certs / "apiserver.crt", token)
        _wait(cluster, lambda: cluster.kubectl("get", "--raw=/readyz", check=False, timeout=10).returncode == 0,
              "kube-apiserver to be ready")
        _spawn(cluster, "kube-controller-manager", [
            str(bin_dir / "kube-controller-manager"), f"--kubeconfig={kubeconfig}", "--leader-elect=false",
            "--bind-address=127.0.0.1", "--secure-port=0",
            "--controllers=deployment,replicaset,serviceaccount,garbagecollector",
            f"--service-account-private-key-file={certs / 'sa.key'}", "--v=1"])
        _spawn(cluster, "kube-scheduler", [
            str(bin_dir / "kube-scheduler"), f"--kubeconfig={kubeconfig}", "--leader-elect=false",
            "--bind-address=127.0.0.1", "--secure-port=0", "--v=1"])
        _spawn(cluster, "kwok", [
            str(bin_dir / "kwok"), f"--kubeconfig={kubeconfig}", "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--manage-nodes-with-label-selector=", "--cidr=10.0.0.0/24", "--node-ip=10.0.0.1",
            "--node-lease-duration-seconds=40"])
        cluster.apply(_fake_node())
        _wait(cluster, lambda: _node_ready(cluster), f"node {NODE} (kwok) to be Ready")
        cluster.namespace(RESTRICTED)
        _wait(cluster, lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", RESTRICTED,
                                               check=False).returncode == 0,
              "the default ServiceAccount (kube-controller-manager)")
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _spawn(cluster: Cluster, name: str, argv: Sequence[str]) -> None:
    log = (cluster.root / f"{name}.log").open("wb")
    # Each in its own process group: stopping it stops whatever it started.
    process = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               cwd=cluster.root, start_new_session=True)
    log.close()
    cluster.processes.append((name, process))


def _check_alive(cluster: Cluster) -> None:
    for name, process in cluster.processes:
        if process.poll() is not None:
            raise ClusterUnavailable(f"{name} exited with {process.returncode}:\n{cluster.logs()}")


def _wait(cluster: Cluster, ready: object, what: str, timeout: float = START_TIMEOUT) -> None:
    assert callable(ready)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_alive(cluster)
        if ready():
            return
        time.sleep(0.5)
    raise ClusterUnavailable(f"timed out after {timeout:.0f}s waiting for {what}:\n{cluster.logs()}")


def _wait_for_file(cluster: Cluster, path: Path) -> None:
    _wait(cluster, path.exists, f"{path.name}")


def _node_ready(cluster: Cluster) -> bool:
    done = cluster.kubectl("get", "node", NODE, "-o", "json", check=False)
    if done.returncode != 0:
        return False
    conditions = json.loads(done.stdout).get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _fake_node() -> dict[str, object]:
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE, "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                     "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": "amd64", "type": "kwok"}},
        "status": {"allocatable": capacity, "capacity": capacity},
    }


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The control plane, once per test session (per xdist worker that asks for it)."""
    running = None
    failures = []
    # A second attempt with fresh ports: a port picked free can be taken by another process before
    # etcd or kube-apiserver binds it.
    for _attempt in range(2):
        try:
            running = start(tmp_path_factory.mktemp("kube"))
            break
        except (ClusterUnavailable, OSError, subprocess.SubprocessError) as err:
            failures.append(str(err))
            if "not installed" in str(err) or "not built" in str(err):
                break
    if running is None:
        unavailable("\n".join(failures))
        raise AssertionError("unreachable")
    try:
        yield running
    finally:
        running.stop()
