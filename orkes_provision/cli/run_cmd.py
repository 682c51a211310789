"""``provision run`` and ``provision worker run``: start a worker with its key injected.

The key comes from the credential store and reaches the worker only through its environment
(``CONDUCTOR_SERVER_URL``, ``CONDUCTOR_AUTH_KEY``, ``CONDUCTOR_AUTH_SECRET``), never its command
line. Before launching, a preflight runs the doctor's checks for the worker's tasks and refuses
with the fixing command, so that a missing grant is an error now rather than a worker that
backs off on 403 forever.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from orkes_provision.cli.common import (
    APP_NAME,
    STORE_KINDS,
    TASK_NAME,
    WORKER_NAME,
    ProvisionGroup,
    command_options,
    common_options,
    emit,
    in_command,
    info,
    opts,
    terminal_safe,
)
from orkes_provision.workers.project import RESTART_POLICIES, Project, RestartPolicy

if TYPE_CHECKING:
    from orkes_provision.agent.agent import Agent
    from orkes_provision.cli.context import KeyHome
    from orkes_provision.credentials.delivery import Hints
    from orkes_provision.credentials.stores import StoredKey
    from orkes_provision.workers.supervise import SupervisorEvent


@click.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--app", "app_name", metavar="APP", type=APP_NAME,
              help="The application whose key to use (default: the project file's application).")
@click.option("--store", "store_spec", metavar="SPEC",
              help="Where the key is (default: the project file's, else where this machine delivered it, else "
                   f"the keyring): {STORE_KINDS}.")
@click.option("--supervise", is_flag=True,
              help="Keep the worker running: own process group, restart on crash, follow key rotation.")
@click.option("--replicas", type=click.IntRange(1, 64), default=1, show_default=True,
              help="With --supervise: how many copies of CMD to run.")
@click.option("--restart", "restart_policy", type=click.Choice(RESTART_POLICIES), default="on-failure",
              show_default=True, help="With --supervise: when to restart CMD after it exits.")
@click.option("--task", "tasks", multiple=True, metavar="TASK", type=TASK_NAME,
              help="A task the worker polls, for the preflight (repeatable; default: the project's grants).")
@click.option("--no-preflight", is_flag=True, help="Start without checking the key, role and grants first.")
@click.option("--worker", "as_worker", is_flag=True,
              help="CMD polls tasks: the preflight checks the WORKER role and EXECUTE on the tasks (the default, "
                   "unless the project file's application has no worker role).")
@click.option("--starter", "as_starter", is_flag=True,
              help="CMD starts workflows: the preflight checks the key, and no WORKER role (with --worker: both; "
                   "the default when the project file's application has no worker role).")
@click.option("--no-agent", is_flag=True,
              help="Give CMD the application's real key instead of a local key served by a credential agent.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD...")
@common_options
def run(app_name: str | None, store_spec: str | None, supervise: bool, replicas: int, restart_policy: str,
        tasks: tuple[str, ...], no_preflight: bool, as_worker: bool, as_starter: bool, no_agent: bool,
        command: tuple[str, ...]) -> int:
    """Run CMD as the application, through a local credential agent.

    CMD gets CONDUCTOR_SERVER_URL (the agent, ending in /api), CONDUCTOR_AUTH_KEY and
    CONDUCTOR_AUTH_SECRET: a local key that only this agent accepts. The agent holds the real
    key from the credential store, follows it when it is rotated (CMD keeps running), and hands
    back the tasks CMD held when it stops. provision waits for CMD and exits with its status
    (127 when CMD does not exist). With --no-agent, CMD gets the real key, and without
    --supervise provision replaces itself with CMD.

    \b
    Examples:
      provision run -- python3 main.py
      provision run --app greetings-worker --supervise --replicas 2 -- node worker.js
      provision run --app greetings-starter --starter -- python3 start.py
    """
    if (replicas != 1 or restart_policy != "on-failure") and not supervise:
        from orkes_provision.errors import UsageError

        raise UsageError("--replicas and --restart need --supervise", "add --supervise, or drop them")
    from orkes_provision.cli.context import key_home
    from orkes_provision.credentials.delivery import choose_app_name
    from orkes_provision.workers.launch import command_does
    from orkes_provision.workers.project import load_project

    project = load_project()
    apply_project_profile(project)
    grants = tuple(tasks) or tuple(project.application.grants if project and project.application else ())
    defaults = project.defaults() if project is not None else None
    app = choose_app_name(app_name, project=defaults, tasks=grants).value
    home = key_home(app, store_spec, project, list(grants))
    own = project is not None and project.application is not None and project.application.name == app
    does = command_does(worker=as_worker, starter=as_starter,
                        project_roles=project.application.roles if own and project and project.application else None)
    if not no_preflight:
        _preflight(app, list(grants), home, does, ask_starter=not (as_worker or as_starter or own))
    return _launch(list(command), app, home.key, home.watch, runtime=None, extra={}, cwd=None, supervise=supervise,
                   replicas=replicas, restart_policy=cast(RestartPolicy, restart_policy), name=Path(command[0]).name,
                   tasks=list(grants), use_agent=not no_agent, hints=home.hints)


@click.group("worker", cls=ProvisionGroup)
@common_options
def worker() -> None:
    """Run the workers declared in orkes-provision.toml.

    \b
    Examples:
      provision worker list
      provision worker run greetings
    """


@worker.command("run")
@click.argument("name", type=WORKER_NAME)
@click.option("--replicas", type=click.IntRange(1, 64), default=None, help="How many copies (default: the file's).")
@click.option("--restart", "restart_policy", type=click.Choice(RESTART_POLICIES), default=None,
              help="When to restart after an exit (default: the file's, else on-failure).")
@click.option("--app", "app_name", metavar="APP", type=APP_NAME, help="Override the project file's application.")
@click.option("--store", "store_spec", metavar="SPEC",
              help=f"Override where the key is: {STORE_KINDS} (default: the file's, else where this machine "
                   "delivered it, else the keyring).")
@click.option("--no-preflight", is_flag=True, help="Start without checking the key, role and grants first.")
@click.option("--no-agent", is_flag=True,
              help="Give the worker the application's real key instead of a local key served by a credential agent.")
@click.option("--project", "project_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="The project file (default: orkes-provision.toml here or in a parent directory).")
@common_options
def worker_run(name: str, replicas: int | None, restart_policy: str | None, app_name: str | None,
               store_spec: str | None, no_preflight: bool, no_agent: bool, project_file: Path | None) -> int:
    """Run worker NAME of the project file, supervised, with the application's key injected.

    The command, directory, environment, replicas and restart policy come from the
    [[workers]] entry NAME; the preflight checks EXECUTE on the worker's tasks. The worker is
    restarted with back-off when it crashes (after 5 failures in a row within 2 minutes it is
    given up, and the exit status is the worker's), and restarted with the new key when the key in
    the store changes (the old process stops once the new one has polled). Ctrl-C or SIGTERM stops
    every process of the worker.

    \b
    Example:
      provision worker run greetings --replicas 2
    """
    from orkes_provision.cli.context import key_home
    from orkes_provision.errors import ConfigError
    from orkes_provision.workers.project import require_project

    project = require_project(project_file)
    spec_worker = project.worker(name)
    apply_project_profile(project)
    app = app_name or project.app_name
    if not app:
        raise ConfigError(f"{project.path}: no [application] name, so no key to run worker {name!r} with",
                          "add [application] with name = \"APP\", or pass --app APP")
    tasks = project.worker_tasks(spec_worker)
    cwd = project.worker_cwd(spec_worker)
    if not cwd.is_dir():
        raise ConfigError(f"{project.path}: worker {name!r}: cwd {cwd} is not a directory",
                          "fix 'cwd' in the project file")
    home = key_home(app, store_spec, project, tasks)
    if not no_preflight:
        _preflight(app, tasks, home)
    policy = cast(RestartPolicy, restart_policy or spec_worker.restart)
    return _launch(list(spec_worker.command), app, home.key, home.watch, runtime=spec_worker.runtime,
                   extra=spec_worker.env,
                   cwd=cwd, supervise=True, replicas=replicas or spec_worker.replicas, restart_policy=policy,
                   name=name, tasks=tasks, stop_grace=spec_worker.stop_grace_seconds, use_agent=not no_agent,
                   hints=home.hints)


@worker.command("list")
@click.option("--project", "project_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="The project file (default: orkes-provision.toml here or in a parent directory).")
@command_options(server=False, verbose=False)
def worker_list(project_file: Path | None) -> None:
    """List the workers of the project file: command, replicas and tasks.

    \b
    Examples:
      provision worker list
      provision worker list --project ../greetings/orkes-provision.toml --json
    """
    from orkes_provision.workers.project import require_project

    project = require_project(project_file)
    rows: list[dict[str, object]] = [
        {"name": w.name, "runtime": w.runtime, "command": w.command, "replicas": w.replicas, "restart": w.restart,
         "tasks": project.worker_tasks(w), "cwd": str(project.worker_cwd(w))}
        for w in project.workers]

    def text() -> str:
        if not rows:
            return f"{project.path}: no [[workers]]"
        return "\n".join(f"{w.name}  {w.runtime}  {shlex.join(w.command)}  x{w.replicas}  "
                         f"tasks: {', '.join(project.worker_tasks(w)) or '-'}" for w in project.workers)

    emit({"project": str(project.path), "app": project.app_name, "workers": rows}, text)


# ----- shared steps ------------------------------------------------------------------------------


def apply_project_profile(project: Project | None) -> None:
    # A project's profile chooses among the user's own credentials, each bound to its server; its
    # 'server' never becomes --server: it names the server of the project's application key only
    # (credentials.delivery.choose_key_server), so a planted file cannot redirect a credential.
    options = opts()
    if project is not None and project.profile and not options.profile:
        options.profile = project.profile


def _preflight(app: str, tasks: list[str], home: KeyHome, does: frozenset[str] = frozenset({"worker"}),
               ask_starter: bool = False) -> None:
    """The doctor's checks with the provisioning credentials; with none, what the key alone shows.

    ``does`` says what the command does (``workers.launch.command_does``): a starter needs no
    WORKER role and polls no task, so neither is checked, nor proposed as a fix; ``ask_starter``
    (nothing said what CMD does) makes a missing role's fix offer --starter first.
    The provisioning credentials are used only when they belong to the key's server: they are
    never sent to the server a project or env file names.
    """
    from dataclasses import replace

    from orkes_provision.access.doctor import diagnose
    from orkes_provision.cli.context import make_client, resolve_server_credentials
    from orkes_provision.errors import ConfigError, StoreError
    from orkes_provision.workers.launch import check_preflight

    try:
        credentials = resolve_server_credentials()
    except (ConfigError, StoreError) as err:
        # The settings error already starts "no credentials: "; say it once.
        _key_only_preflight(app, home, f"no provisioning credentials: {err.message.removeprefix('no credentials: ')}",
                            does, ask_starter)
        return
    if credentials.server != home.server:
        _key_only_preflight(app, home, f"the provisioning credentials are for {credentials.server}", does,
                            ask_starter)
        return
    worker = "worker" in does
    with make_client(credentials) as client:
        report = diagnose(client, app=app, tasks=tasks if worker else [], key=home.key, server=home.server,
                          hints=home.hints)
    if not worker:
        report.findings = [f for f in report.findings if f.check != "role"]
    elif ask_starter:
        # Taken for a worker by default: the role is what a worker needs, and CMD may be a starter.
        report.findings = [replace(f, fix=f"if CMD only starts workflows, add --starter; if it polls tasks, give "
                                          f"it the role: {f.fix}") if f.check == "role" and not f.ok and f.fix
                           else f for f in report.findings]
    check_preflight(report, app, home.hints)
    if not worker:
        info(f"preflight: ok ({app}: key {home.key.key_id} ACTIVE; a starter, so no worker role or task grants "
             "checked)")
        return
    what = f"EXECUTE on {', '.join(tasks)}" if tasks else "no tasks named, grants not checked"
    info(f"preflight: ok ({app}: key {home.key.key_id} ACTIVE, worker role, {what})")


def _key_only_preflight(app: str, home: KeyHome, reason: str, does: frozenset[str], ask_starter: bool) -> None:
    from orkes_provision.errors import ServerUnavailable

    try:
        _key_only_checks(app, home, reason, does, ask_starter)
    except ServerUnavailable as err:
        # The URL came with the stored key: a server that moved (a sandbox restarted on another port)
        # leaves it behind, and 'provision app' against the current server updates it.
        err.hint = (f"the key of {app} is stored for {home.server}; if the server moved, update the stored URL "
                    f"with credentials for the current server (it keeps the key): {home.hints.create_app()}")
        raise


def _key_only_checks(app: str, home: KeyHome, reason: str, does: frozenset[str], ask_starter: bool) -> None:
    # Without an admin key the roles are still visible to the key itself (userInfo); the grants
    # are not, so the preflight says what it could not check instead of refusing to start.
    from orkes_provision.access.doctor import WORKER_ROLES
    from orkes_provision.cli.context import request_timeout
    from orkes_provision.errors import AuthenticationError, VerificationFailed
    from orkes_provision.orkes.client import OrkesClient
    from orkes_provision.orkes.models import Credentials

    key = home.key
    credentials = Credentials(server=home.server, key_id=key.key_id.strip(), secret=key.secret)
    with OrkesClient(credentials, deadline=request_timeout(), insecure_http=opts().insecure_http) as client:
        try:
            client.exchange_token(credentials.key_id, credentials.secret)
        except AuthenticationError:
            raise VerificationFailed(f"preflight: the server rejects the stored key {key.key_id} of {app}",
                                     "store a new key (or pass --no-preflight to start anyway): "
                                     + home.hints.new_key()) from None
        user = client.user_info()
    roles = {str(r.get("name")) for r in user.get("roles") or [] if isinstance(r, dict)}
    if "worker" not in does:
        info(f"preflight: key {key.key_id} authenticates; a starter, so no worker role or task grants checked")
        return
    if not roles & WORKER_ROLES:
        raise VerificationFailed(f"preflight: {app} lacks the WORKER role (has: {', '.join(sorted(roles)) or 'none'})",
                                 "give it the role (or pass --no-preflight to start anyway): "
                                 + ("if CMD only starts workflows, add --starter; if it polls tasks, "
                                    if ask_starter else "")
                                 + home.hints.create_app("--worker", tasks=()))
    info(f"preflight: key {key.key_id} authenticates and has {', '.join(sorted(roles & WORKER_ROLES))}; "
         f"EXECUTE grants not checked ({reason})")


def _launch(command: list[str], app: str, key: StoredKey, watch: Callable[[], StoredKey | None], *, runtime: str | None,
            extra: dict[str, str], cwd: Path | None, supervise: bool, replicas: int, restart_policy: RestartPolicy,
            name: str, tasks: list[str], stop_grace: float | None = None, use_agent: bool = True,
            hints: Hints | None = None) -> int:
    from orkes_provision.workers.launch import require_program, worker_environment

    base = dict(os.environ)
    env = worker_environment(base, key, runtime, extra)
    require_program(command, env, cwd)
    agent = _start_agent(app, key, watch, hints) if use_agent else None
    try:
        return _run_workers(command, app, key, watch, base, env, agent, runtime=runtime, extra=extra, cwd=cwd,
                            supervise=supervise, replicas=replicas, restart_policy=restart_policy, name=name,
                            tasks=tasks, stop_grace=stop_grace)
    finally:
        if agent is not None:
            agent.close()


def _start_agent(app: str, key: StoredKey, watch: Callable[[], StoredKey | None], hints: Hints | None) -> Agent:
    from orkes_provision.agent.agent import Agent

    agent = Agent(key, app=app, key_watch=watch, on_event=in_command(agent_event), insecure_http=opts().insecure_http,
                  hints=hints)
    agent.start()
    agent_event(f"serving {app} (key {key.key_id}) on {agent.url}; workers get a local key (--no-agent: the "
                 "real one)")
    return agent


def agent_event(message: str) -> None:
    # Like the supervisor's lifecycle lines: stderr, as JSON lines under --json.
    if opts().json:
        # The shape of the supervisor's events (docs/json.md), so that one reader takes both.
        event: dict[str, object] = {"event": "agent", "worker": None, "replica": None, "pid": None,
                                    "message": message, "keyId": None, "exitCode": None, "workerId": None,
                                    "taskIds": []}
        click.echo(json.dumps(event, sort_keys=True), err=True)
    else:
        click.echo(terminal_safe(f"provision: agent: {message}"), err=True)


def _run_workers(command: list[str], app: str, key: StoredKey, watch: Callable[[], StoredKey | None],
                 base: dict[str, str], env: dict[str, str], agent: Agent | None, *, runtime: str | None,
                 extra: dict[str, str], cwd: Path | None, supervise: bool, replicas: int,
                 restart_policy: RestartPolicy, name: str, tasks: list[str], stop_grace: float | None) -> int:
    from orkes_provision.workers.launch import (
        agent_environment,
        describe_environment,
        exec_command,
        run_attached,
        worker_environment,
    )

    def local_env(label: str) -> dict[str, str]:
        assert agent is not None
        return agent_environment(base, agent.url, agent.register(label), runtime, extra)

    if agent is not None:
        env = local_env("run")
    if opts().verbose:
        for line in describe_environment(env):
            info(f"worker environment: {line}")
    shown = shlex.join(command)
    if not supervise:
        info(f"provision: starting {shown} as {app} (key {key.key_id}) on {env['CONDUCTOR_SERVER_URL']}")
        if agent is None:
            exec_command(command, env, cwd)
        code = run_attached(command, env, cwd)
        agent.release("run")
        return code
    from orkes_provision.workers.supervise import Supervisor, Timing

    def env_factory(current: StoredKey) -> dict[str, str]:
        return worker_environment(base, current, runtime, extra)

    info(f"provision: supervising {shown} as {app} (key {key.key_id}) on {env['CONDUCTOR_SERVER_URL']}, "
         f"{replicas} replica(s), restart {restart_policy}")
    from orkes_provision.workers.status import SupervisorStatus

    # Published for 'keys rotate': it keeps the old key ACTIVE while a worker still runs it. With an
    # agent the workers hold no key: the agent's own registration file says which key it uses.
    status = SupervisorStatus(key.server, app) if agent is None else None

    def on_event(event: SupervisorEvent) -> None:
        if status is not None:
            status.on_event(event)
        _print_event(event)

    from orkes_provision.workers.requeue import requeue_with_key

    def requeue(current: StoredKey, worker_ids: list[str]) -> list[str]:
        if agent is not None:  # it saw the polls: no search, the application's key hands them back
            return [task for label in worker_ids for task in agent.release(label)]
        # As the application itself: it may read and update the tasks it executes.
        return requeue_with_key(current, worker_ids, tasks).requeued

    from orkes_provision.workers.polls import has_polled

    def polled(current: StoredKey, worker_id: str) -> bool:
        # With the new key: a poll under the new process's id proves it authenticates.
        return has_polled(current, worker_id, tasks)

    supervisor: Supervisor[StoredKey] = Supervisor(
        command, env_factory, replicas=replicas, restart_policy=restart_policy,
        key_watch=watch if agent is None else None, initial_key=key, name=name, cwd=cwd,
        on_event=in_command(on_event), requeue=requeue, instance_env=local_env if agent is not None else None,
        timing=Timing(grace=stop_grace) if stop_grace is not None else None, has_polled=polled if tasks else None)
    try:
        return supervisor.run()
    finally:
        if status is not None:
            status.close()


def _print_event(event: SupervisorEvent) -> None:
    # Lifecycle lines go to stderr even under --json (as JSON lines), so stdout stays the worker's.
    if opts().json:
        click.echo(json.dumps(event.to_dict(), sort_keys=True), err=True)
    else:
        click.echo(terminal_safe(f"provision: {event.message}"), err=True)
