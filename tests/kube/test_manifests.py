"""Rendering: every manifest passes strict Kubernetes 1.30 validation, the pod is Pod Security
"restricted", and no value can bend the YAML or be read back as anything but itself."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from orkes_provision.errors import UsageError
from orkes_provision.kube import manifests
from tests.kube.conftest import load_documents, validate_strict, yaml

SERVER = "https://conductor.example.com/api"


def worker(**overrides: object) -> manifests.WorkerDeployment:
    fields: dict[str, object] = {
        "name": "greetings", "namespace": "workers", "app": "greetings-app", "worker": "greetings",
        "image": "ghcr.io/acme/greetings:1.0", "command": ["python3", "main.py"],
        "credentials": "conductor-credentials", "key_id": "key-1", "replicas": 2,
        "env": {"LOG_LEVEL": "INFO"},
    }
    fields.update(overrides)
    return manifests.WorkerDeployment(**fields)  # type: ignore[arg-type]


def test_deployment_is_valid_and_reads_credentials_from_secret_and_configmap() -> None:
    [doc] = load_documents(worker().render().text)
    validate_strict(doc)
    container = doc["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["CONDUCTOR_SERVER_URL"]["valueFrom"] == {
        "configMapKeyRef": {"name": "conductor-credentials", "key": "CONDUCTOR_SERVER_URL"}}
    assert env["CONDUCTOR_AUTH_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "conductor-credentials", "key": "CONDUCTOR_AUTH_KEY"}}
    assert env["CONDUCTOR_AUTH_SECRET"]["valueFrom"] == {
        "secretKeyRef": {"name": "conductor-credentials", "key": "CONDUCTOR_AUTH_SECRET"}}
    assert env["LOG_LEVEL"] == {"name": "LOG_LEVEL", "value": "INFO"}
    assert container["command"] == ["python3", "main.py"]
    assert container["image"] == "ghcr.io/acme/greetings:1.0"
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "256Mi"}}
    assert doc["spec"]["replicas"] == 2
    assert doc["metadata"]["namespace"] == "workers"


def test_pod_template_carries_sha256_of_key_id_and_selector_matches_pod_labels() -> None:
    [doc] = load_documents(worker(key_id="key-1").render().text)
    template = doc["spec"]["template"]
    assert template["metadata"]["annotations"]["orkes-provision/key-id-checksum"] == \
        hashlib.sha256(b"key-1").hexdigest()
    selector = doc["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    [other] = load_documents(worker(key_id="key-2").render().text)
    assert other["spec"]["template"]["metadata"]["annotations"] != template["metadata"]["annotations"]
    assert other["spec"]["selector"] == doc["spec"]["selector"]  # the selector is immutable: never keyed


def test_secret_and_configmap_are_valid_and_hold_the_key_in_base64() -> None:
    secret = manifests.secret_manifest("workers", "creds", server=SERVER, app="greetings-app", key_id="key-1",
                                  secret=SecretStr("s3cret"))
    configmap = manifests.configmap_manifest("workers", "creds", server=SERVER, app="greetings-app")
    [sdoc], [cdoc] = load_documents(secret.text), load_documents(configmap.text)
    validate_strict(sdoc)
    validate_strict(cdoc)
    assert sdoc["data"] == {"CONDUCTOR_AUTH_KEY": "a2V5LTE=", "CONDUCTOR_AUTH_SECRET": "czNjcmV0"}
    assert sdoc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "orkes-provision"
    assert sdoc["metadata"]["annotations"]["orkes-provision/app"] == "greetings-app"
    assert cdoc["data"] == {"CONDUCTOR_SERVER_URL": SERVER}
    assert secret.holds_secret
    assert not configmap.holds_secret
    assert "s3cret" not in repr(secret)
    assert "czNjcmV0" not in repr(secret)


def test_awkward_values_stay_data_and_the_manifest_stays_valid() -> None:
    nasty = 'x": y\n- injected: true # \\ \u2028 ${HOME} \x00'
    [doc] = load_documents(worker(app=nasty, env={"ON": "yes", "NOTE": nasty, "EMPTY": ""},
                                  command=["sh", "-c", nasty]).render().text)
    validate_strict(doc)
    container = doc["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["sh", "-c", nasty]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ON"] == "yes"
    assert env["NOTE"] == nasty
    assert env["EMPTY"] == ""
    assert doc["metadata"]["annotations"]["orkes-provision/app"] == nasty
    # A label value is restricted (63 chars of [A-Za-z0-9-_.]): the app name is cleaned for it.
    assert re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?",
                        doc["metadata"]["labels"]["app.kubernetes.io/part-of"])


@given(st.dictionaries(st.text(max_size=8), st.text(max_size=40) | st.integers() | st.booleans(), max_size=4))
def test_to_yaml_reads_back_exactly(document: dict[str, object]) -> None:
    assert yaml.safe_load(manifests.to_yaml({"data": document})) == {"data": document}


@pytest.mark.parametrize("value", ["1e3", "0o17", "0X1F", "1_000", "yes", "on", "~", "null", "", "0x_1f", "<<", "="])
def test_strings_a_go_yaml_parser_would_take_for_numbers_or_booleans_are_quoted(value: str) -> None:
    # PyYAML's own resolver leaves 1e3, 0o17 and 0X1F plain; kubectl's go-yaml reads them as numbers.
    assert f'value: "{value}"' in manifests.to_yaml({"value": value})


def test_a_dict_used_twice_is_written_twice_not_as_an_alias() -> None:
    labels = {"a": "b"}
    text = manifests.to_yaml({"one": labels, "two": labels})
    assert "&" not in text and "*" not in text
    assert yaml.safe_load(text) == {"one": {"a": "b"}, "two": {"a": "b"}}


def test_pod_meets_pod_security_restricted_with_a_writable_tmp() -> None:
    [doc] = load_documents(worker().render().text)
    pod = doc["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == manifests.DEFAULT_RUN_AS_USER > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    with pytest.raises(UsageError, match="not a non-root user id"):
        worker(run_as_user=0).render()


def test_worker_without_extra_env_has_only_the_conductor_variables() -> None:
    text = worker(env={}).render().text
    [doc] = load_documents(text)
    validate_strict(doc)
    assert [e["name"] for e in doc["spec"]["template"]["spec"]["containers"][0]["env"]] == [
        "CONDUCTOR_SERVER_URL", "CONDUCTOR_AUTH_KEY", "CONDUCTOR_AUTH_SECRET"]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"image": "bad image"}, "not a container image"),
    ({"cpu": "lots"}, "quantity for --cpu"),
    ({"memory": "1 GB"}, "quantity for --memory"),
    ({"namespace": "Workers"}, "namespace name"),
    ({"credentials": "Bad_Name"}, "Secret name"),
    ({"env": {"BAD NAME": "x"}}, "environment variable name"),
])
def test_bad_inputs_are_usage_errors(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        worker(**overrides).render()


def test_names_are_turned_into_dns_labels() -> None:
    assert manifests.dns_label("Greetings_Worker v2") == "greetings-worker-v2"
    assert manifests.dns_label("***") == ""
    assert len(manifests.dns_label("a" * 100)) == 63


def test_with_the_agent_only_its_sidecar_mounts_the_key_and_the_worker_gets_a_local_one() -> None:
    [doc] = load_documents(worker(agent_image="ghcr.io/acme/agent:1.0").render().text)
    validate_strict(doc)
    pod = doc["spec"]["template"]["spec"]
    [sidecar] = pod["initContainers"]
    [container] = pod["containers"]
    assert sidecar["restartPolicy"] == "Always"  # a native sidecar: restarted when it exits, outlives the worker
    assert sidecar["image"] == "ghcr.io/acme/agent:1.0"
    assert sidecar["command"][:2] == ["provision", "agent"]
    assert "mounted-secret:/var/run/orkes-provision/key" in sidecar["command"]
    assert {"name": "orkes-key", "mountPath": "/var/run/orkes-provision/key", "readOnly": True} \
        in sidecar["volumeMounts"]
    [key_volume] = [v for v in pod["volumes"] if v["name"] == "orkes-key"]
    sources = key_volume["projected"]["sources"]
    assert sources[0]["secret"]["name"] == sources[1]["configMap"]["name"] == "conductor-credentials"
    # The worker container: no Secret reference, no key mount, only the agent's URL and the local key.
    env = {e["name"]: e for e in container["env"]}
    assert all("valueFrom" not in e for e in container["env"])
    assert env["CONDUCTOR_SERVER_URL"]["value"] == "http://127.0.0.1:8765/api"
    local_id, local_secret = manifests.local_agent_key("workers", "greetings", "greetings-app")
    assert env["CONDUCTOR_AUTH_KEY"]["value"] == local_id.strip() and local_id.startswith("local-")
    agent_env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert agent_env["ORKES_AGENT_LOCAL_KEY"] == local_id and agent_env["ORKES_AGENT_LOCAL_SECRET"] == local_secret
    assert env["CONDUCTOR_AUTH_SECRET"]["value"] == local_secret
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    # A new key rolls nothing: the template carries no key-id checksum, and renders the same for any key.
    assert not doc["spec"]["template"]["metadata"]["annotations"]
    [other] = load_documents(worker(agent_image="ghcr.io/acme/agent:1.0", key_id="key-2").render().text)
    assert other == doc


def test_the_pod_with_its_agent_sidecar_meets_pod_security_restricted() -> None:
    [doc] = load_documents(worker(agent_image="ghcr.io/acme/agent:1.0").render().text)
    pod = doc["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in [*pod["initContainers"], *pod["containers"]]:
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                "capabilities": {"drop": ["ALL"]}}
    # "restricted" allows these volume types only (no hostPath, no plain secret volume needed).
    allowed = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
               "secret"}
    assert all(set(v) - {"name"} <= allowed for v in pod["volumes"])
    with pytest.raises(UsageError, match="not a container image") as caught:
        worker(agent_image="bad image").render()
    assert "--agent-image" in caught.value.hint
