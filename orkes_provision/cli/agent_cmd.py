"""``provision agent``: the local credential agent in the foreground (for systemd units and sidecars)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from orkes_provision.cli.common import APP_NAME, STORE_KINDS, command_options, emit, in_command, opts

if TYPE_CHECKING:
    from orkes_provision.agent.instances import LocalCredential

LOCAL_KEY_VAR = "ORKES_AGENT_LOCAL_KEY"
LOCAL_SECRET_VAR = "ORKES_AGENT_LOCAL_SECRET"


@click.command("agent")
@click.option("--app", "app_name", metavar="APP", type=APP_NAME,
              help="The application whose key the agent holds (default: the project file's application).")
@click.option("--store", "store_spec", metavar="SPEC",
              help="Where the key is (default: the project file's, else where this machine delivered it): "
                   f"{STORE_KINDS}.")
@click.option("--listen", default="127.0.0.1:0", show_default=True, metavar="127.0.0.1:PORT",
              help="Loopback address and port to listen on (port 0: any free port).")
@click.option("--env-file", "env_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Where to write the workers' variables: the agent's URL and a local key that only this agent "
                   "accepts (default: agent-APP.env in the data directory).")
@command_options()
def agent(app_name: str | None, store_spec: str | None, listen: str, env_file: Path | None) -> int:
    """Hold the application's key and serve its workers on loopback until stopped.

    Workers point CONDUCTOR_SERVER_URL at the agent and use the local key written to FILE
    (0600): the agent exchanges the real key for tokens, renews them, follows the key in its
    store (a rotation needs no restart) and hands back the tasks its workers held when it stops.
    GET /health and GET /metrics (Prometheus text) on the same port describe it.

    \b
    Examples:
      provision agent --app greetings-worker --listen 127.0.0.1:8765 --env-file /run/greetings/worker.env
      set -a; . /run/greetings/worker.env; set +a; python3 main.py
    """
    from orkes_provision.agent.agent import Agent
    from orkes_provision.cli.context import key_home
    from orkes_provision.cli.run_cmd import agent_event, apply_project_profile
    from orkes_provision.credentials.delivery import choose_app_name
    from orkes_provision.fileio import write_private_file
    from orkes_provision.paths import data_dir
    from orkes_provision.workers.project import load_project

    host, port = _listen(listen)
    project = load_project()
    apply_project_profile(project)
    defaults = project.defaults() if project is not None else None
    app = choose_app_name(app_name, project=defaults, tasks=()).value
    home = key_home(app, store_spec, project, [])
    target = env_file or data_dir() / f"agent-{app}.env"

    runner = Agent(home.key, app=app, key_watch=home.watch, host=host, port=port, on_event=in_command(agent_event),
                   insecure_http=opts().insecure_http, hints=home.hints)

    given = local_key_from_environment()

    def ready(started: Agent) -> None:
        env = started.environment(started.register("standalone", given))
        if given is None or env_file is not None:  # a pod's workers have the fixed local key already
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_private_file(target, "".join(f"{k}={v}\n" for k, v in env.items()).encode())
        emit({"url": started.url, "app": app, "keyId": started.key_id, "envFile": str(target), "pid": os.getpid()},
             lambda: f"provision: agent for {app} (key {started.key_id}) on {started.url}; workers: the variables "
                     f"in {target}")

    return runner.serve(in_command(ready))


def local_key_from_environment() -> LocalCredential | None:
    """The workers' local key when it is fixed beforehand: ORKES_AGENT_LOCAL_KEY and ORKES_AGENT_LOCAL_SECRET
    (set by 'deploy kubernetes' for the agent's sidecar and its worker container alike)."""
    from pydantic import SecretStr

    from orkes_provision.agent.instances import LocalCredential
    from orkes_provision.errors import UsageError

    key_id = os.environ.get(LOCAL_KEY_VAR, "").strip()
    secret = os.environ.get(LOCAL_SECRET_VAR, "").strip()
    if not key_id and not secret:
        return None
    if not key_id or len(secret) < 16:
        raise UsageError(f"{LOCAL_KEY_VAR} and {LOCAL_SECRET_VAR} go together, the secret at least 16 characters",
                         "set both, or neither (the agent then makes a local key of its own)")
    return LocalCredential(key_id, SecretStr(secret))


def _listen(value: str) -> tuple[str, int]:
    from orkes_provision.errors import UsageError

    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--listen wants HOST:PORT, not {value!r}", "pass --listen 127.0.0.1:8765")
    return host.strip("[]"), int(port)
