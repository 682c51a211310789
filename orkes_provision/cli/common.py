"""What every command shares: the global options, output rendering and error reporting."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import click

from orkes_provision.errors import ProvisionError
from orkes_provision.progress import Wait

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


class StderrWaits:
    """Prints the library's wait notices (``progress.waiting``) on stderr, also under --json.

    A countdown (the same wait reported again with less time left) redraws one line on a
    terminal; elsewhere, as in a CI log, it is printed again only when its message changes or
    every ``every`` seconds, so a long wait is a few lines rather than one per second.
    """

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self._lock = threading.Lock()
        self._last: Wait | None = None
        self._printed_at = 0.0
        self._open = False  # a redrawn line is on the terminal without its newline

    def __call__(self, wait: Wait) -> None:
        tty = sys.stderr.isatty()
        with self._lock:
            last, now = self._last, time.monotonic()
            again = (wait.remaining is not None and last is not None and last.topic == wait.topic
                     and last.message == wait.message)
            if again and not tty and now - self._printed_at < self.every:
                return
            if self._open and not (again and tty):
                click.echo("", err=True)
            if tty and wait.remaining is not None:
                click.echo("\r\x1b[K" + wait.render(), err=True, nl=False)
                self._open = True
            else:
                click.echo(wait.render(), err=True)
                self._open = False
            self._last, self._printed_at = wait, now

    def end_line(self) -> None:
        """Finish a redrawn countdown line, so that what is printed next starts on its own line."""
        with self._lock:
            if self._open:
                click.echo("", err=True)
                self._open = False
            self._last = None


WAITS = StderrWaits()


def emit(data: Any, text: str | Callable[[], str] | None = None) -> None:
    """Print ``data`` as JSON under --json, else the human ``text``."""
    WAITS.end_line()
    if opts().json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
        return
    rendered = text() if callable(text) else text
    if rendered:
        click.echo(rendered)


def info(message: str) -> None:
    """A progress line for people: stderr, so that stdout stays parseable."""
    if not opts().json:
        WAITS.end_line()
        click.echo(message, err=True)


def report_error(err: ProvisionError, options: GlobalOptions) -> None:
    WAITS.end_line()
    if options.json:
        click.echo(json.dumps(err.to_dict(), sort_keys=True), err=True)
        return
    click.echo(f"error: {err.message}", err=True)
    click.echo(f"hint: {err.hint}", err=True)
