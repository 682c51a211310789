"""Files: errors in the project file and the config file are as good as the environment file's: one line
naming the file and the place in it, the real problem first, "did you mean" for an unknown key, unknown
config keys reported, a directory in place of a file named as such. Through the CLI, with and without --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conventions.runner import run_cli

PROJECT = "orkes-provision.toml"


def env_of(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "XDG_STATE_HOME": str(tmp_path / "state"), **extra}


@pytest.mark.parametrize(("text", "error", "hint"), [
    ('[application]\nname = "a"\nrole = ["WORKER"]\n',
     "orkes-provision.toml: application.role: unknown key; did you mean 'roles'? (allowed: name, roles, grants, store)",
     "rename the key to 'roles'"),
    ('[application]\nname = "a"\n[[workers]]\nname = "w"\ncommand = "python3 main.py"\n',
     "orkes-provision.toml: workers[0].command: must be a list of strings, e.g. [\"python3\", \"main.py\"] "
     "(got 'python3 main.py') (and 1 more problem)",
     "fix the value; 'provision init' writes a complete example"),
    ('[application]\nname = "a"\n[[workers]]\nname = "w"\nruntime = "pyhton"\ncommand = ["python3", "main.py"]\n',
     "orkes-provision.toml: workers[0].runtime: 'pyhton' is not one of python, java, javascript, go, csharp; "
     "did you mean 'python'?", "replace 'pyhton' with 'python'"),
    ('[application]\nname = "a\n', "orkes-provision.toml: line 2, column 10: TOML syntax: illegal character '\\n'",
     "fix the TOML at that place (syntax: https://toml.io)"),
])
def test_project_file_errors_are_located_and_say_the_real_problem(tmp_path: Path, text: str, error: str,
                                                                   hint: str) -> None:
    (tmp_path / PROJECT).write_text(text)
    result = run_cli(["worker", "list"], env=env_of(tmp_path), cwd=tmp_path)
    assert result.code == 3, result
    assert result.err.splitlines() == [f"error: {error}", f"hint: {hint}"]
    machine = run_cli(["worker", "list", "--json"], env=env_of(tmp_path), cwd=tmp_path)
    document = json.loads(machine.out)
    assert document.pop("problems", [{}])[0].get("hint", hint) == hint  # a TOML syntax error is also located
    assert document == {"error": "config", "message": error, "hint": hint, "exitCode": 3}


def test_a_directory_named_like_the_project_file_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / PROJECT).mkdir()
    (tmp_path / "sub").mkdir()
    result = run_cli(["worker", "list"], env=env_of(tmp_path), cwd=tmp_path / "sub")
    assert result.code == 3
    assert result.err.splitlines()[0] == f"error: {tmp_path / PROJECT}: is a directory, not a project file"


@pytest.mark.parametrize(("text", "error"), [
    ('default_profle = "prod"\n',
     "default_profle: unknown key; did you mean 'default_profile'? (allowed: default_profile, default_store, "
     "max_token_ttl, profiles)"),
    ('[profiles.prod]\nserver = "https://acme.orkesconductor.io/api"\nkey = "4f1c"\n',
     "profiles.prod.key: unknown key; did you mean 'key_id'? (allowed: server, key_id) (and 1 more problem)"),
    ('[profiles.prod]\nserver = "https://acme.orkesconductor.io/api"\n',
     "profiles.prod: required key 'key_id' is missing"),
    ('default_store = ["keyring"]\n', "default_store: must be a string (got ['keyring'])"),
    ('default_profile = "prod\n', "line 1, column 24: TOML syntax: illegal character '\\n'"),
])
def test_config_file_errors_are_located_and_unknown_keys_reported(tmp_path: Path, text: str, error: str) -> None:
    config = tmp_path / "config" / "orkes-provision" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(text)
    result = run_cli(["apps", "list"], env=env_of(tmp_path), cwd=tmp_path)
    assert result.code == 3, result
    assert result.err.splitlines()[0] == f"error: {config}: {error}"


def test_a_directory_in_place_of_the_config_file_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    result = run_cli(["apps", "list"], env=env_of(tmp_path, ORKES_PROVISION_CONFIG=str(tmp_path / "conf.d")),
                     cwd=tmp_path)
    assert result.code == 3
    assert result.err.splitlines() == [
        f"error: {tmp_path / 'conf.d'}: is a directory, not a config file",
        "hint: remove or rename the directory, or set ORKES_PROVISION_CONFIG to the file"]
