"""Typos in task names on the command line (issue 25, items 6 and 11): ``app --grant greetngs``, ``grant APP
greetngs`` and ``doctor --task greetngs`` say "did you mean greetings?", never propose ``--register-tasks``
(which would register the typo), exit 6 like every missing task, and print the command meant, which run as
printed in a fresh shell (PATH and HOME only) does what the user wanted."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from orkes_provision.access.tasknames import UnknownTasks, closest
from orkes_provision.orkes.models import app_subject
from tests.test_hints import World, app_of, commands_in, cwd, provision, run_printed, world

__all__ = ["cwd", "world"]  # the fixtures, shared with the hint test


def execute_grants(world: World, name: str) -> set[str]:
    granted = world.admin.get_user_permissions(app_subject(app_of(world, name)).id)
    return {g.target.id for g in granted if g.target.type == "TASK_DEF" and "EXECUTE" in g.access}


def registered(world: World) -> set[str]:
    return {t.name for t in world.admin.list_task_defs()}


def hint_of(result_stderr: str) -> str:
    (hint,) = [line for line in result_stderr.splitlines() if line.startswith("hint: ")]
    return hint


def test_app_grant_with_a_typo_suggests_the_registered_task_and_the_command_meant(world: World, cwd: Path) -> None:
    name = f"typo-app-{uuid.uuid4().hex[:6]}"
    refused = provision(world, cwd, "app", name, "--worker", "--grant", "greetngs", "--store", "env-file:t.env")

    assert refused.returncode == 6, refused.stderr
    assert refused.stderr.splitlines()[0] == "error: task definition not found on the server: greetngs " \
                                             "(did you mean greetings?)"
    assert "--register-tasks" not in refused.stderr
    (command,) = commands_in(refused)
    assert command == f"provision --profile sandbox app {name} --worker --grant greetings --store env-file:t.env"

    entry = run_printed(world, "app --grant with a typo", "app: hint", command, cwd)

    assert execute_grants(world, name) == {"greetings"}
    assert "greetngs" not in registered(world)
    entry.effect = "the application executes greetings; no task named after the typo"


def test_grant_with_a_typo_exits_6_and_its_hint_grants_the_task_meant(world: World, cwd: Path) -> None:
    name = f"typo-grant-{uuid.uuid4().hex[:6]}"
    assert provision(world, cwd, "app", name, "--role", "METADATA_API", "--store", "env-file:g.env").returncode == 0
    refused = provision(world, cwd, "grant", name, "Greetings")

    assert refused.returncode == 6, refused.stderr  # a missing task is "not found" everywhere, as for 'app'
    assert "(did you mean greetings?); nothing was granted" in refused.stderr.splitlines()[0]
    (command,) = commands_in(refused)
    assert command == f"provision --profile sandbox grant {name} greetings"

    entry = run_printed(world, "grant with a typo", "grant: hint", command, cwd)

    assert execute_grants(world, name) == {"greetings"}
    entry.effect = "EXECUTE on greetings granted"


def test_doctor_with_a_typo_checks_the_task_meant_instead_of_proposing_to_register_it(world: World,
                                                                                       cwd: Path) -> None:
    name = f"typo-doc-{uuid.uuid4().hex[:6]}"
    store = f"env-file:{cwd}/d.env"
    assert provision(world, cwd, "app", name, "--worker", "--grant", "greetings", "--store", store).returncode == 0
    failed = provision(world, cwd, "doctor", name, "--task", "greetngs", "--store", store)

    assert failed.returncode == 11, failed.stdout
    assert "FAIL task: task definition missing: greetngs (did you mean greetings?)" in failed.stdout
    assert "--register-tasks" not in failed.stdout + failed.stderr
    (command,) = dict.fromkeys(commands_in(failed))

    entry = run_printed(world, "doctor --task with a typo", "doctor: fix", command, cwd)

    assert command == f"provision --profile sandbox doctor {name} --task greetings --store {store}"
    entry.effect = "doctor checks greetings and passes"


def test_a_name_close_to_no_task_still_gets_the_register_hint(world: World, cwd: Path) -> None:
    name = f"typo-none-{uuid.uuid4().hex[:6]}"
    assert provision(world, cwd, "app", name, "--role", "METADATA_API", "--store", "env-file:n.env").returncode == 0
    refused = provision(world, cwd, "grant", name, "zzqx")
    assert refused.returncode == 6
    assert "did you mean" not in refused.stderr
    assert "--register-tasks" in hint_of(refused.stderr)


@pytest.mark.parametrize(("word", "meant"), [("greetngs", "greetings"), ("Greetings", "greetings"),
                                             ("shipp", "ship"), ("zzqx", None), ("x", None)])
def test_a_near_miss_is_a_case_difference_or_a_small_edit(word: str, meant: str | None) -> None:
    assert closest(word, ["greetings", "ship", "order"]) == meant


def test_only_names_that_are_all_near_misses_rewrite_the_command_line() -> None:
    both = UnknownTasks(["greetngs", "zzqx"], ["greetings"])
    assert (both.near, both.unmatched, both.corrections) == ({"greetngs": "greetings"}, ["zzqx"], {})
    assert "register" in both.hint
    typo = UnknownTasks(["greetngs"], ["greetings"])
    assert typo.corrections == {"greetngs": "greetings"}
    assert typo.hint == "use the registered name: greetings"
