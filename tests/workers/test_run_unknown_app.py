"""``run --app NAME`` for a name this machine knows nothing about (issue 25, item 11): the answer is "unknown
application", exit 6, not the keyring's failure (a fresh shell has no keyring); a near miss of an application
delivered here gets the command meant, which run as printed starts the worker."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from tests.test_hints import PROBE, World, commands_in, cwd, provision, run_printed, world

__all__ = ["cwd", "world"]  # the fixtures, shared with the hint test


def test_run_with_an_unknown_application_says_so_instead_of_blaming_the_keyring(world: World, cwd: Path) -> None:
    refused = provision(world, cwd, "run", "--app", "nosuch-app-zq", "--", "true")

    assert refused.returncode == 6, refused.stderr
    lines = refused.stderr.splitlines()
    assert lines[0] == "error: unknown application 'nosuch-app-zq': this machine delivered no key of it, and no " \
                       "project file here names it"
    assert lines[1] == "hint: create it with its key: provision app nosuch-app-zq --worker, or give --store SPEC " \
                       "where its key is"
    assert "keyring" not in refused.stderr


def test_run_with_a_near_miss_of_a_delivered_application_prints_the_command_meant(world: World, cwd: Path) -> None:
    made = provision(world, cwd, "app", "runner-typo", "--worker", "--grant", "greetings", "--store", "env-file:r.env")
    assert made.returncode == 0, made.stderr
    (cwd / "probe.py").write_text(PROBE)
    worker = [sys.executable, "probe.py", "probe.json"]
    refused = provision(world, cwd, "run", "--app", "runer-typo", "--", *worker)
    assert refused.returncode == 6, refused.stderr
    (command,) = commands_in(refused)
    assert command == shlex.join(["provision", "--profile", "sandbox", "run", "--app", "runner-typo", "--", *worker])

    entry = run_printed(world, "run --app with a typo", "run: hint", command, cwd)

    assert json.loads((cwd / "probe.json").read_text())["CONDUCTOR_AUTH_KEY"]
    entry.effect = "the worker started with runner-typo's key"


def test_doctor_of_an_unknown_application_asks_the_server_not_the_keyring(world: World, cwd: Path) -> None:
    result = provision(world, cwd, "doctor", "nosuch-app-zq", "--task", "greetings", "--json")
    assert result.returncode == 11, result.stderr
    report = json.loads(result.stdout)
    assert [f["message"] for f in report["findings"] if not f["ok"]] == ["no application named nosuch-app-zq"]
