"""``provision plan``, ``provision apply`` and ``provision schema``: declarative environments.

The work is in ``orkes_provision.access.apply`` (reading, planning, executing) and
``orkes_provision.access.environment`` (the file); these commands parse flags, ask, and render.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from orkes_provision.cli.common import common_options, emit, opts, report_error, terminal_safe
from orkes_provision.errors import ProvisionError, UsageError

if TYPE_CHECKING:
    from orkes_provision.access.apply import EnvironmentPlan
    from orkes_provision.access.environment import Environment
    from orkes_provision.access.execute import Outcome
    from orkes_provision.orkes.client import OrkesClient
    from orkes_provision.orkes.models import Credentials
    from orkes_provision.orkes.ratelimit import AdaptiveLimiter

DEFAULT_PARALLELISM = 16  # the library's default too (apply.DEFAULT_PARALLELISM); not imported, to keep --help fast
MAX_PARALLELISM = 64


class _UsageErrorExit1(click.UsageError):
    exit_code = 1


class _DetailedExitCommand(click.Command):
    """With --detailed-exitcode, exit code 2 means "changes pending": a bad flag must then exit 1."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        detailed = "--detailed-exitcode" in args  # before parsing: the parser consumes ``args``
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as err:
            if detailed:
                raise _UsageErrorExit1(err.message, err.ctx) from None
            raise


def _file_option(func: Any) -> Any:
    return click.option("-f", "--file", "path", required=True, metavar="FILE",
                        help="The environment file (TOML); see 'provision schema'.")(func)


def _parallelism_option(func: Any) -> Any:
    func = click.option("--verify-keys", is_flag=True,
                        help="Check every stored key's secret with a token exchange, also those this machine "
                             "delivered itself.")(func)
    return click.option("--parallelism", type=click.IntRange(1, MAX_PARALLELISM), default=DEFAULT_PARALLELISM,
                        show_default=True, help="Requests in flight at most (lowered automatically on 429).")(func)


@click.command("plan", cls=_DetailedExitCommand)
@_file_option
@click.option("--prune", is_flag=True, help="Also show deletions: what this environment owns but no longer declares.")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 when there is nothing to do, 2 when changes are pending, 1 on any error.")
@_parallelism_option
@common_options
def plan(path: str, prune: bool, detailed_exitcode: bool, parallelism: int, verify_keys: bool) -> None:
    """Show what 'provision apply -f FILE' would change; change nothing.

    Reads the server and prints the changes in a stable order: + create, ~ change, - delete
    (deletions only with --prune, and only of what this environment's tag marks as its own).
    Never prints a secret.

    \b
    Examples:
      provision plan -f staging.toml
      provision plan -f staging.toml --json --detailed-exitcode
    """
    try:
        env = _load(path)
        credentials = _credentials(env)
        with _client(credentials, None) as client:
            env_plan = _plan(client, env, credentials, prune=prune, parallelism=parallelism,
                             verify_keys=verify_keys)
    except ProvisionError as err:
        if not detailed_exitcode:
            raise
        report_error(err, opts())
        raise click.exceptions.Exit(1) from None
    emit(env_plan.to_dict(), env_plan.render)
    if detailed_exitcode and not env_plan.empty:
        raise click.exceptions.Exit(2)


@click.command("apply")
@_file_option
@click.option("--auto-approve", is_flag=True, help="Apply without asking (needed when stdin is not a terminal).")
@click.option("--prune", is_flag=True,
              help="Also delete what this environment owns (by its tag) but no longer declares.")
