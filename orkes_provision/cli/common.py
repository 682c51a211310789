"""What every command shares: the global options, output rendering and error reporting.

Everything printed for people goes through ``emit``, ``info``, ``report_error`` or ``terminal_safe``:
names, ids and messages may come from a server or a file, so control characters are escaped there
(an OSC sequence could retitle the terminal or write the clipboard, a ``\r`` overwrite a line) and
JWT-shaped tokens are redacted. JSON output is escaped by ``json.dumps`` itself (``ensure_ascii``).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias, TypeVar

import click

from orkes_provision.errors import ProvisionError, redact_tokens

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class GlobalOptions:
    """Options accepted by every command; a value given on a subcommand wins."""

    server: str | None = None
    profile: str | None = None
    json: bool = False
    verbose: int = 0
    insecure_http: bool = False
    timeout: float | None = None

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
    """Add --server, --profile, --json, -v, --insecure-http and --timeout to a command."""
    return _add_common_options(func, timeout=True)


def common_options_without_timeout(func: F) -> F:
    """The global options but --timeout, for a command whose own --timeout means something else."""
    return _add_common_options(func, timeout=False)


def _add_common_options(func: F, *, timeout: bool) -> F:
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
                     help="Allow plain http:// to a host other than loopback (also through a proxy)."),
    ]
    if timeout:
        options.append(click.option(
            "--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS", expose_value=False,
            is_eager=True, callback=_store("timeout"),
            help="Give up on a request after this long, retries and waits included "
                 "(env ORKES_PROVISION_TIMEOUT; default 30)."))
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
        click.echo(terminal_safe(rendered))


def info(message: str) -> None:
    """A progress line for people: stderr, so that stdout stays parseable."""
    if not opts().json:
        click.echo(terminal_safe(message), err=True)


def report_error(err: ProvisionError, options: GlobalOptions) -> None:
    message, hint = redact_tokens(err.message), redact_tokens(err.hint)
    if options.json:
        data = err.to_dict() | {"message": message, "hint": hint}
        click.echo(json.dumps(data, sort_keys=True), err=True)
        return
    click.echo(f"error: {terminal_safe(message, one_line=True)}", err=True)
    click.echo(f"hint: {terminal_safe(hint, one_line=True)}", err=True)


# C0 and C1 controls, DEL, the Unicode line and paragraph separators, and the bidirectional
# controls that make text read differently than it is. Tab and (in multi-line text) newline stay.
_CONTROLS = r"\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[{_CONTROLS}]")
_UNSAFE_ONE_LINE = re.compile(f"[\\n{_CONTROLS}]")


def terminal_safe(text: str, *, one_line: bool = False) -> str:
    """``text`` with every control character written as an escape (``\\x1b``, ``\\r``, ``\\u2028``);
    with ``one_line``, newlines too."""
    pattern = _UNSAFE_ONE_LINE if one_line else _UNSAFE
    return pattern.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


if TYPE_CHECKING:  # click 8.2+ types ParamType by its value and input; at run time any click 8 will do
    _NameBase: TypeAlias = click.ParamType[str, str]
else:
    _NameBase = click.ParamType


class NameType(_NameBase):
    """A name argument or option, checked by ``orkes_provision.names`` while the command line is parsed,
    so a bad name stops the command before any request (exit 2, naming the code point)."""

    name = "name"

    def __init__(self, what: str) -> None:
        self.what = what

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from orkes_provision.names import check_name

        # A blank value is left to the command, whose message says what to give instead.
        return check_name(value, self.what) if value.strip() else value


APP_NAME = NameType("application name")
APP_ID = NameType("application id")
KEY_ID = NameType("key id")
TASK_NAME = NameType("task name")
WORKFLOW_NAME = NameType("workflow name")
TAG = NameType("tag")
DOMAIN = NameType("domain")
WORKER_NAME = NameType("worker name")
K8S_NAME = NameType("Kubernetes name")
