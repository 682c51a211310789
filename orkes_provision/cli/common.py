"""What every command shares: the global options, output rendering and error reporting.

The CLI's conventions live here so that a command gets them by using these pieces: results on
stdout and progress on stderr (``emit``/``info``), JSON for every outcome under ``--json``
(``report_error``), one confirmation rule (``confirm``/``yes_option``), one duration type
(``DURATION``), one wording of the store kinds (``STORE_KINDS``), one check of the names a user
gives (``NameType``), and groups that suggest a mistyped command and never cut a summary short
(``ProvisionGroup``).

Everything printed for people goes through ``emit``, ``info``, ``report_error`` or ``terminal_safe``:
names, ids and messages may come from a server or a file, so control characters are escaped there
(an OSC sequence could retitle the terminal or write the clipboard, a ``\r`` overwrite a line) and
JWT-shaped tokens are redacted. JSON output is escaped by ``json.dumps`` itself (``ensure_ascii``).
"""

from __future__ import annotations

import functools
import json
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

import click
from click.globals import pop_context, push_context

from orkes_provision.errors import Cancelled, ProvisionError, UsageError, redact_tokens
from orkes_provision.progress import Wait

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class GlobalOptions:
    """Options accepted by every command; a value given on a subcommand wins.

    One instance per invocation, kept as the object of click's root context (``opts``), so that two
    invocations in one process (tests with ``CliRunner``) share nothing.
    """

    server: str | None = None
    profile: str | None = None
    json: bool = False
    verbose: int = 0
    insecure_http: bool = False
    # Set once the result is on stdout: a failure after it (doctor's problems, a partial apply)
    # then goes to stderr, so that stdout stays one JSON document.
    result_printed: bool = False
    timeout: float | None = None

    @staticmethod
    def of(ctx: click.Context) -> GlobalOptions:
        """The options of the invocation ``ctx`` belongs to (made on first use)."""
        return ctx.find_root().ensure_object(GlobalOptions)


