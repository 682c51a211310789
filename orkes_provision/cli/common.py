"""What every command shares: the global options, output rendering and error reporting."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import click

from orkes_provision.errors import ProvisionError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class GlobalOptions:
    """Options accepted by every command; a value given on a subcommand wins."""

    server: str | None = None
    profile: str | None = None
    json: bool = False
    verbose: int = 0
    insecure_http: bool = False

    _current: ClassVar[GlobalOptions | None] = None

    @classmethod
    def current(cls) -> GlobalOptions:
        if cls._current is None:
            cls._current = GlobalOptions()
        return cls._current


def _store(field: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        opts = GlobalOptions.current()
        if value not in (None, False, 0):
            setattr(opts, field, value)
            if field == "verbose":
                _configure_logging(int(value))
        return value

    return callback


def _configure_logging(verbosity: int) -> None:
    import logging  # only with -v: keeps it off the start-up path of every command

    level = logging.DEBUG if verbosity > 1 else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("orkes_provision")
    root.handlers[:] = [handler]
    root.setLevel(level)


def common_options(func: F) -> F:
    """Add --server, --profile, --json, -v and --insecure-http to a command."""
    options = [
        click.option("--server", metavar="URL", expose_value=False, is_eager=True,
                     callback=_store("server"),
                     help="Orkes server URL, with or without /api (env CONDUCTOR_SERVER_URL)."),
        click.option("--profile", metavar="NAME", expose_value=False, is_eager=True,
                     callback=_store("profile"),
                     help="Credentials profile from 'provision login'; 'sandbox' for the local sandbox."),
        click.option("--json", "json_", is_flag=True, expose_value=False, is_eager=True,
                     callback=_store("json"), help="Print machine-readable JSON."),
        click.option("-v", "--verbose", count=True, expose_value=False, is_eager=True,
                     callback=_store("verbose"), help="Log requests (never secrets); -vv for more."),
        click.option("--insecure-http", is_flag=True, expose_value=False, is_eager=True,
                     callback=_store("insecure_http"),
                     help="Allow plain http:// to a host other than loopback."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def opts() -> GlobalOptions:
    return GlobalOptions.current()


def emit(data: Any, text: str | Callable[[], str] | None = None) -> None:
    """Print ``data`` as JSON under --json, else the human ``text``."""
    if opts().json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
        return
    rendered = text() if callable(text) else text
    if rendered:
        click.echo(rendered)


def info(message: str) -> None:
    """A progress line for people: stderr, so that stdout stays parseable."""
    if not opts().json:
        click.echo(message, err=True)


def report_error(err: ProvisionError, options: GlobalOptions) -> None:
    if options.json:
        click.echo(json.dumps(err.to_dict(), sort_keys=True), err=True)
        return
    click.echo(f"error: {err.message}", err=True)
    click.echo(f"hint: {err.hint}", err=True)
