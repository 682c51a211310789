"""The delivery model (``credentials.delivery``): the record, the store and server each command resolves, hints."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from pydantic import SecretStr

from orkes_provision.credentials.delivery import (
    Choice,
    Hints,
    ProjectDefaults,
    begin_key_creation,
    check_project_server,
    choose_app_name,
    choose_key_server,
    choose_store,
    deliveries,
    deliveries_path,
    end_key_creation,
    find_stored_key,
    forget_deliveries,
    normalize_store_spec,
    pending_key_creations,
    record_delivery,
    where_delivered,
)
from orkes_provision.credentials.stores.base import StoredKey
from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.credentials.stores.memory import MemoryStore
from orkes_provision.errors import ConfigError, UsageError

S1 = "https://one.example.com/api"
S2 = "https://two.example.com/api"


def key(server: str, app: str, key_id: str = "k1") -> StoredKey:
    return StoredKey(server=server, app=app, key_id=key_id, secret=SecretStr("s3cret-value"))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment with a private config home and nothing else."""
    return {"XDG_CONFIG_HOME": str(tmp_path / "config")}


# ----- specs ---------------------------------------------------------------------------------------

def test_spellings_of_one_env_file_normalise_to_one_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    same = {normalize_store_spec(s) for s in ("env-file:dup.env", "env-file:./dup.env", " env-file:sub/../dup.env",
                                              f"env-file:{tmp_path}/dup.env")}
    assert same == {f"env-file:{tmp_path}/dup.env"}
    assert normalize_store_spec("env-file:w.env", base=Path("/proj")) == "env-file:/proj/w.env"
    assert normalize_store_spec(" keyring ") == "keyring"
    assert normalize_store_spec("k8s-secret:workers/creds") == "k8s-secret:workers/creds"


@pytest.mark.parametrize("spec", ["vault:x", "env-file:", "k8s-secret:nope"])
def test_a_spec_that_names_no_store_is_a_usage_error(spec: str) -> None:
    with pytest.raises(UsageError):
        normalize_store_spec(spec)


# ----- the record ----------------------------------------------------------------------------------

def test_a_delivery_is_recorded_per_store_with_server_app_key_and_time(tmp_path: Path) -> None:
    record_delivery("https://one.example.com", "billing", "id-1", f"env-file:{tmp_path}/./b.env", "k1")
    record_delivery(S1, "billing", "id-1", "keyring", "k1")
    record_delivery(S1, "billing", "id-1", f"env-file:{tmp_path}/b.env", "k2")  # replaces that store's row
    rows = deliveries(S1, "billing")
    assert sorted((d.store, d.key_id) for d in rows) == [(f"env-file:{tmp_path}/b.env", "k2"), ("keyring", "k1")]
    assert all(d.server == S1 and d.app_id == "id-1" and d.time for d in rows)
    assert [d.store for d in where_delivered(S1, "billing", "k1")] == ["keyring"]
    assert "s3cret" not in deliveries_path().read_text()


def test_every_application_this_machine_delivered_to_is_listed(tmp_path: Path) -> None:
    record_delivery(S1, "a", "ia", "keyring", "ka")
    record_delivery(S2, "b", "ib", "keyring", "kb")
    assert sorted((d.server, d.app) for d in deliveries()) == [(S1, "a"), (S2, "b")]


def test_forgetting_one_store_keeps_the_others(tmp_path: Path) -> None:
    record_delivery(S1, "a", "ia", "keyring", "k")
    record_delivery(S1, "a", "ia", "json", "k")
    forget_deliveries(S1, "a", "json")
    assert [d.store for d in deliveries(S1, "a")] == ["keyring"]
    forget_deliveries(S1, "a")
    assert deliveries() == []


def test_the_record_of_earlier_versions_is_read(tmp_path: Path) -> None:
    deliveries_path().parent.mkdir(parents=True, exist_ok=True)
    deliveries_path().write_text(json.dumps({S1: {"a": [{"store": "keyring", "key_id": "k", "app_id": "i",
                                                          "time": "2024-01-01T00:00:00+00:00"}]}}))
    assert [(d.app, d.key_id, d.store) for d in deliveries(S1)] == [("a", "k", "keyring")]


def test_a_key_creation_intent_lives_until_it_ends() -> None:
    intent = begin_key_creation(S1, "a", "ia", {"k0"}, ["keyring"])
    assert pending_key_creations(S1, "a") == [intent]
    assert intent.known_key_ids == ("k0",)
    assert pending_key_creations(S1, "b") == []
    end_key_creation(intent)
    assert pending_key_creations(S1, "a") == []


# ----- which application, which store ---------------------------------------------------------------

def test_the_application_comes_from_the_argument_then_the_project_then_the_first_task(tmp_path: Path) -> None:
    project = ProjectDefaults(path=tmp_path / "orkes-provision.toml", app="proj-app")
    assert choose_app_name("x", project=project).value == "x"
    assert choose_app_name(None, project=project).value == "proj-app"
    assert choose_app_name(None, tasks=["greetings"]) == Choice("greetings-worker", "first granted task")
    with pytest.raises(UsageError):
        choose_app_name(None)


