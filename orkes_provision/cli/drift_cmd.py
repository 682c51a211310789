"""``provision drift``: for cron and CI, does the server still match the environment file?

Exit 0 when it does, 2 when it does not (each difference with the command that settles it),
1 on any error, a bad flag included: the codes of ``plan --detailed-exitcode``.
"""

from __future__ import annotations

import click

from orkes_provision.cli.common import common_options, emit, opts, report_error
from orkes_provision.errors import ProvisionError

DEFAULT_PARALLELISM = 16
MAX_PARALLELISM = 64


class _UsageErrorExit1(click.UsageError):
    exit_code = 1


class ExitOneOnUsageError(click.Command):
    """Exit code 2 means "found something" here: a bad flag must exit 1, not click's usual 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as err:
            raise _UsageErrorExit1(err.format_message(), err.ctx) from None


@click.command("drift", cls=ExitOneOnUsageError)
@click.option("-f", "--file", "path", required=True, metavar="FILE", help="The environment file (TOML).")
@click.option("--parallelism", type=click.IntRange(1, MAX_PARALLELISM), default=DEFAULT_PARALLELISM,
              show_default=True, help="Requests in flight at most.")
@common_options
def drift(path: str, parallelism: int) -> None:
    """Report what differs between the server and environment file FILE; change nothing.

    Lists, on everything FILE declares, what the server lacks (-), what it holds that FILE does
    not say, such as a role or grant added by hand (+), and what differs (~), each with the
    command that makes the server match FILE and the edit that makes FILE match the server.

    Exit codes: 0 the server matches, 2 it differs, 1 any error.

    \b
    Examples:
      provision drift -f staging.toml
      provision drift -f staging.toml --json || notify-team   # from cron or CI
    """
    from orkes_provision.access.workflow_tasks import server_fetch
    from orkes_provision.cli.env_cmd import _client, _credentials, _load
    from orkes_provision.environments.drift import drift_environment

    options = opts()
    global_args = [*(["--profile", options.profile] if options.profile else []),
                   *(["--server", options.server] if options.server else [])]
    try:
        env = _load(path)
        credentials = _credentials(env)
        with _client(credentials, None) as client:
            env.derive_workflow_tasks(server_fetch(client.get_workflow_def))
            report = drift_environment(client, env, server=credentials.server, parallelism=parallelism,
                                       global_args=global_args)
    except ProvisionError as err:
        err.exit_override = 1  # 2 means "found something" here
        report_error(err, options)
        raise click.exceptions.Exit(1) from None
    emit(report.to_dict(), report.render)
    if not report.in_sync:
        raise click.exceptions.Exit(2)
