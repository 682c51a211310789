"""``provision plan``, ``provision apply`` and ``provision schema``: declarative environments.

The work is in ``orkes_provision.environments.apply`` (reading, planning, executing) and
``orkes_provision.environments.environment`` (the file); these commands parse flags, ask, and render.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from orkes_provision.cli.common import (
    DURATION,
    common_options,
    confirm,
    emit,
    in_command,
    info,
    opts,
    report_error,
    self_lockout_option,
    terminal_safe,
)
from orkes_provision.errors import ProvisionError, UsageError

if TYPE_CHECKING:
    from datetime import timedelta

    from orkes_provision.access.execute import Outcome
    from orkes_provision.environments.apply import EnvironmentPlan
    from orkes_provision.environments.environment import Environment
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
@click.option("--prune", is_flag=True, help="Also show deletions: what this environment owns but no longer declares, "
                                            "and roles, members and grants that declared entries should not hold.")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 when there is nothing to do, 2 when changes are pending, 1 on any error.")
@click.option("--fail-on", "fail_on", metavar="CLASSES",
              help="Exit 2 when a planned change is in one of these classes (comma-separated: grants-access, "
                   "removes-access, key, destructive); 1 on any error.")
@_parallelism_option
@common_options
def plan(path: str, prune: bool, detailed_exitcode: bool, fail_on: str | None, parallelism: int,
         verify_keys: bool) -> None:
    """Show what 'provision apply -f FILE' would change; change nothing.

    Reads the server and prints the changes in a stable order: + create, ~ change, - delete
    (deletions only with --prune: applications this environment's tag marks as its own, and
    what the declared applications, users and groups should no longer hold). Never prints a secret.

    Each change is classified (--json: "classes"): grants-access, removes-access, key,
    destructive; --fail-on lets a CI job stop a pull request that would, say, remove access.

    \b
    Examples:
      provision plan -f staging.toml
      provision plan -f staging.toml --json --detailed-exitcode
      provision plan -f staging.toml --prune --fail-on removes-access,destructive
    """
    from orkes_provision.access.classify import parse_fail_on

    try:
        gates = parse_fail_on(fail_on) if fail_on is not None else ()
    except UsageError as err:
        err.exit_override = 1  # 2 is the gate's answer
        raise
    try:
        env = _load(path)
        credentials = _credentials(env)
        with _client(credentials, None) as client:
            env_plan = _plan(client, env, credentials, prune=prune, parallelism=parallelism,
                             verify_keys=verify_keys)
    except ProvisionError as err:
        if not detailed_exitcode and not gates:
            raise
        err.exit_override = 1  # 2 means "changes pending" or "a gated change" here
        report_error(err, opts())
        raise click.exceptions.Exit(1) from None
    _warn_findings(env_plan)
    for change, why in env_plan.lockouts.items():
        info(f"warning: self-lockout: {change.describe(symbol=False)}: it {why}; apply refuses it without "
             "--allow-self-lockout")
    emit(env_plan.to_dict(), env_plan.render)
    gated = env_plan.classified(gates) if gates else []
    if gated:
        click.echo(f"plan: {len(gated)} change(s) in --fail-on {','.join(gates)}, first: "
                   f"{terminal_safe(gated[0].describe(), one_line=True)}", err=True)
        raise click.exceptions.Exit(2)
    if detailed_exitcode and not env_plan.empty:
        raise click.exceptions.Exit(2)


@click.command("apply")
@_file_option
@click.option("--auto-approve", "--yes", "-y", "auto_approve", is_flag=True,
              help="Apply without asking (needed when stdin is not a terminal).")
@click.option("--prune", is_flag=True,
              help="Also delete what this environment owns (by its tag) but no longer declares, and remove the "
                   "roles, members and grants that declared entries should not hold.")
@click.option("--switch-wait", default="15s", show_default=True, type=DURATION, metavar="DURATION",
              help="In a key rotation keyMaxAge asks for: longest wait for supervised workers to switch to the "
                   "new key before the old one is deactivated (as 'keys rotate --switch-wait').")
@_parallelism_option
@self_lockout_option
@common_options
def apply(path: str, auto_approve: bool, prune: bool, switch_wait: timedelta, parallelism: int,
          verify_keys: bool, allow_self_lockout: bool) -> None:
    """Make the server match environment file FILE: plan, ask, apply, summarise.

    Creates applications, roles, keys (straight into their stores), grants, task and workflow
    definitions, users and groups (with their members), at most --parallelism requests at a time,
    in dependency order. A second run
    changes nothing; after a partial failure, a rerun finishes the job. An application whose
    ACTIVE key is older than its keyMaxAge gets its key rotated, as 'provision keys rotate' does.
    A change that takes access from the key running apply (deleting its application, removing
    its roles or grants) is refused (exit 7) unless --allow-self-lockout; plan marks it.

    \b
    Examples:
      provision apply -f staging.toml
      provision apply -f staging.toml --auto-approve --prune
    """
    from orkes_provision.access.execute import PartialFailure
    from orkes_provision.cli.context import hint_options
    from orkes_provision.environments.apply import apply_environment
    from orkes_provision.locks import app_lock, file_lock
    from orkes_provision.orkes.ratelimit import AdaptiveLimiter
    from orkes_provision.rotation.fleet import environment_rotator

    if not auto_approve and not _stdin_is_tty():
        raise UsageError("stdin is not a terminal, so apply cannot ask for confirmation",
                         "review the changes with 'provision plan -f FILE', "
                         "then run apply with --yes (or --auto-approve)")
    env = _load(path)
    credentials = _credentials(env)
    limiter = AdaptiveLimiter(parallelism)
    # The lock of each declared application too: 'provision app X' and this apply never both create X.
    with _client(credentials, limiter) as client, \
            file_lock(f"env|{credentials.server}|{env.name}", what=f"environment {env.name}"), \
            app_lock(credentials.server, [a.name for a in env.applications]):
        env_plan = _plan(client, env, credentials, prune=prune, parallelism=parallelism, verify_keys=verify_keys)
        _warn_findings(env_plan)
        from orkes_provision.access.selflock import refuse_planned

        refuse_planned(env_plan.lockouts, allow=allow_self_lockout)
        progress = None
        if not env_plan.empty:  # nothing to ask about otherwise; the (empty) apply keeps --json's shape
            _show_and_confirm(env_plan, auto_approve)
            progress = _Progress() if _stderr_is_tty() and not opts().json else None
        rotate = environment_rotator(client, server=credentials.server, stores=env_plan.stores,
                                     actor=credentials.key_id, switch_wait=switch_wait.total_seconds(),
                                     on_step=in_command(lambda app, line: info(f"{app}: {line}")),
                                     hint_options=hint_options())
        result = apply_environment(client, env_plan, actor=credentials.key_id, parallelism=parallelism,
                                   limiter=limiter, on_outcome=in_command(progress) if progress else None,
                                   rotate=rotate)
        if progress is not None:
            progress.close()
    result.hint_options = hint_options()
    emit(result.to_dict() | {"plan": env_plan.to_dict()}, env_plan.render if env_plan.empty else result.render)
    if not result.ok:
        raise PartialFailure(result.applied)


@click.command("schema")
def schema() -> None:
    """Print the JSON Schema of the environment file (for editors and CI validation).

    \b
    Examples:
      provision schema > environment.schema.json
      provision schema | jq '.properties | keys'
    """
    from orkes_provision.environments.environment import environment_schema

    click.echo(json.dumps(environment_schema(), indent=2, sort_keys=False))


def _load(path: str) -> Environment:
    from orkes_provision.environments.environment import load_environment

    return load_environment(path)


def _credentials(env: Environment) -> Credentials:
    """The provisioning credentials, on the server they came with; the file's ``server`` may pick a
    profile for it, never redirect another credential (a disagreement is an error naming both)."""
    from orkes_provision.credentials.delivery import Choice, check_same_server
    from orkes_provision.credentials.settings import Settings, resolve_credentials
    from orkes_provision.orkes.urls import normalize_server_url

    options = opts()
    server = options.server
    if server is None and env.server and options.profile is None and not Settings().auth_key:
        server = env.server  # chooses among profiles, each bound to its own server
    credentials = resolve_credentials(server=server, profile=options.profile, insecure_http=options.insecure_http)
    if env.server and not options.server:
        named = Choice(normalize_server_url(env.server, insecure_http=options.insecure_http),
                       f"the environment file {env.path or 'given'}")
        check_same_server(named, Choice(credentials.server, "the provisioning credentials"))
    return credentials


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
    from orkes_provision.access.workflow_tasks import server_fetch
    from orkes_provision.environments.apply import plan_environment

    env.derive_workflow_tasks(server_fetch(client.get_workflow_def))
    env_plan = plan_environment(client, env, server=credentials.server, prune=prune, parallelism=parallelism,
                                verify_keys=verify_keys)
    if any(c.symbol == "-" for c in env_plan.plan.changes):
        from orkes_provision.access.selflock import caller, lockouts

        env_plan.lockouts = lockouts(env_plan.plan.changes, caller(client))
    return env_plan


def _warn_findings(env_plan: EnvironmentPlan) -> None:
    """The file's least-privilege findings ('provision lint'), as warnings on stderr: they never stop a plan."""
    for finding in env_plan.findings:
        if opts().json:
            click.echo(json.dumps({"warning": "lint"} | finding.to_dict(), sort_keys=True), err=True)
        else:
            click.echo(f"warning: {finding.warning()}", err=True)


def _show_and_confirm(env_plan: EnvironmentPlan, auto_approve: bool) -> None:
    if opts().json:
        if not auto_approve:
            click.echo(terminal_safe(env_plan.render()), err=True)
    else:
        click.echo(terminal_safe(env_plan.render()))
    if auto_approve:
        return
    count = len(env_plan.plan.changes)
    confirm(f"Apply these {count} changes to {env_plan.server}?", yes=auto_approve,
            action=f"apply {count} changes to {env_plan.server}")


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
        text = terminal_safe(f"[{done}/{total}{failed}] {outcome.change.describe(symbol=False)}", one_line=True)
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

