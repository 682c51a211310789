"""The hint test: every command the tool prints as a next step or fix runs as printed in a fresh shell.

Scenarios of ``app``, ``doctor``, ``run``, rotation and ``apply`` collect each command printed after
``Next:``, ``fix:``, ``hint: ...:`` or on a line of its own, and run it verbatim with ``bash -c`` in
an environment of PATH and HOME only: no ``CONDUCTOR_*``, no keyring (no D-Bus session), nothing
of the test's own settings. The sandbox keeps its data where ``--profile sandbox`` finds it from
HOME. The one placeholder allowed is ``<worker command>``, replaced by a probe that records the
credentials it was given. Each command must exit 0 and do what it says, which the scenario checks.
The list of commands run is printed at the end of the test run (tests/hint_log.py).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from orkes_provision.credentials.stores.envfile import parse_env
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials, Target, TaskDef, app_subject
from tests import hint_log
from tests.cli import run_provision
from tests.forkserver import ForkedSandbox

pytest.importorskip("starlette", reason="the sandbox extra is not installed")

from orkes_provision.sandbox.harness import SandboxProcess

BIN = str(Path(sys.executable).parent)
# The worker's credentials are tried while it runs: behind the credential agent they work only then.
PROBE = """import json, os, sys, urllib.request
given = {k: os.environ.get(k) for k in ("CONDUCTOR_SERVER_URL", "CONDUCTOR_AUTH_KEY", "CONDUCTOR_AUTH_SECRET")}
body = json.dumps({"keyId": given["CONDUCTOR_AUTH_KEY"], "keySecret": given["CONDUCTOR_AUTH_SECRET"]}).encode()
request = urllib.request.Request(given["CONDUCTOR_SERVER_URL"] + "/token", body, {"Content-Type": "application/json"})
try:
    given["tokenStatus"] = urllib.request.urlopen(request, timeout=10).status
except urllib.error.HTTPError as err:
    given["tokenStatus"] = err.code
