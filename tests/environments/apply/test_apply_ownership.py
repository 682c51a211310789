"""``apply`` changes only what is its own (issue 12, items 1, 5 and 7): applications of another
environment, stores that hold another application's key, and hints that name the file, not flags."""

from __future__ import annotations

from pathlib import Path

from orkes_provision.orkes.models import Tag
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision
from tests.environments.apply.helpers import App, admin_client, env_text, run, run_ok

NO_KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


def write(tmp_path: Path, *apps: App, name: str = "staging") -> None:
    (tmp_path / "env.toml").write_text(env_text(name, list(apps), tasks={"t1": {}}))


def test_an_application_of_another_environment_is_refused_before_any_write(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    with admin_client(sandbox) as client:
        prod = client.create_application("shared-name")
        client.put_application_tags(prod.id, [Tag(key="managed-by", value="orkes-provision"),
                                              Tag(key="environment", value="prod")])
    write(tmp_path, App("shared-name", tasks=["t1"]))
    mark = sandbox.mark()

    planned = run(sandbox, tmp_path, "plan", "-f", "env.toml")
    applied = run(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve", "--prune")

    for result in (planned, applied):
        assert result.returncode == 7, output(result)
        assert "belongs to environment 'prod'" in result.stderr
    assert sandbox.write_requests(since=mark) == []
    with admin_client(sandbox) as client:
        tags = {(t.key, t.value) for t in client.get_application_tags(prod.id)}
        assert ("environment", "prod") in tags


def test_adopting_an_untagged_application_is_visible_in_the_plan(sandbox: SandboxProcess, tmp_path: Path) -> None:
    with admin_client(sandbox) as client:
        client.create_application("by-hand")
    write(tmp_path, App("by-hand", tasks=["t1"]))

    planned = run_ok(sandbox, tmp_path, "plan", "-f", "env.toml")

    assert "~ tag application by-hand as environment=staging (adopt: by-hand exists without an environment tag" \
        in planned.stdout


def test_two_spellings_of_one_env_file_are_one_store(tmp_path: Path) -> None:
    (tmp_path / "env.toml").write_text(env_text("staging", [App("a", store="env-file:dup.env"),
                                                            App("b", store="env-file:./dup.env")]))
    result = provision(["plan", "-f", "env.toml"], cwd=tmp_path)
    assert result.returncode == 3, output(result)
    assert "which are one file" in result.stderr


def test_a_store_holding_another_applications_key_stops_apply_and_names_the_file(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    run_ok(sandbox, tmp_path, "app", "owner", "--worker", "--store", "env-file:shared.env")
    write(tmp_path, App("intruder", tasks=["t1"], store="env-file:shared.env"))
    mark = sandbox.mark()

    result = run(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")

    assert result.returncode == 10, output(result)
    assert "holds the key of application 'owner'" in result.stderr
    hint = next(line for line in result.stderr.splitlines() if line.startswith("hint: "))
    assert "env.toml" in hint and "--store" not in hint and "--force" not in hint
    assert sandbox.write_requests(since=mark) == []


def test_no_keyring_hint_of_apply_names_the_file_not_a_flag(sandbox: SandboxProcess, tmp_path: Path) -> None:
    write(tmp_path, App("kr", tasks=["t1"], store="keyring"))
    result = provision(["plan", "-f", "env.toml"], env={**sandbox.admin_env, **NO_KEYRING}, cwd=tmp_path)
    assert result.returncode == 10, output(result)
    hint = next(line for line in result.stderr.splitlines() if line.startswith("hint: "))
    assert "--store" not in hint and "env.toml" in hint
