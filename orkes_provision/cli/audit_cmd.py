"""``provision audit``: what this tool did, from the local audit log, and ``audit verify`` of its hash chain."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from orkes_provision.cli.common import ProvisionGroup, command_options, emit


@click.group("audit", cls=ProvisionGroup, invoke_without_command=True)
@click.option("--since", metavar="WHEN", help="Only entries newer than a duration ago (15m, 2h, 7d) or an ISO time.")
@command_options(server=False, verbose=False)
@click.pass_context
def audit(ctx: click.Context, since: str | None) -> None:
    """Show the local audit log: every provisioning and rotation action (key ids, never secrets).

    The log is $XDG_STATE_HOME/orkes-provision/audit.log, one JSON line per action, each carrying
    the hash of the one before ('provision audit verify' checks the chain). With --json the
    records are one JSON array, for a log pipeline.

    \b
    Examples:
      provision audit --since 1h
      provision audit --since 2026-11-01T00:00:00+00:00 --json
      provision audit verify
    """
    if ctx.invoked_subcommand is not None:
        return
    from orkes_provision import audit as audit_log

    entries = list(audit_log.read(_since(since)))

    def text() -> str:
        if not entries:
            return f"No audit entries in {audit_log.audit_path()}."
        return "\n".join(
            f"{e['time']}  {e['action']:<18} {e.get('result', '?')!s:<8} {e.get('app') or '-'}  {e.get('target', '?')}"
            + (f"  key {e['keyId']}" if e.get("keyId") else "") for e in entries)

    emit(entries, text)


@audit.command("verify")
@command_options(server=False, verbose=False)
def verify() -> None:
    """Check the audit log's hash chain: exit 1 naming the first edited, deleted, inserted or moved line.

    Each record carries the hash of the one before it (the first chains to a fixed genesis), so a
    change anywhere breaks the chain at that line. Lines written before the chain existed are
    reported as such. The head hash printed on success detects a cut-off tail when kept elsewhere.

    \b
    Examples:
      provision audit verify
      provision audit verify --json
    """
    from orkes_provision import audit as audit_log
    from orkes_provision.errors import AuditTampered

    result = audit_log.verify()
    emit(result.to_dict(), result.render if result.ok else None)
    if not result.ok:
        raise AuditTampered(f"{result.path}:{result.bad_line}: {result.problem}",
                            "the log was changed after it was written: compare it with a backup, and keep this "
                            "copy as evidence; new records keep chaining to the last line")


def _since(value: str | None) -> datetime | None:
    from orkes_provision.durations import parse_duration
    from orkes_provision.errors import UsageError

    if value is None:
        return None
    if value[:1].isdigit() and value[-1:].isalpha() and len(value) <= 8:
        return datetime.now(UTC) - parse_duration(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--since '{value}' is neither a duration nor an ISO time",
                         "use 15m, 2h, 7d or 2026-11-01T00:00:00+00:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