def _store(field: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        opts = GlobalOptions.of(ctx)
        if value not in (None, False, 0):
            # Durations are kept as seconds (the library's unit); the option itself takes units.
            setattr(opts, field, value.total_seconds() if hasattr(value, "total_seconds") else value)
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


_SERVER_OPTIONS = ("--server", "--profile", "--insecure-http")


def command_options(*, server: bool = True, json: bool = True, verbose: bool = True,
                    timeout: bool | None = None) -> Callable[[F], F]:
    """The global options a command shows: only those that do something there.

    ``server``: --server, --profile, --insecure-http and --timeout (the command talks to a server);
    ``json``: --json (it has a result to print); ``verbose``: -v (it logs something); ``timeout``:
    False for a command whose own --timeout means something else (``deploy kubernetes``).
    """
    options = []
    if server:
        options += [
            click.option("--server", metavar="URL", expose_value=False, is_eager=True,
                         callback=_store("server"),
                         help="Orkes server URL, with or without /api (env CONDUCTOR_SERVER_URL)."),
            click.option("--profile", metavar="NAME", expose_value=False, is_eager=True,
                         callback=_store("profile"),
                         help="Credentials profile from 'provision login'; 'sandbox' for the local sandbox."),
        ]
    if json:
        options.append(click.option("--json", "json_", is_flag=True, expose_value=False, is_eager=True,
                                    callback=_store("json"), help="Print machine-readable JSON."))
    if verbose:
        options.append(click.option("-v", "--verbose", count=True, expose_value=False, is_eager=True,
                                    callback=_store("verbose"), help="Log requests (never secrets); -vv for more."))
    if server:
        options.append(click.option("--insecure-http", is_flag=True, expose_value=False, is_eager=True,
                                    callback=_store("insecure_http"),
                                    help="Allow plain http:// to a host other than loopback (also through a proxy)."))
    if server if timeout is None else timeout:
        options.append(click.option(
            "--timeout", type=Duration(minimum_seconds=0.001), default=None, metavar="DURATION", expose_value=False,
            is_eager=True, callback=_store("timeout"),
            help="Give up on a request after this long, retries and waits included, e.g. 45s or 2m "
                 "(env ORKES_PROVISION_TIMEOUT; default 30s)."))

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def common_options(func: F) -> F:
    """Add --server, --profile, --json, -v, --insecure-http and --timeout: a command that talks to a server."""
    return command_options()(func)


def opts() -> GlobalOptions:
    """The global options of the running command; the defaults outside one."""
    ctx = click.get_current_context(silent=True)
    return GlobalOptions() if ctx is None else GlobalOptions.of(ctx)


def in_command(func: F) -> F:
    """``func`` made callable from the library's worker threads (progress and event callbacks).

    click keeps its context, and so the options, per thread: the callback runs with the context of
    the command that made it.
    """
    ctx = click.get_current_context()

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        if click.get_current_context(silent=True) is ctx:
            return func(*args, **kwargs)
        push_context(ctx)
        try:
            return func(*args, **kwargs)
        finally:
            pop_context()

    return cast(F, call)


class StderrWaits:
    """Prints the library's wait notices (``progress.waiting``) on stderr, also under --json.

    A countdown (a wait reported again with less time left) redraws one line on a terminal, also
    when several run at once (``keys rotate --all --parallelism 4``: one line, not one per
    application). Elsewhere, as in a CI log, a countdown is printed when its message is new, and
    again only once every ``every`` seconds for all countdowns of its topic together: a long wait is
    a few lines, however many applications wait in parallel.
    """

    def __init__(self, every: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._told: set[tuple[str, str]] = set()  # countdown messages already printed (off a terminal)
        self._topic_at: dict[str, float] = {}  # when a countdown of each topic was last printed
        self._open = False  # a redrawn line is on the terminal without its newline

    def __call__(self, wait: Wait) -> None:
        tty = sys.stderr.isatty()
        countdown = wait.remaining is not None
        with self._lock:
            if countdown and not tty:
                now, key = self._clock(), (wait.topic, wait.message)
                last = self._topic_at.get(wait.topic)
                if key in self._told and last is not None and now - last < self.every:
                    return
                if len(self._told) > 10_000:  # a long-lived process: forget, at worst a line is repeated
                    self._told.clear()
                self._told.add(key)
                self._topic_at[wait.topic] = now
            if self._open and not (tty and countdown):
                click.echo("", err=True)
            if tty and countdown:
                click.echo("\r\x1b[K" + wait.render(), err=True, nl=False)
                self._open = True
            else:
                click.echo(wait.render(), err=True)
                self._open = False

    def end_line(self) -> None:
        """Finish a redrawn countdown line, so that what is printed next starts on its own line."""
        with self._lock:
            if self._open:
                click.echo("", err=True)
                self._open = False


WAITS = StderrWaits()


def emit(data: Any, text: str | Callable[[], str] | None = None) -> None:
    """Print ``data`` as JSON under --json, else the human ``text``."""
    WAITS.end_line()
    if opts().json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
        opts().result_printed = True
        return
    rendered = text() if callable(text) else text
    if rendered:
        click.echo(terminal_safe(rendered))


def info(message: str) -> None:
    """A progress line for people: stderr, so that stdout stays parseable."""
    if not opts().json:
        WAITS.end_line()
        click.echo(terminal_safe(message), err=True)


def report_error(err: ProvisionError, options: GlobalOptions) -> None:
    """``error:`` and ``hint:`` on stderr, after each of several problems in a file at its line with its hint.
    Under --json the error is the outcome, so it goes to stdout, unless the command already printed its
    result there (then stderr, one JSON line)."""
    WAITS.end_line()
    message, hint = redact_tokens(err.message), redact_tokens(err.hint)
    if options.json:
        data = err.to_dict() | {"message": message, "hint": hint}
        if err.problems:  # what a file says may hold a pasted token
            data["problems"] = [p.to_dict() | {"message": redact_tokens(p.message), "hint": redact_tokens(p.hint)}
                                for p in err.problems]
        click.echo(json.dumps(data, sort_keys=True), err=options.result_printed)
        return
    if len(err.problems) > 1:  # each at its line first; the error line then counts them
        for problem in err.problems:
            click.echo(terminal_safe(redact_tokens(problem.render()), one_line=True), err=True)
            click.echo(f"    hint: {terminal_safe(redact_tokens(problem.hint), one_line=True)}", err=True)
    click.echo(f"error: {terminal_safe(message, one_line=True)}", err=True)
    click.echo(f"hint: {terminal_safe(hint, one_line=True)}", err=True)


# ----- conventions shared by the commands --------------------------------------------------------

# Every kind of credential store, as each --store help names them (the json store is write-only).
STORE_KINDS = "keyring, env-file:PATH or k8s-secret:NAMESPACE/NAME"
STORE_KINDS_WRITE = "keyring, env-file:PATH, k8s-secret:NAMESPACE/NAME or json (printed once)"


def yes_option(func: F) -> F:
    """``--yes``: what a destructive command needs when no one can be asked."""
    return click.option("--yes", "-y", is_flag=True,
                        help="Do not ask for confirmation (needed when stdin is not a terminal).")(func)


def self_lockout_option(func: F) -> F:
    """``--allow-self-lockout``: let a command take access from the credentials running it."""
    return click.option("--allow-self-lockout", is_flag=True,
                        help="Allow taking access away from the key this command runs with (its application, "
                             "the key itself, its roles or grants).")(func)


def stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except ValueError:  # stdin closed
        return False


def stdout_is_tty() -> bool:
    try:
        return sys.stdout is not None and sys.stdout.isatty()
    except ValueError:  # stdout closed
        return False


def confirm(question: str, *, yes: bool, action: str, warning: str | None = None) -> None:
    """Ask ``question`` on the terminal (on stderr); without a terminal, ``--yes`` is required.

    ``action`` names what would be done, for the refusal (``UsageError``, exit 2) and for an answer
    of no (``Cancelled``, exit 130). ``warning`` is printed first, even with ``--yes``.
    """
    if warning:
        click.echo(f"warning: {warning}", err=True)
    if yes:
        return
    if not stdin_is_tty():
        raise UsageError(f"refusing to {action} without confirmation: stdin is not a terminal",
                         "add --yes to confirm")
    if not click.confirm(terminal_safe(question), default=False, err=True):
        raise Cancelled(f"did not {action}: the answer was no", "nothing was changed; add --yes to skip the question")


if TYPE_CHECKING:
    from datetime import timedelta

    _ParamType = click.ParamType[timedelta, Any]
else:  # click before 8.2 has no type parameters
    _ParamType = click.ParamType


class Duration(_ParamType):
    """A duration option: 90s, 15m, 2h, 1h30m, 500ms; a bare number is seconds, unless ``unit_for_bare``
    names the unit a bare number is refused with (ages and lifetimes: ``--older-than 30`` -> "30d?")."""

    name = "duration"

    def __init__(self, minimum_seconds: float = 0, unit_for_bare: str | None = None) -> None:
        self.minimum_seconds = minimum_seconds
        self.unit_for_bare = unit_for_bare

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        # Imported here: datetime is not needed to show --help.
        from datetime import timedelta

        from orkes_provision.durations import format_duration, parse_duration

        if isinstance(value, timedelta):
            return value
        try:
            parsed = parse_duration(str(value), unit_for_bare=self.unit_for_bare)
        except UsageError as err:
            self.fail(f"{err.message}: {err.hint}", param, ctx)
        if parsed.total_seconds() < self.minimum_seconds:
            self.fail(f"'{value}' is shorter than {format_duration(timedelta(seconds=self.minimum_seconds))}",
                      param, ctx)
        return parsed


DURATION = Duration()
# An age (of a key, of an INACTIVE key): a bare number is refused with "did you mean 30d?".
AGE = Duration(unit_for_bare="d")


class ProvisionGroup(click.Group):
    """A command group: a mistyped subcommand gets "did you mean", summaries are never cut with "..."."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                             list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            raise NoSuchCommand(name, did_you_mean(name, self.list_commands(ctx)), ctx)
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.summary(ctx, name)) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def summary(self, ctx: click.Context, name: str) -> str:
        """The first sentence of the command's help, whole (write_dl wraps it instead)."""
        command = self.get_command(ctx, name)
        return command.get_short_help_str(limit=10_000) if command is not None else ""


class NoSuchCommand(click.UsageError):
    """A mistyped command; ``suggestion`` is ``'app' or 'apps'`` (empty when nothing is close)."""

    def __init__(self, name: str, suggestion: str, ctx: click.Context) -> None:
        super().__init__(f"No such command '{name}'." + (f" Did you mean {suggestion}?" if suggestion else ""), ctx)
        self.name = name
        self.suggestion = suggestion


def did_you_mean(word: str, choices: list[str]) -> str:
    """The choices close to ``word`` as ``'a' or 'b'``, else an empty string."""
    import difflib  # only for a mistyped command

    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6) + [c for c in choices if c.startswith(word)]
    return " or ".join(f"'{c}'" for c in list(dict.fromkeys(close))[:3])


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
