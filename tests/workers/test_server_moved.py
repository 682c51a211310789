"""The server moved (issue 25, item 4): the sandbox restarted on another port (as the tour's ``--port 0`` does) left
every env file with the old URL; ``provision app`` said "No changes" and ``run`` failed with "cannot reach". Now
``run``'s "cannot reach" hint names the stored URL and the command that updates it, and that command (``app``
against the current server, same key) rewrites the store's URL, after which ``run`` reaches the server."""

from __future__ import annotations

import json
from pathlib import Path

from orkes_provision.credentials.stores.envfile import parse_env
from tests.test_hints import PROBE, World, commands_in, cwd, provision, run_printed, world

__all__ = ["cwd", "world"]  # the fixtures, shared with the hint test (this module restarts its own sandbox)


def test_after_the_sandbox_moves_the_cannot_reach_hint_updates_the_stored_url_and_run_works(world: World,
                                                                                           cwd: Path) -> None:
    made = provision(world, cwd, "app", "mover", "--worker", "--grant", "greetings", "--store", "env-file:m.env")
    assert made.returncode == 0, made.stderr
    old_url = world.sandbox.url
    key = parse_env((cwd / "m.env").read_text())["CONDUCTOR_AUTH_KEY"]
    world.sandbox.stop()
    world.sandbox.port = 0  # another free port, the same data: the key is still valid
    world.sandbox.start()
    new_url = world.sandbox.url
    assert new_url != old_url

    refused = provision(world, cwd, "run", "--app", "mover", "--store", "env-file:m.env", "--", "true")

    assert refused.returncode == 8, refused.stderr
    assert f"error: cannot reach {old_url}" in refused.stderr
    assert f"hint: the key of mover is stored for {old_url}; if the server moved, update the stored URL" \
        in refused.stderr
    (command,) = commands_in(refused)
    entry = run_printed(world, "sandbox restarted on another port", "run: hint", command, cwd)

    stored = parse_env((cwd / "m.env").read_text())
    assert (stored["CONDUCTOR_SERVER_URL"], stored["CONDUCTOR_AUTH_KEY"]) == (new_url, key)  # same key, new URL
    (cwd / "probe.py").write_text(PROBE)
    started = provision(world, cwd, "run", "--app", "mover", "--store", "env-file:m.env", "--", "python3",
                        "probe.py", "probe.json")
    assert started.returncode == 0, started.stderr
    assert f"for {new_url} (from env file {cwd / 'm.env'})" in started.stderr  # the key's server: the new one
    assert json.loads((cwd / "probe.json").read_text())["CONDUCTOR_AUTH_KEY"]  # the worker started (via the agent)
    entry.effect = "the env file names the new URL with the same key; run reaches the server"
    again = provision(world, cwd, "app", "mover", "--store", "env-file:m.env")
    assert "its server updated" not in again.stdout  # done once