def test_the_store_order_is_flag_env_project_delivery_config_keyring(tmp_path: Path, env: dict[str, str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    project = ProjectDefaults(path=tmp_path / "proj" / "orkes-provision.toml", app="a", store="env-file:p.env")
    config = tmp_path / "config" / "orkes-provision" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('default_store = "env-file:./cfg.env"\n')
    full = {**env, "ORKES_PROVISION_STORE": "env-file:e.env"}

    assert choose_store("env-file:./f.env", app="a", project=project, env=full) == \
        Choice(f"env-file:{tmp_path}/f.env", "--store")
    assert choose_store(None, app="a", project=project, env=full).source == "ORKES_PROVISION_STORE"
    chosen = choose_store(None, app="a", project=project, env=env)
    assert chosen.value == f"env-file:{tmp_path}/proj/p.env"  # relative to the project file, not the cwd
    assert "project file" in chosen.source
    record_delivery(S1, "a", "ia", "env-file:d.env", "k")
    record_delivery(S1, "a", "ia", "json", "k")  # printed once: never where a key is read from
    assert choose_store(None, app="a", project=None, env=env).value == f"env-file:{tmp_path}/d.env"
    assert "delivered" in choose_store(None, app="a", server=S1, env=env).source
    assert choose_store(None, app="a", server=S2, env=env).source.startswith("default_store")
    config.unlink()
    assert choose_store(None, app="other", env=env) == Choice("keyring", "the default")


def test_the_project_store_is_only_for_the_project_application(tmp_path: Path, env: dict[str, str]) -> None:
    project = ProjectDefaults(path=tmp_path / "orkes-provision.toml", app="a", store="env-file:p.env")
    assert choose_store(None, app="someone-else", project=project, env=env).value == "keyring"


# ----- which server -------------------------------------------------------------------------------

def test_an_env_file_names_the_server_of_its_key(tmp_path: Path) -> None:
    store = EnvFileStore(tmp_path / "w.env")
    store.save(key(S2, "a"))
    chosen = choose_key_server(app="a", store=store, flag=None, project=None, env={"CONDUCTOR_SERVER_URL": S1})
    assert chosen.value == S2
    assert str(tmp_path / "w.env") in chosen.source
    assert choose_key_server(app="a", store=store, flag=S1, project=None, env={}).value == S1


def test_without_a_store_record_the_server_comes_from_project_env_credentials_then_deliveries(
        tmp_path: Path) -> None:
    store = MemoryStore()
    project = ProjectDefaults(path=tmp_path / "orkes-provision.toml", app="a", server=S1)
    assert choose_key_server(app="a", store=store, flag=None, project=project, env={}).value == S1
    assert choose_key_server(app="a", store=store, flag=None, project=None,
                             env={"CONDUCTOR_SERVER_URL": S2}).value == S2
    assert choose_key_server(app="a", store=store, flag=None, project=None, env={},
                             credentials_server=lambda: Choice(S2, "profile 'p'")).source == "profile 'p'"
    record_delivery(S2, "a", "ia", "keyring", "k")
    assert choose_key_server(app="a", store=store, flag=None, project=None, env={}).value == S2
    with pytest.raises(ConfigError, match="no server known"):
        choose_key_server(app="b", store=store, flag=None, project=None, env={})


def test_a_project_file_that_disagrees_with_the_credentials_is_refused_naming_both(tmp_path: Path) -> None:
    project = ProjectDefaults(path=tmp_path / "orkes-provision.toml", app="a", server=S1)
    with pytest.raises(ConfigError) as refused:
        choose_key_server(app="a", store=MemoryStore(), flag=None, project=project,
                          env={"CONDUCTOR_SERVER_URL": S2})
    assert S1 in refused.value.message and S2 in refused.value.message
    assert "--server" in refused.value.hint
    with pytest.raises(ConfigError):
        check_project_server(project, "a", Choice(S2, "the provisioning credentials"))
    check_project_server(project, "a", Choice(S2, "--server"))  # the user said so
    check_project_server(project, "not-the-project-app", Choice(S2, "the provisioning credentials"))


def test_a_project_file_that_disagrees_with_the_env_file_holding_the_key_is_refused(tmp_path: Path) -> None:
    store = EnvFileStore(tmp_path / "w.env")
    store.save(key(S2, "a"))
    project = ProjectDefaults(path=tmp_path / "orkes-provision.toml", app="a", server=S1, store="env-file:w.env")
    with pytest.raises(ConfigError, match="never redirects"):
        choose_key_server(app="a", store=store, flag=None, project=project, env={})


def test_a_key_stored_under_another_spelling_of_the_server_is_found(tmp_path: Path) -> None:
    store = EnvFileStore(tmp_path / "w.env")
    store.save(key("http://127.0.0.1:8080/api", "a"))
    found = find_stored_key(store, "http://localhost:8080/api", "a")
    assert found is not None and found.server == "http://127.0.0.1:8080/api"
    assert find_stored_key(store, "http://localhost:8080/api", "b") is None


# ----- hints --------------------------------------------------------------------------------------

def test_hints_quote_names_and_carry_the_store_and_profile() -> None:
    hints = Hints(app="my app", store="env-file:/w d/w.env", options=("--profile", "sandbox"), tasks=("t 1",))
    assert hints.keys("deactivate", "K") == "provision --profile sandbox keys deactivate 'my app' K --yes"
    assert shlex.split(hints.new_key()) == ["provision", "--profile", "sandbox", "app", "my app", "--new-key",
                                            "--store", "env-file:/w d/w.env"]
    assert shlex.split(hints.create_app("--worker"))[-4:] == ["--grant", "t 1", "--store", "env-file:/w d/w.env"]
    assert hints.run().endswith("-- <worker command>")
    keyring = Hints(app="a", store="keyring", server=S1)
    assert f"--server {S1}" in keyring.run()  # the keyring does not say which server its key is for
    assert "--server" not in hints.run()
