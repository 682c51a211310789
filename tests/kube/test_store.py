"""The ``k8s-secret:NAMESPACE/NAME`` store, driving the recording stand-in kubectl."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from pydantic import SecretStr

from orkes_provision.credentials.stores import open_store
from orkes_provision.credentials.stores.base import StoredKey
from orkes_provision.credentials.stores.k8s_secret import K8sSecretStore
from orkes_provision.errors import StoreError, UsageError
from tests.kube.conftest import Kubectl, validate_strict

SERVER = "http://127.0.0.1:8080/api"
SECRET = "pa55-w0rd-that-must-not-leak"
SECRET_B64 = base64.b64encode(SECRET.encode()).decode()


def key(app: str = "greetings-app", key_id: str = "key-1", secret: str = SECRET) -> StoredKey:
    return StoredKey(server=SERVER, app=app, key_id=key_id, secret=SecretStr(secret))


def assert_no_secret_in_argv(kubectl: Kubectl) -> None:
    argv = kubectl.argv_text()
    assert SECRET not in argv
    assert SECRET_B64 not in argv
    assert all(not c.leaked_env for c in kubectl.calls())


def test_open_store_dispatches_k8s_secret_spec(kubectl: Kubectl) -> None:
    store = open_store("k8s-secret:workers/conductor-credentials")
    assert isinstance(store, K8sSecretStore)
    assert (store.namespace, store.name, store.spec) == (
        "workers", "conductor-credentials", "k8s-secret:workers/conductor-credentials")
    assert store.describe() == "Kubernetes Secret workers/conductor-credentials"


@pytest.mark.parametrize("spec", ["k8s-secret:", "k8s-secret:workers", "k8s-secret:/name", "k8s-secret:ns/",
                                  "k8s-secret:Workers/x", "k8s-secret:ns/Bad_Name"])
def test_malformed_specs_are_usage_errors(kubectl: Kubectl, spec: str) -> None:
    with pytest.raises(UsageError):
        open_store(spec)
    assert kubectl.calls() == []


def test_save_pipes_valid_secret_and_configmap_to_server_side_apply(kubectl: Kubectl) -> None:
    store = K8sSecretStore("workers", "creds")
    store.save(key())
    apply_calls = [c for c in kubectl.calls() if c.argv[0] == "apply"]
    assert [c.argv for c in apply_calls] == [
        ["apply", "--server-side", "--field-manager=orkes-provision", "--force-conflicts", "-f", "-"]]
    documents = apply_calls[0].documents
    assert [d["kind"] for d in documents] == ["Secret", "ConfigMap"]
    for document in documents:
        validate_strict(document)
    secret, configmap = documents
    assert base64.b64decode(secret["data"]["CONDUCTOR_AUTH_SECRET"]).decode() == SECRET
    assert base64.b64decode(secret["data"]["CONDUCTOR_AUTH_KEY"]).decode() == "key-1"
    assert configmap["data"] == {"CONDUCTOR_SERVER_URL": SERVER}
    assert secret["metadata"]["annotations"]["orkes-provision/key-id"] == "key-1"
    assert_no_secret_in_argv(kubectl)


def test_save_then_load_round_trips_through_kubectl_get(kubectl: Kubectl) -> None:
    store = K8sSecretStore("workers", "creds")
    assert store.load(SERVER, "greetings-app") is None
    store.save(key())
    loaded = store.load(SERVER, "greetings-app")
    assert loaded is not None
    assert (loaded.key_id, loaded.secret.get_secret_value(), loaded.server) == ("key-1", SECRET, SERVER)
    assert store.load(SERVER, "other-app") is None
    assert store.load("http://127.0.0.1:9999/api", "greetings-app") is None
    gets = [c.argv for c in kubectl.calls() if c.argv[0] == "get"]
    assert ["get", "secret", "creds", "-n", "workers", "-o", "json", "--ignore-not-found"] in gets
    assert_no_secret_in_argv(kubectl)


def test_second_save_replaces_the_key_in_place(kubectl: Kubectl) -> None:
    store = K8sSecretStore("workers", "creds")
    store.save(key(key_id="key-1"))
    store.save(key(key_id="key-2", secret="second-secret"))
    loaded = store.load(SERVER, "greetings-app")
    assert loaded is not None
    assert loaded.key_id == "key-2"
    assert loaded.secret.get_secret_value() == "second-secret"


def test_save_keeps_entries_others_put_in_the_secret(kubectl: Kubectl) -> None:
    kubectl.put({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                 "metadata": {"name": "creds", "namespace": "workers"}, "data": {"OTHER": "eA=="}})
    K8sSecretStore("workers", "creds").save(key())
    stored = kubectl.object("Secret", "workers", "creds")
    assert stored is not None
    assert set(stored["data"]) == {"OTHER", "CONDUCTOR_AUTH_KEY", "CONDUCTOR_AUTH_SECRET"}


def test_save_refuses_a_secret_holding_another_applications_key(kubectl: Kubectl) -> None:
    store = K8sSecretStore("workers", "creds")
    store.save(key(app="billing"))
    with pytest.raises(StoreError, match="holds the key of application 'billing'") as caught:
        store.save(key(app="greetings-app"))
    assert "OTHER-NAME" in caught.value.hint
    assert store.load(SERVER, "billing") is not None


def test_load_reads_a_hand_made_secret_with_the_server_from_the_configmap(kubectl: Kubectl) -> None:
    kubectl.put({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "workers"},
                 "data": {"CONDUCTOR_AUTH_KEY": "a2V5LTk=", "CONDUCTOR_AUTH_SECRET": SECRET_B64}})
    kubectl.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "creds", "namespace": "workers"},
                 "data": {"CONDUCTOR_SERVER_URL": "http://127.0.0.1:8080"}})
    loaded = K8sSecretStore("workers", "creds").load(SERVER, "greetings-app")
    assert loaded is not None
    assert loaded.key_id == "key-9"
    assert loaded.app == "greetings-app"


def test_kubectl_missing_is_a_store_error_with_an_install_hint(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StoreError, match="kubectl is not installed") as caught:
        open_store("k8s-secret:workers/creds")
    assert "install kubectl" in caught.value.hint


def test_kubectl_failure_reports_its_first_error_line_without_the_secret(kubectl: Kubectl) -> None:
    kubectl.set(fail={"apply": f"error: something broke near {SECRET} and {SECRET_B64}"}, echo_stdin_on_fail=True)
    with pytest.raises(StoreError) as caught:
        K8sSecretStore("workers", "creds").save(key())
    message = caught.value.message
    assert message.startswith("kubectl apply --server-side")
    assert "something broke near ********" in message
    assert SECRET not in message
    assert SECRET_B64 not in message
    assert "\n" not in message


def test_missing_namespace_gets_a_create_namespace_hint(kubectl: Kubectl) -> None:
    kubectl.set(namespaces=["default"])
    with pytest.raises(StoreError, match='namespaces "workers" not found') as caught:
        K8sSecretStore("workers", "creds").save(key())
    assert "kubectl create namespace" in caught.value.hint


def test_delete_removes_objects_it_made(kubectl: Kubectl) -> None:
    store = K8sSecretStore("workers", "creds")
    store.save(key())
    store.delete(SERVER, "greetings-app")
    assert kubectl.object("Secret", "workers", "creds") is None
    assert kubectl.object("ConfigMap", "workers", "creds") is None
    assert store.load(SERVER, "greetings-app") is None
    store.delete(SERVER, "greetings-app")  # a missing key is not an error


def test_delete_of_a_hand_made_secret_removes_only_the_conductor_entries(kubectl: Kubectl) -> None:
    kubectl.put({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "workers"},
                 "data": {"CONDUCTOR_AUTH_KEY": "a2V5LTk=", "CONDUCTOR_AUTH_SECRET": SECRET_B64, "OTHER": "eA=="}})
    kubectl.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "creds", "namespace": "workers"},
                 "data": {"CONDUCTOR_SERVER_URL": SERVER, "KEEP": "me"}})
    K8sSecretStore("workers", "creds").delete(SERVER, "greetings-app")
    secret = kubectl.object("Secret", "workers", "creds")
    configmap = kubectl.object("ConfigMap", "workers", "creds")
    assert secret is not None
    assert secret["data"] == {"OTHER": "eA=="}
    assert configmap is not None
    assert configmap["data"] == {"KEEP": "me"}
    assert_no_secret_in_argv(kubectl)


def test_kubectl_does_not_inherit_the_provisioning_credentials(kubectl: Kubectl,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUCTOR_AUTH_KEY", "admin-key")
    monkeypatch.setenv("CONDUCTOR_AUTH_SECRET", "admin-secret")
    K8sSecretStore("workers", "creds").save(key())
    assert kubectl.calls()
    assert all(c.leaked_env == [] for c in kubectl.calls())