@_parallelism_option
@common_options
def apply(path: str, auto_approve: bool, prune: bool, parallelism: int, verify_keys: bool) -> None:
    """Make the server match environment file FILE: plan, ask, apply, summarise.

    Creates applications, roles, keys (straight into their stores), grants, task and workflow
    definitions, at most --parallelism requests at a time, in dependency order. A second run
    changes nothing; after a partial failure, a rerun finishes the job.

    \b
    Examples:
      provision apply -f staging.toml
      provision apply -f staging.toml --auto-approve --prune
    """
    from orkes_provision.access.apply import apply_environment
    from orkes_provision.access.execute import PartialFailure
    from orkes_provision.locks import file_lock
    from orkes_provision.orkes.ratelimit import AdaptiveLimiter

    if not auto_approve and not _stdin_is_tty():
        raise UsageError("stdin is not a terminal, so apply cannot ask for confirmation",
                         "review the changes with 'provision plan -f FILE', then run apply with --auto-approve")
    env = _load(path)
    credentials = _credentials(env)
    limiter = AdaptiveLimiter(parallelism)
    with _client(credentials, limiter) as client, \
            file_lock(f"env|{credentials.server}|{env.name}", what=f"environment {env.name}"):
        env_plan = _plan(client, env, credentials, prune=prune, parallelism=parallelism, verify_keys=verify_keys)
        progress = None
        if not env_plan.empty:  # nothing to ask about otherwise; the (empty) apply keeps --json's shape
            _show_and_confirm(env_plan, auto_approve)
            progress = _Progress() if _stderr_is_tty() and not opts().json else None
        result = apply_environment(client, env_plan, actor=credentials.key_id, parallelism=parallelism,
                                   limiter=limiter, on_outcome=progress)
        if progress is not None:
            progress.close()
    emit(result.to_dict() | {"plan": env_plan.to_dict()}, env_plan.render if env_plan.empty else result.render)
    if not result.ok:
        raise PartialFailure(result.applied)


@click.command("schema")
@common_options
def schema() -> None:
    """Print the JSON Schema of the environment file (for editors and CI validation)."""
    from orkes_provision.access.environment import environment_schema

    click.echo(json.dumps(environment_schema(), indent=2, sort_keys=False))


def _load(path: str) -> Environment:
    from orkes_provision.access.environment import load_environment

    return load_environment(path)


def _credentials(env: Environment) -> Credentials:
    """--server, CONDUCTOR_SERVER_URL or a profile win; the file's ``server`` fills in when none is given."""
    from orkes_provision.credentials.settings import resolve_credentials

    options = opts()
    server = options.server
    if server is None and env.server and options.profile is None and \
            not os.environ.get("CONDUCTOR_SERVER_URL") and not os.environ.get("CONDUCTOR_PROFILE"):
        server = env.server
    return resolve_credentials(server=server, profile=options.profile, insecure_http=options.insecure_http)


def _client(credentials: Credentials, limiter: AdaptiveLimiter | None) -> OrkesClient:
    from orkes_provision.cli.context import request_timeout
    from orkes_provision.orkes.client import OrkesClient
    from orkes_provision.orkes.ratelimit import RateLimitObserver
    from orkes_provision.orkes.transport import server_transport

    insecure_http = opts().insecure_http
    transport = None
    if limiter is not None:
        transport = RateLimitObserver(limiter, server_transport(credentials.server, insecure_http=insecure_http))
    return OrkesClient(credentials, deadline=request_timeout(), insecure_http=insecure_http, transport=transport)


def _plan(client: OrkesClient, env: Environment, credentials: Credentials, *, prune: bool,
          parallelism: int, verify_keys: bool) -> EnvironmentPlan:
    from orkes_provision.access.apply import plan_environment

    return plan_environment(client, env, server=credentials.server, prune=prune, parallelism=parallelism,
                            verify_keys=verify_keys)


def _show_and_confirm(env_plan: EnvironmentPlan, auto_approve: bool) -> None:
    if opts().json:
        if not auto_approve:
            click.echo(terminal_safe(env_plan.render()), err=True)
    else:
        click.echo(terminal_safe(env_plan.render()))
    if auto_approve:
        return
    count = len(env_plan.plan.changes)
    if not click.confirm(terminal_safe(f"Apply these {count} changes to {env_plan.server}?"), default=False, err=True):
        click.echo("Apply cancelled; nothing was changed.", err=True)
        raise click.exceptions.Exit(1)


class _Progress:
    """One line on stderr, rewritten in place: how far the apply is (only on a terminal)."""

    def __init__(self) -> None:
        self.failed = 0
        self._shown = False
        self._width = 80

    def __call__(self, outcome: Outcome, done: int, total: int) -> None:
        if outcome.status != "done":
            self.failed += 1
        failed = f", {self.failed} not done" if self.failed else ""
        text = terminal_safe(f"[{done}/{total}{failed}] {outcome.change.describe()[2:]}", one_line=True)
        # Padded to the width rather than cleared with an escape code: click strips those when unsure.
        self._width = max(20, _terminal_width() - 1)
        click.echo("\r" + text[:self._width].ljust(self._width), nl=False, err=True)
        self._shown = True

    def close(self) -> None:
        if self._shown:
            click.echo("\r" + " " * self._width + "\r", nl=False, err=True)


def _terminal_width() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        return 80


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except ValueError:
        return False


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except ValueError:
        return False

