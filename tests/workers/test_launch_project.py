"""The project file: schema, defaults, search from the cwd upwards, errors that name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from orkes_provision.errors import ConfigError
from orkes_provision.workers.project import PROJECT_FILE, load_project, require_project

GOOD = """
server = "https://example.orkesconductor.io/api"

[application]
name = "greetings-worker"
grants = ["greetings", "farewells"]
store = "env-file:worker.env"

[[workers]]
name = "greetings"
runtime = "python"
command = ["python3", "main.py"]
cwd = "src"
env = { LOG_LEVEL = "DEBUG" }
replicas = 3
restart = "always"

[[workers]]
name = "farewells"
runtime = "go"
command = ["go", "run", "."]
tasks = ["farewells"]
"""


def write(directory: Path, text: str) -> Path:
    path = directory / PROJECT_FILE
    path.write_text(text)
    return path


def test_a_complete_file_loads_with_paths_relative_to_it(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    project = load_project(tmp_path / PROJECT_FILE)
    assert project is not None
    assert project.app_name == "greetings-worker"
    assert project.store == "env-file:worker.env"
    greetings = project.worker("greetings")
    assert greetings.replicas == 3
    assert greetings.restart == "always"
    assert greetings.env == {"LOG_LEVEL": "DEBUG"}
    assert project.worker_cwd(greetings) == (tmp_path / "src").resolve()
    assert project.worker_tasks(greetings) == ["greetings", "farewells"]  # default: the application's grants
    farewells = project.worker("farewells")
    assert project.worker_cwd(farewells) == tmp_path.resolve()
    assert project.worker_tasks(farewells) == ["farewells"]
    assert farewells.replicas == 1
    assert farewells.restart == "on-failure"
    assert project.application is not None
    assert project.application.roles == ["WORKER"]


def test_the_file_is_found_in_a_parent_of_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, GOOD)
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    project = load_project()
    assert project is not None
    assert project.path == (tmp_path / PROJECT_FILE).resolve()


def test_no_file_anywhere_is_none_for_load_and_an_error_for_require(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_project(start=tmp_path) is None
    with pytest.raises(ConfigError) as caught:
        require_project(tmp_path / "missing.toml")
    assert "no such project file" in caught.value.message


@pytest.mark.parametrize(("text", "expected"), [
    ('[[workers]]\nname = "w"\nruntime = "rust"\ncommand = ["x"]\n',
     "orkes-provision.toml: workers[0].runtime: 'rust' is not one of python, java, javascript, go, csharp"),
    ('[[workers]]\nname = "w"\nruntime = "pyhton"\ncommand = ["x"]\n',
     "workers[0].runtime: 'pyhton' is not one of python, java, javascript, go, csharp; did you mean 'python'?"),
    ('[[workers]]\nname = "w"\nruntime = "go"\n',
     "orkes-provision.toml: workers[0]: required key 'command' is missing"),
    ('[[workers]]\nname = "w"\nruntime = "go"\ncommand = []\n', "workers[0].command: must not be empty"),
    ('[[workers]]\nname = "w"\nruntime = "go"\ncommand = ["x"]\nreplicas = 0\n',
     "workers[0].replicas: must be at least 1 (got 0)"),
    ('[[workers]]\nname = "w"\nruntime = "go"\ncommand = ["x"]\nrestart = "sometimes"\n',
     "workers[0].restart: 'sometimes' is not one of always, on-failure, never"),
    ('[application]\nname = "a"\nroles = ["WORKER"]\ngrant = ["x"]\n',
     "orkes-provision.toml: application.grant: unknown key; did you mean 'grants'? "
     "(allowed: name, roles, grants, store)"),
    ('[application]\nname = "a"\nrole = "WORKER"\n', "application.role: unknown key; did you mean 'roles'?"),
    # The real problem first: the string command, not the runtime missing after it.
    ('[[workers]]\nname = "w"\ncommand = "python3 main.py"\n',
     'workers[0].command: must be a list of strings, e.g. ["python3", "main.py"] (got \'python3 main.py\') '
     "(and 1 more problem)"),
    ('[application]\nname = "a"\ngrants = "greetings"\n',
     'application.grants: must be a list of strings, e.g. ["greetings"] (got \'greetings\')'),
    ('serverr = "http://127.0.0.1:8080"\n', "serverr: unknown key; did you mean 'server'?"),
    ('[[workers]]\nname = "w"\nruntime = "go"\ncommand = ["x"]\nenv = { CONDUCTOR_AUTH_SECRET = "s" }\n',
     "workers[0].env: CONDUCTOR_AUTH_SECRET is set by provision from the credential store; remove it here"),
    ('[[workers]]\nname = "w"\nruntime = "go"\ncommand = ["x"]\n[[workers]]\nname = "w"\nruntime = "go"\n'
     'command = ["y"]\n', "two workers are named 'w'"),
])
def test_schema_errors_name_the_file_and_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str,
                                                  expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_project(Path(PROJECT_FILE))
    assert expected in caught.value.message
    assert "\n" not in caught.value.message
    assert caught.value.exit_code == 3


def test_toml_syntax_errors_name_the_file_and_the_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, '[application]\nname = "a\n')
    with pytest.raises(ConfigError) as caught:
        load_project(Path(PROJECT_FILE))
    assert caught.value.message.startswith("orkes-provision.toml: line 2, column 10: TOML syntax:")


def test_a_directory_in_place_of_the_project_file_is_named_as_such(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / PROJECT_FILE).mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as found:
        load_project()
    assert found.value.message == "orkes-provision.toml: is a directory, not a project file"
    with pytest.raises(ConfigError) as given:
        load_project(tmp_path / PROJECT_FILE)
    assert "is a directory, not a project file" in given.value.message


def test_an_unknown_worker_name_lists_the_known_ones(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    project = load_project(tmp_path / PROJECT_FILE)
    assert project is not None
    with pytest.raises(ConfigError) as caught:
        project.worker("nope")
    assert "(workers: greetings, farewells)" in caught.value.message


def test_stop_grace_defaults_to_time_for_the_java_sdk_to_drain_and_takes_a_duration(tmp_path: Path) -> None:
    write(tmp_path, GOOD.replace('restart = "always"', 'restart = "always"\nstop_grace = "1m30s"'))
    project = load_project(tmp_path / PROJECT_FILE)
    assert project is not None
    assert project.worker("greetings").stop_grace_seconds == 90.0
    assert project.worker("farewells").stop_grace_seconds == 15.0  # Java drains 10 s; this leaves room


@pytest.mark.parametrize(("value", "said"), [('"30"', "has no unit"), ('"soon"', "is not a duration"),
                                             ('"0s"', "out of range"), ('"2h"', "out of range")])
def test_a_stop_grace_that_is_no_usable_duration_is_refused_naming_the_key(tmp_path: Path, value: str,
                                                                           said: str) -> None:
    write(tmp_path, GOOD.replace('restart = "always"', f'restart = "always"\nstop_grace = {value}'))
    with pytest.raises(ConfigError) as raised:
        load_project(tmp_path / PROJECT_FILE)
    assert "workers[0].stop_grace" in raised.value.message
    assert said in raised.value.message
