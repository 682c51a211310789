"""The agent in a pod: its key comes from a mounted Secret that kubelet swaps on rotation, followed without restart."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from orkes_provision.credentials.stores import open_store
from orkes_provision.credentials.stores.base import StoredKey
from orkes_provision.credentials.stores.mounted_secret import MountedSecretStore
from orkes_provision.errors import StoreError
from tests.agent.conftest import APP, AgentLab
from tests.workers.launch_helpers import PROVISION, wait_for

SERVER = "https://conductor.example.com/api"


class Kubelet:
    """Writes a Secret volume as kubelet does: files in a timestamped directory, ``..data`` swapped atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0
        root.mkdir(mode=0o755)

    def write(self, server: str, key_id: str, secret: str) -> None:
        self.generation += 1
        data = self.root / f"..2026_12_04_{self.generation:02d}"
        data.mkdir(mode=0o755)
        for name, value in (("CONDUCTOR_SERVER_URL", server), ("CONDUCTOR_AUTH_KEY", key_id),
                            ("CONDUCTOR_AUTH_SECRET", secret)):
            path = data / name
            path.write_text(value)
            path.chmod(0o440)
        link = self.root / "..data_tmp"
        link.symlink_to(data.name)
        os.replace(link, self.root / "..data")
        for name in ("CONDUCTOR_SERVER_URL", "CONDUCTOR_AUTH_KEY", "CONDUCTOR_AUTH_SECRET"):
            if not (self.root / name).is_symlink():
                (self.root / name).symlink_to(f"..data/{name}")


def test_the_store_reads_the_current_generation_and_sees_a_swap(tmp_path: Path) -> None:
    kubelet = Kubelet(tmp_path / "key")
    store = open_store(f"mounted-secret:{tmp_path / 'key'}")
    assert isinstance(store, MountedSecretStore)
    assert store.read() is None  # nothing mounted yet
    kubelet.write(SERVER, "key-1", "secret-one")
    first = store.read()
    assert first is not None and (first.server, first.key_id, first.secret.get_secret_value()) == \
        (SERVER, "key-1", "secret-one")
    assert store.load(SERVER, "any-app") == first
    assert store.load("https://elsewhere.example.com/api", "any-app") is None
    kubelet.write(SERVER, "key-2", "secret-two")
    second = store.read()
    assert second is not None and (second.key_id, second.secret.get_secret_value()) == ("key-2", "secret-two")
    with pytest.raises(StoreError, match="read-only"):
        store.save(StoredKey(SERVER, "app", "key-3", SecretStr("never-written")))


def test_a_mounted_file_others_may_write_is_refused(tmp_path: Path) -> None:
    kubelet = Kubelet(tmp_path / "key")
    kubelet.write(SERVER, "key-1", "secret-one")
    (tmp_path / "key" / "..2026_12_04_01" / "CONDUCTOR_AUTH_SECRET").chmod(0o666)
    with pytest.raises(StoreError) as caught:
        MountedSecretStore(tmp_path / "key").read()
    assert "secret-one" not in str(caught.value)


@pytest.mark.slow
def test_the_agent_follows_a_swapped_mounted_secret_without_restart(lab: AgentLab) -> None:
    old = lab.make_app()
    kubelet = Kubelet(lab.tmp / "key")
    kubelet.write(old.server, old.key_id, old.secret.get_secret_value())
    local = lab.tmp / "local.env"
    agent = lab.spawn([str(PROVISION), "agent", "--app", APP, "--store", f"mounted-secret:{lab.tmp / 'key'}",
                       "--env-file", str(local)])
    wait_for(local.exists, timeout=60, what="the agent")
    variables = dict(line.split("=", 1) for line in local.read_text().splitlines() if "=" in line)
    url = variables["CONDUCTOR_SERVER_URL"]
    token = httpx.post(url + "/token", json={"keyId": variables["CONDUCTOR_AUTH_KEY"],
                                             "keySecret": variables["CONDUCTOR_AUTH_SECRET"]},
                       trust_env=False).json()["token"]

    def health() -> dict[str, str]:
        answer: dict[str, str] = httpx.get(url.removesuffix("/api") + "/health", trust_env=False).json()
        return answer

    assert health()["keyId"] == old.key_id
    with lab.admin() as admin:
        app_id = admin.get_application_by_key(old.key_id).id
        new = admin.create_key(app_id)
        kubelet.write(old.server, new.id, new.secret.get_secret_value())
        wait_for(lambda: health()["keyId"] == new.id, timeout=60, what="the agent switching to the new key")
        admin.toggle_key(app_id, old.key_id)  # the old key stops working: only the new one serves now
        admin.delete_key(app_id, old.key_id)
    polled = httpx.get(url + "/tasks/poll/greetings", params={"timeout": 0}, headers={"X-Authorization": token},
                       trust_env=False)
    assert polled.status_code in (200, 204), polled.text  # the same local token, the same agent process
    assert agent.poll() is None
    agent.send_signal(signal.SIGTERM)
    _, err = agent.communicate(timeout=30)
    assert f"switched from key {old.key_id} to key {new.id}" in err
    assert new.secret.get_secret_value() not in err and old.secret.get_secret_value() not in err
