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
     "orkes-provision.toml: workers[0].runtime: Input should be 'python', 'java', 'javascript', 'go' or 'csharp'"),
    ('[[workers]]\nname = "w"\nruntime = "go"\n', "orkes-provision.toml: workers[0].command: Field required"),
    ('[[workers]]\nname = "w"\nruntime = "go"\ncommand = []\n', "workers[0].command: List should have at least 1 item"),
    ('[[workers]]\nname = "w"\nruntime = "go"\ncommand = ["x"]\nreplicas = 0\n',
     "workers[0].replicas: Input should be greater than or equal to 1"),
    ('[[workers]]\nname = "w"\nruntime = "go"\ncommand = ["x"]\nrestart = "sometimes"\n',
     "workers[0].restart: Input should be 'always', 'on-failure' or 'never'"),
    ('[application]\nname = "a"\nroles = ["WORKER"]\ngrant = ["x"]\n',
     "orkes-provision.toml: application.grant: Extra inputs are not permitted"),
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
    assert caught.value.message.startswith("orkes-provision.toml: TOML syntax:")
    assert "line 2" in caught.value.message


def test_an_unknown_worker_name_lists_the_known_ones(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    project = load_project(tmp_path / PROJECT_FILE)
    assert project is not None
    with pytest.raises(ConfigError) as caught:
        project.worker("nope")
    assert "(workers: greetings, farewells)" in caught.value.message
