"""Ages need units (issue 25, item 9): ``--older-than 30`` once meant 30 seconds and rotated every key. An age
or a lifetime given as a bare number is refused before any request, with "did you mean 30d?"; the suggested
command, run as printed, does what the user meant."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from orkes_provision.durations import parse_duration
from orkes_provision.environments.environment import load_environment
from orkes_provision.errors import ConfigError, UsageError
from orkes_provision.sandbox.harness import SandboxProcess
from tests.rotation.helpers import PROVISION, cli_env, provision

FAST = ["--switch-wait", "0s"]


@pytest.fixture
def env(shared_sandbox: SandboxProcess, state_dir: Path, tmp_path: Path) -> dict[str, str]:
    return cli_env(shared_sandbox.admin_env, state_dir, tmp_path / "home")


def key_ids(env: dict[str, str], app: str) -> list[str]:
    return [k["id"] for k in json.loads(provision(["keys", "list", app, "--json"], env).stdout)]


def suggested(stderr: str) -> str:
    """The value after "did you mean" on the error line."""
    first = stderr.splitlines()[0]
    assert "did you mean " in first, stderr
    return first.split("did you mean ")[1].rstrip("?")


def test_older_than_without_a_unit_rotates_nothing_and_the_suggestion_leaves_a_fresh_key_alone(
        shared_sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path) -> None:
    app = f"age-{uuid.uuid4().hex[:8]}"
    made = provision(["app", app, "--worker", "--store", f"env-file:{tmp_path / 'w.env'}"], env)
    assert made.returncode == 0, made.stderr
    before = key_ids(env, app)
    mark = shared_sandbox.mark()

    bare = provision(["keys", "rotate", "--all", "--older-than", "30", *FAST], env)

    assert bare.returncode == 2, bare.stderr
    assert bare.stderr.splitlines()[0] == "error: invalid value for '--older-than': '30' has no unit: " \
                                          "did you mean 30d?"
    assert shared_sandbox.requests()[mark:] == []
    assert key_ids(env, app) == before

    meant = provision(["keys", "rotate", "--all", "--older-than", suggested(bare.stderr), *FAST], env)

    assert meant.returncode == 0, meant.stderr
    assert f"{app}: not due" in meant.stdout
    assert key_ids(env, app) == before


@pytest.mark.parametrize(("args", "option", "meant"), [
    (["keys", "rotate", "some-app", "--grace", "15"], "--grace", "15d"),
    (["keys", "prune", "some-app", "--grace", "7"], "--grace", "7d"),
    (["doctor", "some-app", "--max-key-age", "90"], "--max-key-age", "90d"),
    (["keys", "rotate", "--all", "--older-than", "1.5"], "--older-than", "1.5d"),
])
def test_every_age_option_refuses_a_bare_number_before_any_request(
        shared_sandbox: SandboxProcess, env: dict[str, str], args: list[str], option: str, meant: str) -> None:
    mark = shared_sandbox.mark()
    result = provision(args, env)
    assert result.returncode == 2, result.stderr
    assert f"invalid value for '{option}'" in result.stderr.splitlines()[0]
    assert suggested(result.stderr) == meant
    assert shared_sandbox.requests()[mark:] == []


def test_a_bare_zero_is_not_ambiguous_and_waits_keep_taking_seconds() -> None:
    assert parse_duration("0", unit_for_bare="d").total_seconds() == 0
    assert parse_duration("15").total_seconds() == 15  # --switch-wait 15, --timeout 15: seconds, as sleep 15
    with pytest.raises(UsageError) as caught:
        parse_duration("30", unit_for_bare="d")
    assert (caught.value.message, caught.value.hint) == ("'30' has no unit", "did you mean 30d?")


def test_the_sandbox_token_lifetime_needs_a_unit(tmp_path: Path) -> None:
    result = subprocess.run([PROVISION, "sandbox", "--port", "0", "--data-dir", str(tmp_path / "sb"),
                             "--token-ttl", "3600"], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[0] == "error: invalid value for '--token-ttl': '3600' has no unit: " \
                                            "did you mean 3600s?"
    assert not (tmp_path / "sb").exists()


def test_key_max_age_without_a_unit_in_an_environment_file_is_refused_with_the_suggestion(tmp_path: Path,
                                                                                         env: dict[str, str]) -> None:
    path = tmp_path / "env.toml"
    path.write_text('name = "x"\n[[applications]]\nname = "a"\nstore = "keyring"\nkeyMaxAge = "30"\n')
    with pytest.raises(ConfigError) as caught:
        load_environment(path)
    assert "keyMaxAge: '30' has no unit: did you mean 30d?" in caught.value.message
    planned = provision(["plan", "-f", str(path)], env)
    assert planned.returncode == 3
    assert "did you mean 30d?" in planned.stderr
