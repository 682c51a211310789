"""One application per project (issue 25, item 3): every scaffold defaulted to ``greetings-worker``, so two projects
on one server shared an application and its keys; the second project's ``provision app`` offered to retire the
first's key, and the latest delivery beat a project's own store. Now the default name comes from the project's
directory, a project's own store comes first, and a note offering to retire a key says where it was delivered."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orkes_provision.credentials.stores.envfile import parse_env
from orkes_provision.workers.scaffold import default_app_name
from tests.test_hints import World, cwd, provision, world

__all__ = ["cwd", "world"]  # the fixtures, shared with the hint test


def key_in(path: Path) -> str:
    return parse_env(path.read_text())["CONDUCTOR_AUTH_KEY"]


def test_two_scaffolded_projects_get_two_applications(world: World, cwd: Path) -> None:
    for language, directory in (("python", "py-greet"), ("javascript", "js-greet")):
        made = provision(world, cwd, "init", "--lang", language, directory, profile=False)
        assert made.returncode == 0, made.stderr
        assert f'name = "{directory}-worker"' in (cwd / directory / "orkes-provision.toml").read_text()
        app = provision(world, cwd / directory, "app", "--register-tasks", "--store", "env-file:worker.env")
        assert app.returncode == 0, app.stderr
        assert "Note:" not in app.stdout  # no other project's key to retire

    assert key_in(cwd / "py-greet" / "worker.env") != key_in(cwd / "js-greet" / "worker.env")
    doctor = provision(world, cwd / "py-greet", "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert f"Key store: env-file:{cwd / 'py-greet' / 'worker.env'}" in doctor.stderr


def test_a_projects_own_store_beats_a_later_delivery_elsewhere_and_the_retire_note_says_where(
        world: World, cwd: Path) -> None:
    # Two projects that do name one application (an upgrade from the old default).
    for directory in ("first", "second"):
        (cwd / directory).mkdir()
        (cwd / directory / "orkes-provision.toml").write_text(
            '[application]\nname = "shared-greeter"\nroles = ["WORKER"]\ngrants = ["greetings"]\n')
    first = provision(world, cwd / "first", "app", "--store", "env-file:worker.env")
    assert first.returncode == 0, first.stderr
    second = provision(world, cwd / "second", "app", "--store", "env-file:worker.env")
    assert second.returncode == 0, second.stderr
    first_key = key_in(cwd / "first" / "worker.env")
    assert f"  key {first_key}: delivered to env-file:{cwd / 'first' / 'worker.env'} (on " in second.stdout

    doctor = provision(world, cwd / "first", "doctor")  # the latest delivery is second's

    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert f"Key store: env-file:{cwd / 'first' / 'worker.env'}" in doctor.stderr
    assert f"key {first_key} is ACTIVE" in doctor.stdout


@pytest.mark.parametrize(("directory", "name"), [
    ("greetings", "greetings-worker"), ("billing-worker", "billing-worker"), ("my project!", "my-project-worker"),
    ("---", "greetings-worker")])
def test_the_default_name_comes_from_the_directory(tmp_path: Path, directory: str, name: str) -> None:
    assert default_app_name(tmp_path / directory) == name
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:@ -]*", name)
