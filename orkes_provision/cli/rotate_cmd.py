"""``provision keys rotate`` and ``provision keys prune``: zero-downtime key rotation."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import click

from orkes_provision.cli.common import (
    AGE,
    APP_NAME,
    DURATION,
    STORE_KINDS_WRITE,
    NameType,
    common_options,
    emit,
    in_command,
    info,
    opts,
)
from orkes_provision.errors import UsageError

# The library's defaults (rotation.fleet.DEFAULT_PARALLELISM); not imported, to keep --help fast.
DEFAULT_PARALLELISM = 4
MAX_PARALLELISM = 64
ENVIRONMENT = NameType("environment name")

if TYPE_CHECKING:
    from orkes_provision.rotation.rotate import PruneReport, RotationReport


@click.command("rotate")
@click.argument("apps", nargs=-1, type=APP_NAME, metavar="[APP]...")
@click.option("--all", "all_", is_flag=True,
              help="Rotate many applications: every one whose key this machine delivered, those of "
                   "--environment, or the APPs named; one summary line each.")
@click.option("--older-than", type=AGE, default=None, metavar="DURATION",
              help="With --all: only applications whose oldest ACTIVE key is older than this (the server's "
                   "createdAt), e.g. 30d.")
@click.option("--environment", metavar="NAME", type=ENVIRONMENT,
              help="With --all: the applications tagged environment=NAME on the server (what 'apply' of that "
                   "environment made).")
@click.option("--parallelism", type=click.IntRange(1, MAX_PARALLELISM), default=None,
              help=f"With --all: applications rotated at once (default {DEFAULT_PARALLELISM}).")
@click.option("--canary", type=click.IntRange(1, None), default=None, metavar="N",
              help="With --all: rotate N applications first (by name), wait until their workers here report the "
                   "new key, then the rest; the first failure leaves the rest untouched.")
@click.option("--canary-wait", type=DURATION, default="60s", show_default=True, metavar="DURATION",
              help="With --canary: how long each canary's workers may take to report the new key.")
@click.option("--grace", type=AGE, default="15m", show_default=True, metavar="DURATION",
              help="Delete keys INACTIVE for longer than this (0s: at once).")
@click.option("--store", "store_specs", multiple=True, metavar="SPEC",
              help=f"Write the new key here instead of where the current key was delivered (repeatable): "
                   f"{STORE_KINDS_WRITE}.")
@click.option("--switch-wait", default="15s", show_default=True, type=DURATION, metavar="DURATION",
              help="Longest wait for supervised workers to switch to the new key before the old one is "
                   "deactivated; ends when every one on this machine runs it (0: no wait).")
@click.option("--start-over", is_flag=True,
              help="Discard an interrupted rotation instead of finishing it (its new key is retired too).")
@click.option("--retire-undelivered", is_flag=True,
              help="Also retire ACTIVE keys this rotation cannot give a successor to (delivered to json, to a "
                   "store not written, or by another machine): whoever holds them loses access.")
@common_options
def rotate(apps: tuple[str, ...], all_: bool, older_than: timedelta | None, environment: str | None,
           parallelism: int | None, canary: int | None, canary_wait: timedelta, grace: timedelta,
           store_specs: tuple[str, ...], switch_wait: timedelta, start_over: bool, retire_undelivered: bool) -> None:
    """Replace APP's key everywhere it was delivered, with no downtime.

    Creates a new key, writes it to every store that holds the current key (or to each --store),
    verifies it (token, WORKER role, EXECUTE grants), waits for supervised workers to switch,
    deactivates the old key and deletes keys INACTIVE for longer than --grace. Safe in cron or CI:
    a run that was interrupted is finished by the next one, and two runs never interleave.

    Before changing anything it lists each ACTIVE key it will retire and where that key was
    delivered, and refuses (exit 7) to retire one delivered somewhere it does not write (json,
    another store, another machine) unless --retire-undelivered. With --store json the new
    key's JSON is all stdout carries; the report goes to stderr.

    With --all it rotates many applications, --parallelism at a time: every one whose key this
    machine delivered, or those tagged --environment NAME, or the APPs named; with --older-than,
    only those whose oldest ACTIVE key is older (a rotation left pending is finished whatever
    the age; an application with no ACTIVE key is left alone). One failing application does not
    stop the others, and running the same command again finishes what was left. A nightly job:
    see docs/rotation.md. With --canary N, N due applications go first and each must show its
    workers running the new key (their supervisors or agents on this machine report it) before the
    rest are rotated; then the first failure stops the job, the others untouched and listed.

    \b
    Exit codes: 0 rotated (or an interrupted rotation finished), 2 bad usage, 7 a key to retire
    has no successor where it was delivered, 10 a store could
    not be written (the old key stays ACTIVE; rerun to finish), 11 the new key failed
    verification (the old key stays ACTIVE), 12 another rotation of APP is running;
    other failures as listed in 'provision --help'. With --all: 0 when every application was
    rotated or was not due, else the exit code of the first failed application in the report
    (sorted by name); 3 when this machine delivered no key on the server.

    \b
    Examples:
      provision keys rotate greetings-worker
      provision keys rotate greetings-worker --grace 0s --json
      provision keys rotate greetings-worker --store env-file:./worker.env --switch-wait 5s
      provision keys rotate --all --older-than 30d --json
      provision keys rotate --all --environment staging --parallelism 8
      provision keys rotate --all --older-than 30d --canary 2
    """
    if all_:
        _rotate_all(apps, older_than=older_than, environment=environment, parallelism=parallelism, grace=grace,
                    store_specs=store_specs, switch_wait=switch_wait, start_over=start_over,
                    retire_undelivered=retire_undelivered, canary=canary or 0, canary_wait=canary_wait)
        return
    for given, name in ((older_than, "--older-than"), (environment, "--environment"), (parallelism, "--parallelism"),
                        (canary, "--canary")):
        if given is not None:
            raise UsageError(f"{name} chooses among many applications: it needs --all",
                             "add --all, e.g. 'provision keys rotate --all --older-than 30d'")
    if len(apps) != 1:
        raise UsageError("missing argument 'APP'" if not apps else
                         f"{len(apps)} applications named: rotating several needs --all",
                         "name one application, or add --all ('provision keys rotate --all' rotates every "
                         "application whose key this machine delivered)")
    _rotate_one(apps[0], grace=grace, store_specs=store_specs, switch_wait=switch_wait, start_over=start_over,
                retire_undelivered=retire_undelivered)


def _rotate_one(app: str, *, grace: timedelta, store_specs: tuple[str, ...], switch_wait: timedelta,
                start_over: bool, retire_undelivered: bool) -> None:
    from orkes_provision.cli.context import hint_options, make_client, resolve_server_credentials
    from orkes_provision.credentials.delivery import Hints
    from orkes_provision.credentials.stores import open_store
    from orkes_provision.rotation.rotate import rotate_key

    if "json" in (s.strip() for s in store_specs) and opts().json:
        raise UsageError("--store json prints the new secret on stdout, where --json prints the report",
                         "use one of the two")

    credentials = resolve_server_credentials()
    with make_client(credentials) as client:
        report = rotate_key(client, server=credentials.server, app=app, store_specs=store_specs or None,
                            grace=grace, switch_wait=switch_wait.total_seconds(), actor=credentials.key_id,
                            opener=open_store, on_step=in_command(info), start_over=start_over,
                            retire_undelivered=retire_undelivered,
                            hints=Hints(app=app, options=hint_options()))
    if any(d["store"] == "json" for d in report.delivered):
        # stdout carries the new key's JSON alone, so that '| jq' or a secret manager reads only that.
        info(render_rotation(report))
        return
    emit(report.to_dict(), lambda: render_rotation(report))


def _rotate_all(apps: tuple[str, ...], *, older_than: timedelta | None, environment: str | None,
                parallelism: int | None, grace: timedelta, store_specs: tuple[str, ...], switch_wait: timedelta,
                start_over: bool, retire_undelivered: bool, canary: int, canary_wait: timedelta) -> None:
    from orkes_provision.cli.context import hint_options, make_client, resolve_server_credentials
    from orkes_provision.rotation.fleet import rotate_fleet, select_applications

    if store_specs:
        raise UsageError("--store names the stores of one application; with --all each application's key goes "
                         "where it was delivered", "leave out --store, or rotate that application alone")
    if start_over:
        raise UsageError("--start-over discards one application's interrupted rotation; with --all those are "
                         "finished", "leave out --start-over, or use it on that application alone")
    if apps and environment:
        raise UsageError("name applications or give --environment, not both", "use one of the two")
    credentials = resolve_server_credentials()
    with make_client(credentials) as client:
        selection = select_applications(client, credentials.server, names=apps, environment=environment)
        report = rotate_fleet(client, server=credentials.server, selection=selection, older_than=older_than,
                              parallelism=parallelism or DEFAULT_PARALLELISM, grace=grace,
                              switch_wait=switch_wait.total_seconds(), actor=credentials.key_id,
                              retire_undelivered=retire_undelivered,
                              on_step=in_command(lambda app, line: info(f"{app}: {line}")),
                              hint_options=hint_options(), canary=canary,
                              canary_wait=canary_wait.total_seconds())
    emit(report.to_dict(), report.render)
    failure = report.failure()
    if failure is not None:
        raise failure


@click.command("prune")
@click.argument("app", type=APP_NAME)
@click.option("--grace", type=AGE, default="15m", show_default=True, metavar="DURATION",
              help="Delete keys INACTIVE for longer than this (0s: every INACTIVE key).")
@common_options
def prune(app: str, grace: timedelta) -> None:
    """Delete APP's keys that have been INACTIVE for longer than --grace.

    ACTIVE keys are never touched. Orkes records no deactivation time: keys this tool deactivated
    count from then, any other INACTIVE key from when this tool first saw it. Exits 0 whether or
    not a key was deleted; the report says which were and which are still waiting.

    \b
    Examples:
      provision keys prune greetings-worker
      provision keys prune greetings-worker --grace 0s --json
    """
    from orkes_provision.cli.context import make_client, resolve_server_credentials
    from orkes_provision.rotation.rotate import prune_keys

    credentials = resolve_server_credentials()
    with make_client(credentials) as client:
        report = prune_keys(client, server=credentials.server, app=app, grace=grace,
                            actor=credentials.key_id)
    emit(report.to_dict(), lambda: render_prune(report))


def render_rotation(report: RotationReport) -> str:
    verb = "Finished the interrupted rotation" if report.resumed_from else "Rotated the key"
    lines = [
        f"{verb} of {report.app} ({report.app_id}) on {report.server}",
        f"Old key(s):   {', '.join(report.old_key_ids) or 'none'}",
        f"New key:      {report.new_key_id} (verified)",
        "Delivered to: " + "; ".join(d["description"] for d in report.delivered),
    ]
    for skipped in report.skipped:
        lines.append(f"Not delivered to {skipped['store']}: {skipped['reason']}")
    if report.switch_wait > 0:
        lines.append(f"Switch wait:  {report.switch_waited:.1f}s of {report.switch_wait:g}s")
    lines.append(f"Deactivated:  {', '.join(report.deactivated) or 'none'}")
    lines += _prune_lines(report.pruned)
    if report.other_active_keys:
        lines.append(f"Note: other ACTIVE keys remain (created during the rotation?): "
                     f"{', '.join(report.other_active_keys)}")
    return "\n".join(lines)


def render_prune(report: PruneReport) -> str:
    return "\n".join([f"Pruned the keys of {report.app} ({report.app_id}) on {report.server}", *_prune_lines(report)])


def _prune_lines(report: PruneReport) -> list[str]:
    lines = [f"Deleted:      {', '.join(report.deleted) or 'none'}"]
    for pending in report.pending:
        lines.append(f"Kept:         {pending.key_id} (INACTIVE since "
                     f"{pending.inactive_since.isoformat(timespec='seconds')}; deleted by "
                     f"'provision keys prune {report.app}' after {pending.delete_after.isoformat(timespec='seconds')})")
    return lines