json.dump(given, open(sys.argv[1], "w"))
"""
_COMMAND = re.compile(r"(?:^\s*|: )(provision\s.*)$")
_PLACEHOLDER = re.compile(r"<[^>]*>|\b(?:APP|TASK|KEY_ID|PATH|SPEC|NAME|ID)\b")


@dataclass
class World:
    home: Path
    sandbox: SandboxProcess
    admin: OrkesClient

    @property
    def fresh(self) -> dict[str, str]:
        return {"PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": str(self.home)}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("home")
    # Where 'provision --profile sandbox' looks with HOME alone.
    with ForkedSandbox(home / ".local" / "share" / "orkes-provision" / "sandbox") as sandbox:
        admin = OrkesClient(Credentials(server=sandbox.url, key_id=sandbox.admin_key_id,
                                        secret=sandbox.admin_secret))
        admin.register_task_defs([TaskDef(name="greetings")])
        yield World(home, sandbox, admin)
        admin.close()


@pytest.fixture
def cwd(world: World) -> Path:
    path = world.home / f"work-{uuid.uuid4().hex[:6]}"
    path.mkdir()
    return path


def sh(world: World, command: str, cwd: Path, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], env={**world.fresh, **(extra or {})}, cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


def provision(world: World, cwd: Path, *args: str, extra: dict[str, str] | None = None,
              profile: bool = True) -> subprocess.CompletedProcess[str]:
    """A set-up step (not a printed one): the same command a shell would run, with the same environment."""
    words = [*(["--profile", "sandbox"] if profile else []), *args]
    return run_provision(words, env={**world.fresh, **(extra or {})}, cwd=cwd, timeout=120)


def commands_in(result: subprocess.CompletedProcess[str]) -> list[str]:
    """Every command printed as a next step or fix (error lines describe, they do not instruct)."""
    found = []
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith("error: "):
            continue
        match = _COMMAND.search(line)
        if match:
            found.append(match.group(1).strip())
    return found


def run_printed(world: World, scenario: str, printed_by: str, command: str, cwd: Path) -> hint_log.HintRun:
    """Run ``command`` as printed (``<worker command>`` aside) in a fresh shell; log it; it must exit 0."""
    runnable = command.replace("<worker command>", shlex.join([sys.executable, "-c", PROBE, str(cwd / "probe.json")]))
    assert not _PLACEHOLDER.search(runnable.split(" -c ")[0]), f"not runnable as printed: {command}"
    result = sh(world, runnable, cwd)
    entry = hint_log.HintRun(scenario, printed_by, command, result.returncode)
    hint_log.RUN.append(entry)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return entry


def app_of(world: World, name: str) -> str:
    (app,) = [a.id for a in world.admin.list_applications() if a.name == name]
    return app


def statuses(world: World, name: str) -> dict[str, str]:
    return {k.id: k.status for k in world.admin.list_keys(app_of(world, name))}


def authenticates(world: World, env_file: Path) -> bool:
    values = parse_env(env_file.read_text())
    return bool(world.admin.exchange_token(values["CONDUCTOR_AUTH_KEY"], SecretStr(values["CONDUCTOR_AUTH_SECRET"])))


def doctor_passes(world: World, cwd: Path, name: str, store: str) -> bool:
    return provision(world, cwd, "doctor", name, "--task", "greetings", "--store", store).returncode == 0


# ----- app ------------------------------------------------------------------------------------------

def test_the_run_step_of_app_works_in_a_fresh_shell_without_conductor_variables(world: World, cwd: Path) -> None:
    admin_env = dict(world.sandbox.admin_env)
    made = provision(world, cwd, "app", "hint-run", "--worker", "--grant", "greetings", "--store",
                     "env-file:w.env", extra=admin_env, profile=False)
    assert made.returncode == 0, made.stderr
    (command,) = commands_in(made)
    assert command.startswith("provision run --app hint-run --store ")

    entry = run_printed(world, "app with CONDUCTOR_* set", "app: Next", command, cwd)

    given = json.loads((cwd / "probe.json").read_text())
    stored = parse_env((cwd / "w.env").read_text())
    # Through the credential agent: a local key on a loopback URL, which authenticates there.
    assert given["CONDUCTOR_SERVER_URL"] != world.sandbox.url
    assert given["CONDUCTOR_AUTH_KEY"] != stored["CONDUCTOR_AUTH_KEY"]
    assert given["tokenStatus"] == 200
    assert world.admin.exchange_token(stored["CONDUCTOR_AUTH_KEY"], SecretStr(stored["CONDUCTOR_AUTH_SECRET"]))
    entry.effect = "worker started behind the agent serving the stored key; its local key authenticates"


def test_the_worker_role_step_of_a_non_worker_app(world: World, cwd: Path) -> None:
    made = provision(world, cwd, "app", "hint meta", "--role", "METADATA_API", "--store", "env-file:m.env")
    assert made.returncode == 0, made.stderr
    (command,) = commands_in(made)

    entry = run_printed(world, "app without --worker", "app: Next", command, cwd)

    assert "WORKER" in world.admin.get_app_user(app_of(world, "hint meta")).role_names
    entry.effect = "the application has the WORKER role"


def test_the_retire_steps_for_older_active_keys(world: World, cwd: Path) -> None:
    assert provision(world, cwd, "app", "hint old", "--worker", "--store", "env-file:o.env").returncode == 0
    old = parse_env((cwd / "o.env").read_text())["CONDUCTOR_AUTH_KEY"]
    again = provision(world, cwd, "app", "hint old", "--worker", "--store", "env-file:o.env", "--new-key")
    assert again.returncode == 0, again.stderr
    retire = [c for c in commands_in(again) if " keys deactivate " in c]
    assert retire == [f"provision --profile sandbox keys deactivate 'hint old' {old} --yes"]

    entry = run_printed(world, "app --new-key", "app: Note", retire[0], cwd)

    assert statuses(world, "hint old")[old] == "INACTIVE"
    assert authenticates(world, cwd / "o.env")
    entry.effect = "the older key is INACTIVE, the stored one works"


# ----- doctor and the preflight ----------------------------------------------------------------------

def break_and_fix(world: World, cwd: Path, name: str, breaker: str, printed_by: str) -> None:
    store = f"env-file:{cwd}/d.env"
    assert provision(world, cwd, "app", name, "--worker", "--grant", "greetings", "--store", store).returncode == 0
    app_id = app_of(world, name)
    key_id = parse_env((cwd / "d.env").read_text())["CONDUCTOR_AUTH_KEY"]
    if breaker == "grant revoked":
        world.admin.revoke(app_subject(app_id), Target(type="TASK_DEF", id="greetings"), ["EXECUTE"])
    elif breaker == "role removed":
        world.admin.remove_role(app_id, "WORKER")
    elif breaker == "key deactivated":
        world.admin.toggle_key(app_id, key_id)
    elif breaker == "key deleted":
        world.admin.delete_key(app_id, key_id)
    elif breaker == "task definition deleted":
        world.admin.delete_task_def("greetings")
    if printed_by == "doctor":
        broken = provision(world, cwd, "doctor", name, "--task", "greetings", "--store", store)
    else:
        broken = provision(world, cwd, "run", "--app", name, "--store", store, "--task", "greetings", "--", "true")
    assert broken.returncode == 11, broken.stdout + broken.stderr
    printed = list(dict.fromkeys(commands_in(broken)))
    assert printed, broken.stdout + broken.stderr

    entries = [run_printed(world, f"{printed_by}: {breaker}", printed_by, command, cwd) for command in printed]

    assert doctor_passes(world, cwd, name, store)
    if printed_by == "preflight":
        assert provision(world, cwd, "run", "--app", name, "--store", store, "--task", "greetings", "--",
                         "true").returncode == 0
    for entry in entries:
        entry.effect = f"{printed_by} passes again"


BREAKERS = ["grant revoked", "role removed", "key deactivated", "key deleted", "task definition deleted"]


@pytest.mark.parametrize("breaker", BREAKERS)
def test_every_fix_doctor_prints_repairs_what_it_names(world: World, cwd: Path, breaker: str) -> None:
    break_and_fix(world, cwd, f"hint doc {breaker.split()[0]} {uuid.uuid4().hex[:4]}", breaker, "doctor")


@pytest.mark.parametrize("breaker", BREAKERS)
def test_every_fix_the_preflight_prints_repairs_what_it_names(world: World, cwd: Path, breaker: str) -> None:
    break_and_fix(world, cwd, f"hint pre {breaker.split()[0]} {uuid.uuid4().hex[:4]}", breaker, "preflight")


def test_the_create_step_of_run_without_a_key(world: World, cwd: Path) -> None:
    refused = provision(world, cwd, "run", "--app", "hint new", "--store", "env-file:n.env", "--", "true")
    assert refused.returncode == 3, refused.stderr
    (command,) = commands_in(refused)

    entry = run_printed(world, "run without a key", "run: hint", command, cwd)

    assert provision(world, cwd, "run", "--app", "hint new", "--store", "env-file:n.env", "--",
                     "true").returncode == 0
    entry.effect = "the key exists and run starts"


# ----- rotation -------------------------------------------------------------------------------------

def test_the_retire_undelivered_step_of_a_refused_rotation(world: World, cwd: Path) -> None:
    assert provision(world, cwd, "app", "hint rot", "--worker", "--store", "env-file:r.env").returncode == 0
    printed = provision(world, cwd, "keys", "create", "hint rot", "--store", "json")
    assert printed.returncode == 0, printed.stderr
    refused = provision(world, cwd, "keys", "rotate", "hint rot", "--switch-wait", "0", "--grace", "0s")
    assert refused.returncode == 7, refused.stderr
    (command,) = commands_in(refused)
    assert command.endswith("--retire-undelivered")

    entry = run_printed(world, "rotation of a key delivered as json", "keys rotate: hint", command, cwd)

    active = [k for k, s in statuses(world, "hint rot").items() if s == "ACTIVE"]
    assert active == [parse_env((cwd / "r.env").read_text())["CONDUCTOR_AUTH_KEY"]]
    assert authenticates(world, cwd / "r.env")
    entry.effect = "rotated: one ACTIVE key, in the env file"


def test_the_step_printed_for_an_application_a_fleet_rotation_could_not_rotate(world: World, cwd: Path) -> None:
    for name in ("hint fleet a", "hint fleet b"):
        made = provision(world, cwd, "app", name, "--worker", "--store", f"env-file:{name.split()[-1]}.env")
        assert made.returncode == 0, made.stderr
    assert provision(world, cwd, "keys", "create", "hint fleet b", "--store", "json").returncode == 0
    refused = provision(world, cwd, "keys", "rotate", "--all", "hint fleet a", "hint fleet b", "--switch-wait", "0s",
                        "--grace", "0s")
    assert refused.returncode == 7, refused.stdout + refused.stderr
    assert refused.stdout.startswith("hint fleet a: rotated (")
    (command,) = commands_in(refused)
    assert command == "provision --profile sandbox keys rotate 'hint fleet b' --retire-undelivered"

    entry = run_printed(world, "fleet rotation: a key delivered as json", "keys rotate --all: hint", command, cwd)

    active = [k for k, s in statuses(world, "hint fleet b").items() if s == "ACTIVE"]
    assert active == [parse_env((cwd / "b.env").read_text())["CONDUCTOR_AUTH_KEY"]]
    entry.effect = "rotated: one ACTIVE key, in the env file"


def test_the_rotate_step_of_doctor_and_drift_for_an_old_key(world: World, cwd: Path) -> None:
    (cwd / "env.toml").write_text('name = "hints-age"\n\n[[applications]]\nname = "hint aged"\n'
                                  'store = "env-file:aged.env"\nkeyMaxAge = "1ms"\n[[applications.grants]]\n'
                                  'tasks = ["greetings"]\n')
    assert provision(world, cwd, "apply", "-f", "env.toml", "--yes", "--switch-wait", "0s").returncode == 0
    for printed_by, args in (("doctor: warn", ("doctor", "hint aged", "--task", "greetings", "-f", "env.toml")),
                             ("drift", ("drift", "-f", "env.toml"))):
        before = parse_env((cwd / "aged.env").read_text())["CONDUCTOR_AUTH_KEY"]
        reported = provision(world, cwd, *args)
        assert reported.returncode == (0 if printed_by.startswith("doctor") else 2), reported.stdout
        rotate = [c for c in commands_in(reported) if " keys rotate " in c]
        assert len(rotate) == 1, reported.stdout

        entry = run_printed(world, "key older than keyMaxAge", printed_by, rotate[0], cwd)

        after = parse_env((cwd / "aged.env").read_text())["CONDUCTOR_AUTH_KEY"]
        assert after != before and statuses(world, "hint aged")[after] == "ACTIVE"
        assert authenticates(world, cwd / "aged.env")
        entry.effect = "rotated: the env file holds a new ACTIVE key, which authenticates"


# ----- apply ----------------------------------------------------------------------------------------

def test_the_run_step_of_apply(world: World, cwd: Path) -> None:
    (cwd / "env.toml").write_text('name = "hints"\n\n[[applications]]\nname = "hint apply"\nroles = ["WORKER"]\n'
                                  'store = "env-file:secrets/a.env"\n[[applications.grants]]\ntasks = ["greetings"]\n')
    applied = provision(world, cwd, "apply", "-f", "env.toml", "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    (command,) = commands_in(applied)

    entry = run_printed(world, "apply", "apply: Next", command, cwd)

    given = json.loads((cwd / "probe.json").read_text())
    assert given["CONDUCTOR_AUTH_KEY"] != parse_env((cwd / "secrets" / "a.env").read_text())["CONDUCTOR_AUTH_KEY"]
    assert given["tokenStatus"] == 200, "the agent serving the applied key accepts the worker's local key"
    entry.effect = "worker started behind the agent serving the applied key"


# ----- a 403 the server gives a worker or a starter behind the agent ------------------------------------

# Starts workflow argv[1] (or polls task argv[2]) three times as the application, through the URL and
# key 'run' gives it; prints what the server answered. Exit 0 when the server accepted.
CALLER = """import json, os, sys, urllib.request
url = os.environ["CONDUCTOR_SERVER_URL"]
body = json.dumps({"keyId": os.environ["CONDUCTOR_AUTH_KEY"], "keySecret": os.environ["CONDUCTOR_AUTH_SECRET"]})
request = urllib.request.Request(url + "/token", body.encode(), {"Content-Type": "application/json"})
token = json.load(urllib.request.urlopen(request, timeout=30))["token"]
kind, name = sys.argv[1], sys.argv[2]
for _ in range(3):
    if kind == "start":
        call = urllib.request.Request(url + "/workflow/" + name, b"{}", {"Content-Type": "application/json",
                                                                         "X-Authorization": token})
    else:
        call = urllib.request.Request(url + "/tasks/poll/batch/" + name + "?count=1&timeout=100",
                                      headers={"X-Authorization": token})
    try:
        print("accepted", urllib.request.urlopen(call, timeout=30).status)
        sys.exit(0)
    except urllib.error.HTTPError as err:
        print("refused", err.code, err.read().decode(), file=sys.stderr)
