"""``provision app --workflow W`` (issue 25, item 1, in part): a starter gets what starting W needs (EXECUTE on the
workflow definition), and its next step, run as printed in a fresh shell with a program that starts W, starts it;
without the grant the same program gets 403."""

from __future__ import annotations

import shlex
import uuid
from pathlib import Path

from orkes_provision.orkes.models import app_subject
from tests.test_hints import World, app_of, commands_in, cwd, provision, run_printed, sh, world

__all__ = ["cwd", "world"]  # the fixtures, shared with the hint test

STARTER = """import os, sys, httpx
base = os.environ["CONDUCTOR_SERVER_URL"]
token = httpx.post(base + "/token", json={"keyId": os.environ["CONDUCTOR_AUTH_KEY"],
                                          "keySecret": os.environ["CONDUCTOR_AUTH_SECRET"]}).json()["token"]
answer = httpx.post(base + "/workflow/" + sys.argv[1], json={"name": "Orkes"}, headers={"X-Authorization": token})
open(sys.argv[2], "w").write(str(answer.status_code))
"""


def test_app_workflow_grants_what_starting_it_needs_and_the_printed_run_starts_it(world: World, cwd: Path) -> None:
    flow = f"greet_flow_{uuid.uuid4().hex[:6]}"
    world.admin.register_workflow_def({"name": flow, "version": 1, "schemaVersion": 2, "tasks": [
        {"name": "greetings", "taskReferenceName": "greet_ref", "type": "SIMPLE"}]})
    (cwd / "start.py").write_text(STARTER)
    name = f"wf-starter-{uuid.uuid4().hex[:6]}"

    made = provision(world, cwd, "app", name, "--workflow", flow, "--store", "env-file:s.env")

    assert made.returncode == 0, made.stderr
    granted = world.admin.get_user_permissions(app_subject(app_of(world, name)).id)
    assert {(g.target.type, g.target.id, tuple(g.access)) for g in granted} == {("WORKFLOW_DEF", flow, ("EXECUTE",))}
    assert world.admin.get_app_user(app_of(world, name)).role_names == set()  # a starter needs no role
    (command,) = commands_in(made)
    assert command.endswith("--starter -- <starter command>")
    starter = shlex.join(["python3", "start.py", flow, "status.txt"])

    entry = run_printed(world, "app --workflow", "app: Next", command.replace("<starter command>", starter), cwd)

    assert (cwd / "status.txt").read_text() == "200"
    entry.effect = f"the starter started {flow} (200)"
    other = f"wf-none-{uuid.uuid4().hex[:6]}"
    assert provision(world, cwd, "app", other, "--store", "env-file:o.env").returncode == 0
    refused = sh(world, shlex.join(["provision", "--profile", "sandbox", "run", "--app", other, "--store",
                                    "env-file:o.env", "--starter", "--", "python3", "start.py", flow, "none.txt"]), cwd)
    assert refused.returncode == 0, refused.stderr
    assert (cwd / "none.txt").read_text() == "403"  # the grant is what starting needs
