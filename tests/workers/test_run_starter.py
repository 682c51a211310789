"""Starters are not workers (issue 25, item 2): the docs' starter (``roles = []``) was refused by ``run``'s preflight
("lacks the WORKER role") with a hint to add WORKER. The preflight checks what the command does: a starter from
the project file or ``--starter``, a worker from ``--worker`` or by default; it never proposes a role a starter
does not need."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orkes_provision.workers.launch import command_does
from tests.test_hints import PROBE, World, app_of, cwd, provision, world

__all__ = ["cwd", "world"]  # the fixtures, shared with the hint test

STARTER = '[application]\nname = "{name}"\nroles = []\nstore = "env-file:starter.env"\n'


def probe(cwd: Path) -> list[str]:
    (cwd / "probe.py").write_text(PROBE)
    return ["python3", "probe.py", "probe.json"]


@pytest.mark.parametrize("with_admin", [True, False], ids=["full preflight", "key-only preflight"])
def test_the_docs_starter_runs_from_its_project_without_the_worker_role(world: World, cwd: Path,
                                                                         with_admin: bool) -> None:
    name = f"starter-{'adm' if with_admin else 'key'}"
    (cwd / "orkes-provision.toml").write_text(STARTER.format(name=name))
    made = provision(world, cwd, "app")
    assert made.returncode == 0, made.stderr
    assert world.admin.get_app_user(app_of(world, name)).role_names == set()

    started = provision(world, cwd, "run", "--", *probe(cwd), profile=with_admin)  # a fresh shell: PATH, HOME

    assert started.returncode == 0, started.stderr
    assert "WORKER" not in started.stderr
    assert "a starter, so no worker role or task grants checked" in started.stderr
    assert json.loads((cwd / "probe.json").read_text())["CONDUCTOR_AUTH_KEY"]


def test_without_a_project_the_missing_role_hint_offers_starter_first_and_starter_runs(world: World,
                                                                                      cwd: Path) -> None:
    made = provision(world, cwd, "app", "starter-flag", "--store", "env-file:s.env")
    assert made.returncode == 0, made.stderr
    refused = provision(world, cwd, "run", "--app", "starter-flag", "--store", "env-file:s.env", "--", "true")
    assert refused.returncode == 11, refused.stderr
    assert "if CMD only starts workflows, add --starter; if it polls tasks, give it the role: provision" in \
        refused.stderr

    started = provision(world, cwd, "run", "--app", "starter-flag", "--store", "env-file:s.env", "--starter", "--",
                        *probe(cwd))

    assert started.returncode == 0, started.stderr
    assert json.loads((cwd / "probe.json").read_text())["CONDUCTOR_AUTH_KEY"]
    both = provision(world, cwd, "run", "--app", "starter-flag", "--store", "env-file:s.env", "--starter",
                     "--worker", "--", "true")
    assert both.returncode == 11  # starts workflows and polls tasks: the worker's checks apply
    assert "add --starter" not in both.stderr


@pytest.mark.parametrize(("worker", "starter", "roles", "does"), [
    (False, False, None, {"worker"}),
    (False, False, [], {"starter"}),
    (False, False, ["METADATA_API"], {"starter"}),
    (False, False, ["WORKER"], {"worker"}),
    (False, True, ["WORKER"], {"starter"}),
    (True, True, [], {"worker", "starter"}),
])
def test_what_the_command_does_comes_from_the_flags_then_the_project_file(
        worker: bool, starter: bool, roles: list[str] | None, does: set[str]) -> None:
    assert command_does(worker=worker, starter=starter, project_roles=roles) == does
