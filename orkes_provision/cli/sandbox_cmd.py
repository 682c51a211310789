"""``provision sandbox``: the local Orkes-compatible server, in the foreground or in the background.

``provision sandbox [OPTIONS]`` runs it (``--detach``: in the background); ``provision sandbox stop``
and ``provision sandbox status`` find it through its data dir (``sandbox.control``).
"""

from __future__ import annotations

import shlex
import signal
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from orkes_provision.cli.common import Duration, ProvisionGroup, command_options, emit, info
from orkes_provision.durations import format_duration
from orkes_provision.errors import ServerUnavailable, UsageError
from orkes_provision.sandbox import default_data_dir
from orkes_provision.sandbox.config import (
    ADMIN_ENV,
    DEFAULT_MAX_KEYS,
    DEFAULT_TOKEN_TTL_SECONDS,
    SERVER_LOG,
    SandboxConfig,
)

if TYPE_CHECKING:
    from orkes_provision.sandbox.control import SandboxStatus

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_RUN_OPTIONS = ("host", "port", "latency_ms", "token_ttl", "max_keys", "detach")
_DATA_DIR_HELP = ("State, admin.env and logs [default: $ORKES_PROVISION_SANDBOX_DIR, "
                  "else $XDG_DATA_HOME/orkes-provision/sandbox].")


def _data_dir_option() -> click.Option:
    return click.Option(["--data-dir"], type=click.Path(file_okay=False, path_type=Path), default=None,
                        help=_DATA_DIR_HELP)


@click.group("sandbox", cls=ProvisionGroup, invoke_without_command=True, subcommand_metavar="[stop | status]")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on; loopback unless you mean to expose it.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on; 0 picks a free one.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=_DATA_DIR_HELP)
@click.option("--latency-ms", type=click.IntRange(min=0), default=0, show_default=True,
              help="Delay every response by N ms (requests still overlap).")
@click.option("--token-ttl", type=Duration(minimum_seconds=1, unit_for_bare="s"),
              default=format_duration(timedelta(seconds=DEFAULT_TOKEN_TTL_SECONDS)), show_default=True,
              metavar="DURATION", help="Lifetime of the JWTs the server issues (90s, 1h, ...).")
@click.option("--max-keys", type=click.IntRange(min=1), default=DEFAULT_MAX_KEYS, show_default=True,
              help="Access keys one application may hold; one more is refused with 409.")
@click.option("-d", "--detach", is_flag=True,
              help="Run it in the background: return once it answers /health, printing its URL and data dir.")
@command_options(server=False, verbose=False)
@click.pass_context
def sandbox(ctx: click.Context, host: str, port: int, data_dir: Path | None, latency_ms: int, token_ttl: timedelta,
            max_keys: int, detach: bool) -> None:
    """Run the local Orkes-compatible server; 'stop' and 'status' manage one in the background.

    It keeps its state in SQLite under the data dir and, on first start, creates an ADMIN
    application whose key it writes to DATA_DIR/admin.env (mode 0600), which '--profile sandbox'
    and the Conductor SDKs use as-is. In the foreground, stop it with Ctrl-C. One sandbox per data
    dir: a second one on a data dir in use is refused (exit 12).

    \b
    Examples:
      provision sandbox --port 8080 --data-dir ./sandbox-data
      provision sandbox --detach --data-dir ./sandbox-data     # returns once it answers
      provision sandbox status --data-dir ./sandbox-data --json
      provision sandbox stop --data-dir ./sandbox-data
      set -a; . ./sandbox-data/admin.env; set +a   # CONDUCTOR_* for an SDK worker
    """
    if ctx.invoked_subcommand is not None:
        given = [f"--{name.replace('_', '-')}" for name in _RUN_OPTIONS
                 if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE]
        if given:
            raise UsageError(f"{', '.join(given)} applies to starting a sandbox, not to "
                             f"'provision sandbox {ctx.invoked_subcommand}'",
                             f"drop it; 'provision sandbox {ctx.invoked_subcommand}' takes only --data-dir")
        return

    config = SandboxConfig(data_dir=_resolve(data_dir), host=host, port=port, latency_ms=latency_ms,
                           token_ttl_seconds=int(token_ttl.total_seconds()), max_keys=max_keys)
    if host not in _LOOPBACK:
        info(f"warning: listening on {host}: the sandbox has no TLS and is meant for loopback use")
    if detach:
        from orkes_provision.sandbox.control import start_detached

        started = start_detached(config)
        emit(started.to_dict(), lambda: _render_started(started))
        return

    from orkes_provision.sandbox.server import serve

    def ready(url: str) -> None:
        admin_env = config.data_dir / ADMIN_ENV
        emit({"url": url, "dataDir": str(config.data_dir), "adminEnv": str(admin_env)},
             f"sandbox ready at {url} (admin credentials in {admin_env})")

    if serve(config, on_ready=ready) == signal.SIGINT:
        raise click.exceptions.Exit(130)  # Ctrl-C: exit as every command does when interrupted


