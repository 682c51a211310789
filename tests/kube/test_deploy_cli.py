"""``provision deploy kubernetes``: render to a directory, print, or apply through the stand-in kubectl."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from orkes_provision.credentials.stores.base import StoredKey
from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.credentials.stores.k8s_secret import K8sSecretStore
from tests.kube.cli_helpers import run
from tests.kube.conftest import Kubectl, load_documents, validate_strict

SERVER = "https://conductor.example.com/api"
SECRET = "deploy-secret-never-printed"
IMAGE = "ghcr.io/acme/greetings:1.0"
PROJECT = """\
[application]
name = "greetings-app"
grants = ["greetings"]
store = "{store}"

[[workers]]
name = "greetings"
runtime = "python"
command = ["python3", "main.py"]
env = {{ LOG_LEVEL = "INFO" }}
replicas = 2
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A worker project whose key is in the Secret workers/greetings-creds (already in the 'cluster')."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "orkes-provision.toml").write_text(PROJECT.format(store="k8s-secret:workers/greetings-creds"))
    monkeypatch.chdir(root)
    monkeypatch.delenv("CONDUCTOR_SERVER_URL", raising=False)
    return root


def put_key_in_cluster(key_id: str = "key-1") -> None:
    K8sSecretStore("workers", "greetings-creds").save(
        StoredKey(server=SERVER, app="greetings-app", key_id=key_id, secret=SecretStr(SECRET)))


def env_file_with_key(tmp_path: Path) -> Path:
    path = tmp_path / "worker.env"
    EnvFileStore(path).save(StoredKey(server=SERVER, app="greetings-app", key_id="key-7", secret=SecretStr(SECRET)))
    return path


