"""``provision sandbox``: run the local Orkes-compatible server in the foreground."""

from __future__ import annotations

import signal
from datetime import timedelta
from pathlib import Path

import click

from orkes_provision.cli.common import Duration, command_options, emit, info
from orkes_provision.durations import format_duration
from orkes_provision.sandbox import default_data_dir
from orkes_provision.sandbox.config import ADMIN_ENV, DEFAULT_TOKEN_TTL_SECONDS, SandboxConfig

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on; loopback unless you mean to expose it.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on; 0 picks a free one.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="State, admin.env and requests.log [default: $XDG_DATA_HOME/orkes-provision/sandbox].")
@click.option("--latency-ms", type=click.IntRange(min=0), default=0, show_default=True,
              help="Delay every response by N ms (requests still overlap).")
@click.option("--token-ttl", type=Duration(minimum_seconds=1),
              default=format_duration(timedelta(seconds=DEFAULT_TOKEN_TTL_SECONDS)), show_default=True,
              metavar="DURATION", help="Lifetime of the JWTs the server issues (90s, 1h, ...).")
@command_options(server=False, verbose=False)
def sandbox(host: str, port: int, data_dir: Path | None, latency_ms: int, token_ttl: timedelta) -> None:
    """Run the local Orkes-compatible server in the foreground.

    It keeps its state in SQLite under the data dir and, on first start, creates an ADMIN
    application whose key it writes to DATA_DIR/admin.env (mode 0600), which
    '--profile sandbox' and the Conductor SDKs use as-is. Stop it with Ctrl-C.

    \b
    Example:
      provision sandbox --port 8080 --data-dir ./sandbox-data
      set -a; . ./sandbox-data/admin.env; set +a   # CONDUCTOR_* for an SDK worker
    """
    from orkes_provision.sandbox.server import serve

    config = SandboxConfig(data_dir=(data_dir or default_data_dir()).absolute(), host=host, port=port,
                           latency_ms=latency_ms, token_ttl_seconds=int(token_ttl.total_seconds()))
    if host not in _LOOPBACK:
        info(f"warning: listening on {host}: the sandbox has no TLS and is meant for loopback use")

    def ready(url: str) -> None:
        admin_env = config.data_dir / ADMIN_ENV
        emit({"url": url, "dataDir": str(config.data_dir), "adminEnv": str(admin_env)},
             f"sandbox ready at {url} (admin credentials in {admin_env})")

    if serve(config, on_ready=ready) == signal.SIGINT:
        raise click.exceptions.Exit(130)  # Ctrl-C: exit as every command does when interrupted