sys.exit(1)
"""


def call_as(world: World, cwd: Path, app: str, store: str, kind: str, name: str,
            *flags: str) -> subprocess.CompletedProcess[str]:
    return provision(world, cwd, "run", "--app", app, "--store", store, *flags, "--", sys.executable, "-c", CALLER,
                     kind, name)


def test_a_starter_refused_a_workflow_someone_else_registered_is_told_the_grant_that_fixes_it(
        world: World, cwd: Path) -> None:
    world.admin.register_workflow_def({"name": "hint_flow", "version": 1, "ownerEmail": "ops@example.com",
                                       "timeoutSeconds": 60, "tasks": [
                                           {"name": "greetings", "taskReferenceName": "g", "type": "SIMPLE"}]})
    store = f"env-file:{cwd}/s.env"
    assert provision(world, cwd, "app", "hint starter", "--store", store).returncode == 0
    refused = call_as(world, cwd, "hint starter", store, "start", "hint_flow", "--starter")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.count("refused 403") == 3
    told = [line for line in refused.stderr.splitlines() if line.startswith("provision: agent: 403 ")]
    # One line per refused (definition, access), however often the server refuses it.
    assert told == ["provision: agent: 403 from the server: hint starter lacks EXECUTE on workflow hint_flow; grant "
                    "it: provision --profile sandbox grant 'hint starter' --workflow hint_flow"]
    doctor = provision(world, cwd, "doctor", "hint starter", "--workflow", "hint_flow", "--store", store)
    explained = provision(world, cwd, "explain", "hint starter", "--workflow", "hint_flow")
    assert (doctor.returncode, explained.returncode) == (11, 11), doctor.stdout + explained.stdout
    (command,) = set(commands_in(refused)) | set(commands_in(doctor)) | set(commands_in(explained))

    entry = run_printed(world, "a starter refused a workflow it did not register", "run: agent", command, cwd)

    started = call_as(world, cwd, "hint starter", store, "start", "hint_flow", "--starter")
    assert started.returncode == 0 and "accepted 200" in started.stdout, started.stderr
    assert "403" not in started.stderr
    assert provision(world, cwd, "doctor", "hint starter", "--workflow", "hint_flow", "--store", store).returncode == 0
    entry.effect = "the starter starts the workflow; doctor and explain pass"


def test_a_worker_refused_a_task_behind_the_agent_is_told_the_grant_that_fixes_it(world: World, cwd: Path) -> None:
    store = f"env-file:{cwd}/t.env"
    assert provision(world, cwd, "app", "hint poller", "--worker", "--store", store).returncode == 0
    refused = call_as(world, cwd, "hint poller", store, "poll", "greetings", "--no-preflight")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    told = [line for line in refused.stderr.splitlines() if line.startswith("provision: agent: 403 ")]
    assert told == ["provision: agent: 403 from the server: hint poller lacks EXECUTE on task greetings; grant it: "
                    "provision --profile sandbox grant 'hint poller' greetings"]
    (command,) = commands_in(refused)

    entry = run_printed(world, "a worker refused a task (run --no-preflight)", "run: agent", command, cwd)

    polled = call_as(world, cwd, "hint poller", store, "poll", "greetings")
    assert polled.returncode == 0 and "accepted 200" in polled.stdout, polled.stderr
    entry.effect = "the worker polls the task"