def test_render_with_k8s_store_writes_only_the_deployment(kubectl: Kubectl, project: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    put_key_in_cluster("key-1")
    out_dir = project / "k8s"
    result = run(capsys, "deploy", "kubernetes", "greetings", "--image", IMAGE, "--no-agent", "--render", str(out_dir))
    assert result.code == 0, result.err
    assert sorted(p.name for p in out_dir.iterdir()) == ["greetings.deployment.yaml"]
    path = out_dir / "greetings.deployment.yaml"
    [doc] = load_documents(path.read_text())
    validate_strict(doc)
    assert doc["metadata"]["namespace"] == "workers"
    assert doc["spec"]["replicas"] == 2
    assert doc["spec"]["template"]["metadata"]["annotations"]["orkes-provision/key-id-checksum"] == \
        hashlib.sha256(b"key-1").hexdigest()
    assert {e["name"] for e in doc["spec"]["template"]["spec"]["containers"][0]["env"]} >= {
        "CONDUCTOR_AUTH_SECRET", "LOG_LEVEL"}
    assert SECRET not in path.read_text()
    assert f"Wrote 1 manifest(s) for worker greetings (namespace workers):\n  {path}\n" in result.out
    assert "Next: kubectl apply --server-side -f" in result.out


def test_render_by_default_runs_the_agent_as_a_sidecar_reading_the_store_s_secret(
        kubectl: Kubectl, project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    put_key_in_cluster("key-1")
    out_dir = project / "k8s"
    result = run(capsys, "deploy", "kubernetes", "greetings", "--image", IMAGE, "--render", str(out_dir), "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["agent"] is True
    [doc] = load_documents((out_dir / "greetings.deployment.yaml").read_text())
    validate_strict(doc)
    pod = doc["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["image"] == IMAGE  # --agent-image defaults to the worker's image
    assert "valueFrom" not in str(pod["containers"][0]["env"])
    conflict = run(capsys, "deploy", "kubernetes", "greetings", "--image", IMAGE, "--no-agent",
                   "--agent-image", IMAGE)
    assert conflict.code == 2 and "exclude each other" in conflict.err


def test_apply_with_k8s_store_applies_the_deployment_and_waits(kubectl: Kubectl, project: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    put_key_in_cluster("key-1")
    kubectl.clear_calls()
    result = run(capsys, "deploy", "kubernetes", "greetings", "--image", IMAGE, "--apply", "--wait",
                 "--timeout", "20")
    assert result.code == 0, result.err
    applied = kubectl.applied()
    assert [d["kind"] for d in applied] == ["Deployment"]
    assert ["rollout", "status", "deployment/greetings", "-n", "workers", "--timeout=20s"] in \
        [c.argv for c in kubectl.calls()]
    assert "deployment.apps/greetings serverside-applied" in result.out
    assert "rollout complete" in result.out
    assert kubectl.object("Deployment", "workers", "greetings") is not None


def test_env_file_store_renders_secret_0600_beside_configmap_and_deployment(
        kubectl: Kubectl, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env_file = env_file_with_key(tmp_path)
    out_dir = project / "k8s"
    result = run(capsys, "--server", SERVER, "deploy", "kubernetes", "greetings", "--image", IMAGE,
                 "--store", f"env-file:{env_file}", "--namespace", "prod", "--render", str(out_dir))
    assert result.code == 0, result.err
    files = {p.name: p for p in out_dir.iterdir()}
    assert sorted(files) == ["greetings-app-conductor.configmap.yaml", "greetings-app-conductor.secret.yaml",
                             "greetings.deployment.yaml"]
    assert stat.S_IMODE(files["greetings-app-conductor.secret.yaml"].stat().st_mode) == 0o600
    assert stat.S_IMODE(files["greetings.deployment.yaml"].stat().st_mode) == 0o644
    for path in files.values():
        for doc in load_documents(path.read_text()):
            validate_strict(doc)
            assert doc["metadata"]["namespace"] == "prod"
    [secret] = load_documents(files["greetings-app-conductor.secret.yaml"].read_text())
    assert secret["metadata"]["name"] == "greetings-app-conductor"
    assert SECRET not in result.out + result.err
    assert "holds the key secret: mode 0600" in result.out
    assert kubectl.calls() == []  # rendering needs no cluster


def test_env_file_store_apply_pipes_secret_on_stdin_only(kubectl: Kubectl, project: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    env_file = env_file_with_key(tmp_path)
    result = run(capsys, "--server", SERVER, "deploy", "kubernetes", "greetings", "--image", IMAGE,
                 "--store", f"env-file:{env_file}", "--apply")
    assert result.code == 0, result.err
    assert [d["kind"] for d in kubectl.applied()] == ["Secret", "ConfigMap", "Deployment"]
    assert SECRET not in kubectl.argv_text()
    assert SECRET not in result.out + result.err
    loaded = K8sSecretStore("default", "greetings-app-conductor").load(SERVER, "greetings-app")
    assert loaded is not None
    assert loaded.key_id == "key-7"


def test_without_render_or_apply_prints_only_what_holds_no_secret(kubectl: Kubectl, project: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    env_file = env_file_with_key(tmp_path)
    result = run(capsys, "--server", SERVER, "deploy", "kubernetes", "greetings", "--image", IMAGE,
                 "--store", f"env-file:{env_file}")
    assert result.code == 0, result.err
    assert [d["kind"] for d in load_documents(result.out)] == ["ConfigMap", "Deployment"]
    assert "Not printed: secret/greetings-app-conductor (it holds the key)" in result.err
    assert SECRET not in result.out + result.err


def test_json_output_names_the_key_checksum(kubectl: Kubectl, project: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    put_key_in_cluster("key-3")
    result = run(capsys, "--json", "deploy", "kubernetes", "greetings", "--image", IMAGE)
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["keyId"] == "key-3"
    assert data["keyIdChecksum"] == hashlib.sha256(b"key-3").hexdigest()
    assert data["objects"] == ["deployment/greetings"]
    assert data["secretInCluster"] is True


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--render", "out", "--apply"], 2, "--render and --apply exclude each other"),
    (["--wait"], 2, "--wait needs --apply"),
    (["--namespace", "other"], 2, "differs from the store's namespace workers"),
])
def test_conflicting_options_are_usage_errors(kubectl: Kubectl, project: Path, capsys: pytest.CaptureFixture[str],
                                              args: list[str], code: int, message: str) -> None:
    put_key_in_cluster()
    result = run(capsys, "deploy", "kubernetes", "greetings", "--image", IMAGE, *args)
    assert result.code == code
    assert message in result.err


def test_missing_image_unknown_worker_and_missing_key_are_explained(kubectl: Kubectl, project: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "deploy", "kubernetes", "greetings", "--image", IMAGE)
    assert result.code == 3
    assert "error: Secret workers/greetings-creds holds no key yet" in result.err
    assert "hint: create one: provision app greetings-app --worker --store k8s-secret:workers/greetings-creds" \
        in result.err
    put_key_in_cluster()
    result = run(capsys, "deploy", "kubernetes", "greetings")
    assert result.code == 2
    assert "no container image for worker greetings" in result.err
    result = run(capsys, "deploy", "kubernetes", "nope", "--image", IMAGE)
    assert result.code == 3
    assert "no worker named 'nope' (workers: greetings)" in result.err


@pytest.mark.parametrize("loopback", ["http://127.0.0.1:8080/api", "http://localhost:8080/api",
                                      "http://[::1]:8080/api", "http://127.0.0.2:8080/api"])
def test_a_key_for_a_loopback_server_is_refused_since_no_pod_could_reach_it(
        kubectl: Kubectl, project: Path, capsys: pytest.CaptureFixture[str], loopback: str) -> None:
    K8sSecretStore("workers", "greetings-creds").save(
        StoredKey(server=loopback, app="greetings-app", key_id="key-1", secret=SecretStr(SECRET)))
    kubectl.clear_calls()
    result = run(capsys, "deploy", "kubernetes", "greetings", "--image", IMAGE, "--apply")
    assert result.code == 2, result.err
    assert f"error: the pods would reach Conductor at {loopback}, a loopback address" in result.err
    assert ("hint: with URL an address of the server the cluster reaches, run 'provision --server URL app "
            "greetings-app --new-key --store k8s-secret:workers/greetings-creds', then deploy with --server URL"
            ) in result.err
    assert "apply" not in kubectl.verbs()


def test_after_the_hint_a_key_for_a_reachable_url_deploys_and_the_pods_get_that_url(
        kubectl: Kubectl, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # What the hint's 'provision --server URL app APP --new-key --store ...' leaves behind: the
    # store holds the loopback key and one for the URL the cluster reaches.
    env_file = tmp_path / "worker.env"
    EnvFileStore(env_file).save(StoredKey(server="http://127.0.0.1:8080/api", app="greetings-app", key_id="key-1",
                                          secret=SecretStr(SECRET)))
    store = ["--store", f"env-file:{env_file}"]
    refused = run(capsys, "--server", "http://127.0.0.1:8080/api", "deploy", "kubernetes", "greetings",
                  "--image", IMAGE, *store, "--render", str(tmp_path / "k8s"))
    assert refused.code == 2
    assert "a loopback address" in refused.err
    elsewhere = run(capsys, "--server", SERVER, "deploy", "kubernetes", "greetings", "--image", IMAGE, *store,
                    "--render", str(tmp_path / "k8s"))
    assert elsewhere.code == 3
    assert f"holds the key of greetings-app for http://127.0.0.1:8080/api, not {SERVER}" in elsewhere.err
    assert f"hint: store a key for {SERVER}: provision --server {SERVER} app greetings-app --new-key " \
           f"--store env-file:{env_file}" in elsewhere.err

    EnvFileStore(env_file).save(StoredKey(server=SERVER, app="greetings-app", key_id="key-2",
                                          secret=SecretStr(SECRET)))
    done = run(capsys, "--server", SERVER, "deploy", "kubernetes", "greetings", "--image", IMAGE, *store,
               "--render", str(tmp_path / "k8s"))
    assert done.code == 0, done.err
    [configmap] = load_documents((tmp_path / "k8s" / "greetings-app-conductor.configmap.yaml").read_text())
    assert configmap["data"] == {"CONDUCTOR_SERVER_URL": SERVER}


def test_server_flag_must_match_the_server_the_secret_names(kubectl: Kubectl, project: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    put_key_in_cluster()
    result = run(capsys, "--server", "https://other.example.com", "deploy", "kubernetes", "greetings",
                 "--image", IMAGE)
    assert result.code == 3
    assert f"Secret workers/greetings-creds holds the key of greetings-app for {SERVER}, not " \
           "https://other.example.com/api" in result.err
    assert "hint: write a key for https://other.example.com/api into it: provision --server " \
           "https://other.example.com/api app greetings-app --new-key --store k8s-secret:workers/greetings-creds" \
           in result.err
    same = run(capsys, "--server", SERVER, "deploy", "kubernetes", "greetings", "--image", IMAGE)
    assert same.code == 0, same.err


def test_run_as_user_sets_the_pods_user_and_zero_is_refused(kubectl: Kubectl, project: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    put_key_in_cluster()
    result = run(capsys, "deploy", "kubernetes", "greetings", "--image", IMAGE, "--run-as-user", "1000")
    assert result.code == 0, result.err
    [doc] = load_documents(result.out)
    pod = doc["spec"]["template"]["spec"]["securityContext"]
    assert (pod["runAsNonRoot"], pod["runAsUser"]) == (True, 1000)
    root = run(capsys, "deploy", "kubernetes", "greetings", "--image", IMAGE, "--run-as-user", "0")
    assert root.code == 2
    assert "--run-as-user" in root.err


@pytest.mark.parametrize(("url", "unreachable"), [
    ("http://127.0.0.1:8080/api", True), ("http://127.1:8080/api", True), ("http://2130706433/api", True),
    ("http://0x7f.0.0.1/api", True), ("http://[::ffff:127.0.0.1]/api", True), ("http://[::1]/api", True),
    ("http://0.0.0.0:8080/api", True), ("http://[::]/api", True), ("http://LocalHost./api", True),
    ("http://sandbox.localhost/api", True),
    ("https://conductor.example.com/api", False), ("http://10.0.0.5:8080/api", False),
    ("http://172.17.0.1:8080/api", False), ("http://[fd00::5]/api", False),
])
def test_every_spelling_of_this_machine_counts_as_unreachable_from_a_pod(url: str, unreachable: bool) -> None:
    from orkes_provision.workers.deploy import pods_cannot_reach
    assert pods_cannot_reach(url) is unreachable