@sandbox.command("status")
@command_options(server=False, verbose=False)
@click.pass_context
def status(ctx: click.Context, data_dir: Path | None) -> None:
    """Show whether a sandbox runs on the data dir.

    Says at which URL and pid, and whether it answers /health. Exits 0 when it runs and answers,
    8 when none runs there or it does not answer.

    \b
    Examples:
      provision sandbox status
      provision sandbox status --data-dir ./sandbox-data --json
    """
    from orkes_provision.sandbox.control import sandbox_status

    found = sandbox_status(_resolve(data_dir, ctx))
    emit(found.to_dict(), lambda: _render_status(found))
    if not found.healthy:
        where = shlex.quote(str(found.data_dir))
        what = "does not answer" if found.running else "is not running"
        raise ServerUnavailable(f"the sandbox on the data dir {found.data_dir} {what}",
                                f"start one: provision sandbox --detach --data-dir {where}")


@sandbox.command("stop")
@command_options(server=False, verbose=False)
@click.pass_context
def stop(ctx: click.Context, data_dir: Path | None) -> None:
    """Stop the sandbox that runs on the data dir.

    Started with --detach or running in another terminal, it gets SIGTERM, and stop waits until
    it has exited (SIGKILL after 10 s): no process is left.
    Exits 0 also when no sandbox was running there.

    \b
    Examples:
      provision sandbox stop
      provision sandbox stop --data-dir ./sandbox-data --json
    """
    from orkes_provision.sandbox.control import stop_sandbox

    stopped = stop_sandbox(_resolve(data_dir, ctx))
    emit({"stopped": stopped.running, "pid": stopped.pid, "url": stopped.url, "dataDir": str(stopped.data_dir)},
         f"stopped the sandbox at {stopped.url} (pid {stopped.pid}, data dir {stopped.data_dir})" if stopped.running
         else f"no sandbox is running on the data dir {stopped.data_dir}")


for _command in (status, stop):
    _command.params.insert(0, _data_dir_option())


def _resolve(data_dir: Path | None, ctx: click.Context | None = None) -> Path:
    """The data dir: this command's --data-dir, else the one given before it, else the default."""
    if data_dir is None and ctx is not None and ctx.parent is not None:
        data_dir = ctx.parent.params.get("data_dir")
    return (data_dir or default_data_dir()).absolute()


def _render_started(started: SandboxStatus) -> str:
    data_dir = started.data_dir
    return "\n".join([
        f"sandbox running in the background at {started.url} (pid {started.pid})",
        f"data dir: {data_dir} (admin credentials in {data_dir / ADMIN_ENV}, log in {data_dir / SERVER_LOG})",
        f"stop it:  provision sandbox stop --data-dir {shlex.quote(str(data_dir))}",
    ])


def _render_status(found: SandboxStatus) -> str:
    if not found.running:
        return f"not running (data dir {found.data_dir})"
    if found.url is None:
        return f"starting (data dir {found.data_dir})"
    if not found.healthy:
        return f"running (pid {found.pid}) but not answering at {found.root_url}/health (data dir {found.data_dir})"
    return f"running at {found.url} (pid {found.pid}, data dir {found.data_dir})"
