"""One run of every command ``provision --help`` lists, in an order where each finds what it needs.

``PLAN`` runs once per mode: ``human`` (the text a person reads) and ``json`` (``--json``), each
with its own application, files and state, against one sandbox. The tests look at what the runs
printed; ``test_every_command_has_a_scenario`` fails when a command is added without a run here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import PROVISION, run_provision, start
from tests.conventions.runner import Result, run_cli

TASK = "conv-task"


@dataclass
class Context:
    mode: str  # human | json
    root: Path
    sandbox: SandboxProcess
    values: dict[str, str] = field(default_factory=dict)

    @property
    def app(self) -> str:
        return f"conv-{self.mode}"

    def env(self, *, server: bool = True) -> dict[str, str]:
        env = {"HOME": str(self.root / "home"), "XDG_CONFIG_HOME": str(self.root / "config"),
               "XDG_STATE_HOME": str(self.root / "state"), "XDG_DATA_HOME": str(self.root / "data"),
               "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "LANG": "C.UTF-8"}
        if server:
            env.update(self.sandbox.admin_env)
        return env

    def admin(self) -> OrkesClient:
        return OrkesClient(Credentials(server=self.sandbox.url, key_id=self.sandbox.admin_key_id,
                                       secret=self.sandbox.admin_secret))

    def fill(self, template: str) -> str:
        return template.format(app=self.app, root=self.root, task=TASK, server=self.sandbox.url,
                               admin_key=self.sandbox.admin_key_id, python=sys.executable,
                               admin_secret=self.sandbox.admin_secret.get_secret_value(), **self.values)


@dataclass(frozen=True)
class Step:
    """``args`` are templates (``Context.fill``); ``says`` is text the human run prints on stdout."""

    command: str
    args: tuple[str, ...]
    says: str = ""
    expect: int = 0
    json: bool = True  # prints a JSON result under --json
    takes_json: bool = True  # has --json at all
    mode: str = "cli"  # cli (in this process) | subprocess | sandbox | worker
    stdin: str = ""
    before: Callable[[Context], None] | None = None

    @property
    def section(self) -> str:
        """The section of docs/json.md its --json result is checked against (a failure after a report,
        like doctor's, still prints the report)."""
        return self.command if self.expect == 0 or self.says else "Errors"


def new_key(ctx: Context) -> None:
    with ctx.admin() as admin:
        app = next(a for a in admin.list_applications() if a.name == ctx.app)
        ctx.values["key"] = admin.create_key(app.id).id


def app_to_delete(ctx: Context) -> None:
    with ctx.admin() as admin:
        admin.create_application(f"{ctx.app}-gone")


# deploy refuses a key for the loopback sandbox (no pod could reach it): one for a reachable address.
REACHABLE = "https://conductor.example.com/api"


def seed_reachable_store(ctx: Context) -> None:
    path = ctx.root / "deploy.env"
    path.write_text(f"CONDUCTOR_SERVER_URL={REACHABLE}\nCONDUCTOR_AUTH_KEY=deploy-key-id\n"
                    "CONDUCTOR_AUTH_SECRET=deploy-secret\n")
    path.chmod(0o600)


def write_environment(ctx: Context) -> None:
    (ctx.root / "env.toml").write_text(
        f'name = "{ctx.app}"\n[[tasks]]\nname = "{ctx.app}-envtask"\n[[applications]]\nname = "{ctx.app}-env"\n'
        f'store = "env-file:env-app.env"\n[[applications.grants]]\ntasks = ["{ctx.app}-envtask"]\n')


def write_worker_project(ctx: Context) -> None:
    project = ctx.root / "wproj"
    project.mkdir(exist_ok=True)
    command = json.dumps([sys.executable, "-c", "import time; print('worker', 'up', flush=True); time.sleep(60)"])
    (project / "orkes-provision.toml").write_text(
        f'[application]\nname = "{ctx.app}"\ngrants = ["{TASK}"]\nstore = "env-file:{ctx.root / "w.env"}"\n\n'
        f'[[workers]]\nname = "sleeper"\nruntime = "python"\ncommand = {command}\nrestart = "never"\n')


W = "env-file:{root}/w.env"
PLAN: tuple[Step, ...] = (
    Step("init", ("init", "--app", "{app}", "{root}/proj"), says="Created a python worker project"),
    Step("app", ("app", "{app}", "--worker", "--grant", TASK, "--register-tasks", "--store", W), says="Application:"),
    Step("app", ("app", "{app}-printed", "--role", "METADATA_API", "--store", "json"), says='"secret": '),
    Step("apps list", ("apps", "list"), says="{app}"),
    Step("apps show", ("apps", "show", "{app}"), says="Application: {app}"),
    Step("apps show", ("apps", "show", "{app}-none"), expect=6),
    Step("keys list", ("keys", "list", "{app}"), says="ACTIVE"),
    Step("keys create", ("keys", "create", "{app}", "--store", "env-file:{root}/w2.env"), says="Created key"),
    Step("keys deactivate", ("keys", "deactivate", "{app}", "{key}", "--yes"), says="is INACTIVE", before=new_key),
    Step("keys activate", ("keys", "activate", "{app}", "{key}"), says="is ACTIVE"),
    Step("keys delete", ("keys", "delete", "{app}", "{key}", "--yes"), says="Deleted key {key}"),
    Step("keys rotate", ("keys", "rotate", "{app}", "--grace", "0s", "--switch-wait", "0s", "--store", W,
                         "--store", "env-file:{root}/w2.env"), says="Rotated the key"),
    Step("keys rotate", ("keys", "rotate", "{app}-none", "--switch-wait", "0s"), expect=6),
    Step("keys rotate", ("keys", "rotate", "--all", "{app}", "--older-than", "0s", "--grace", "0s", "--switch-wait",
                         "0s"), says="{app}: rotated ("),
    Step("keys prune", ("keys", "prune", "{app}", "--grace", "15m"), says="Pruned the keys"),
    Step("grant", ("grant", "{app}", TASK, "--access", "READ"), says="Granted READ on TASK_DEF"),
    Step("revoke", ("revoke", "{app}", TASK, "--access", "READ", "--yes"), says="Revoked READ on TASK_DEF"),
    Step("doctor", ("doctor", "{app}", "--task", TASK, "--store", W), says="All checks passed"),
    Step("doctor", ("doctor", "{app}", "--task", "conv-missing", "--store", W), says="problem(s) found", expect=11),
    Step("explain", ("explain", "{app}", "--task", TASK), says="All held: "),
    Step("explain", ("explain", "{app}", "--workflow", "conv-missing"), says="problem(s) found", expect=11),
    Step("plan", ("plan", "-f", "{root}/env.toml"), says="Plan: ", before=write_environment),
    Step("apply", ("apply", "-f", "{root}/env.toml", "--yes"), says="Plan: "),
    Step("drift", ("drift", "-f", "{root}/env.toml"), says="No drift: the server matches"),
    Step("lint", ("lint", "-f", "{root}/env.toml"), says="No findings:"),
    Step("export", ("export", "-o", "{root}/exported/env.toml", "--application", "{app}-env"),
         says="Exported environment"),
    Step("worker list", ("worker", "list", "--project", "{root}/proj/orkes-provision.toml"), says="greetings"),
    Step("deploy kubernetes", ("deploy", "kubernetes", "greetings", "--server", REACHABLE, "--image",
                               "example.org/greetings:1", "--project", "{root}/proj/orkes-provision.toml", "--store",
                               "env-file:{root}/deploy.env"), says='kind: "Deployment"', before=seed_reachable_store),
    Step("token", ("token", "{app}", "--ttl", "5m", "--store", W), says="eyJ"),
    Step("audit", ("audit", "--since", "1h"), says="create_app"),
    Step("audit verify", ("audit", "verify"), says="chain intact"),
    Step("probe", ("probe",), says="duplicate-application-names: "),
    Step("login", ("login", "--profile", "conv", "--server", "{server}", "--key-id", "{admin_key}"),
         stdin="{admin_secret}\n", says="Saved profile 'conv'"),
    Step("apps delete", ("apps", "delete", "{app}-gone", "--yes"), says="Deleted application {app}-gone",
         before=app_to_delete),
    Step("schema", ("schema",), says='"$schema"', json=False, takes_json=False),
    Step("completion", ("completion", "bash"), says="_PROVISION_COMPLETE", json=False, takes_json=False),
    Step("sandbox", ("sandbox", "--port", "0", "--data-dir", "{root}/own-sandbox"), says="sandbox ready at",
         mode="sandbox"),
    Step("sandbox", ("sandbox", "--detach", "--port", "0", "--data-dir", "{root}/bg-sandbox"),
         says="sandbox running in the background at", mode="subprocess"),
    Step("sandbox status", ("sandbox", "status", "--data-dir", "{root}/bg-sandbox"), says="running at",
         mode="subprocess"),
    Step("sandbox stop", ("sandbox", "stop", "--data-dir", "{root}/bg-sandbox"), says="stopped the sandbox at",
         mode="subprocess"),
    Step("sandbox status", ("sandbox", "status", "--data-dir", "{root}/bg-sandbox"), says="not running", expect=8,
         mode="subprocess"),
    Step("run", ("run", "--app", "{app}", "--store", W, "--task", TASK, "--", "{python}", "-c",
                 "print('worker', 'ran')"), says="worker ran", json=False, mode="subprocess"),
    Step("run", ("run", "--app", "{app}-nokey", "--store", "env-file:{root}/none.env", "--", "true"), expect=3,
         mode="subprocess"),
    Step("agent", ("agent", "--app", "{app}", "--store", W, "--listen", "0.0.0.0:0"), expect=2,
         mode="subprocess"),
    Step("worker run", ("worker", "run", "sleeper", "--project", "{root}/wproj/orkes-provision.toml"),
         says="worker up", json=False, mode="worker", before=write_worker_project),
)


@dataclass
class Run:
    step: Step
    result: Result

    @property
    def command(self) -> str:
        return self.step.command


def execute(ctx: Context, step: Step, extra: tuple[str, ...] = ()) -> Result:
    if step.before is not None:
        step.before(ctx)
    args = [ctx.fill(a) for a in step.args]
    extra = (*extra, "--json") if ctx.mode == "json" and step.takes_json else extra
    end = args.index("--") if "--" in args else len(args)
    args = [*args[:end], *extra, *args[end:]]
    if step.mode == "cli":
        return run_cli(args, env=ctx.env(), cwd=ctx.root, stdin=ctx.fill(step.stdin))
    if step.mode == "subprocess":
        proc = run_provision(args, env=ctx.env(), cwd=ctx.root)
        return Result(args, proc.returncode, proc.stdout, proc.stderr)
    return _until_ready_then_stop(ctx, args, ready=ctx.fill(step.says))


def _until_ready_then_stop(ctx: Context, args: list[str], ready: str) -> Result:
    """A long-running command: started in its own session, stopped with SIGTERM once it printed ``ready``
    (on stdout, or for the JSON sandbox once its document is complete)."""
    out_path, err_path = ctx.root / f"{args[0]}.out", ctx.root / f"{args[0]}.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = start([PROVISION, *args], env=ctx.env(), cwd=ctx.root, stdout=out, stderr=err,
                     stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None and not _ready(out_path.read_text(), ready):
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    return Result(args, proc.returncode, out_path.read_text(), err_path.read_text())


def _ready(out: str, ready: str) -> bool:
    if ready in out:
        return True
    with contextlib.suppress(ValueError):
        return isinstance(json.loads(out), dict)
    return False


def run_plan(mode: str, root: Path, sandbox: SandboxProcess) -> tuple[Context, list[Run]]:
    root.mkdir(parents=True, exist_ok=True)
    ctx = Context(mode, root, sandbox)
    return ctx, [Run(step, execute(ctx, step)) for step in PLAN]
