"""``provision audit``: what this tool did, from the local audit log."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from orkes_provision.cli.common import command_options, emit


@click.command("audit")
@click.option("--since", metavar="WHEN", help="Only entries newer than a duration ago (15m, 2h, 7d) or an ISO time.")
@command_options(server=False, verbose=False)
def audit(since: str | None) -> None:
    """Show the local audit log: every provisioning and rotation action (key ids, never secrets).

    The log is $XDG_STATE_HOME/orkes-provision/audit.log, one JSON line per action.

    \b
    Examples:
      provision audit --since 1h
      provision audit --since 2026-11-01T00:00:00+00:00 --json
    """
    from orkes_provision import audit as audit_log

    entries = list(audit_log.read(_since(since)))

    def text() -> str:
        if not entries:
            return f"No audit entries in {audit_log.audit_path()}."
        return "\n".join(
            f"{e['time']}  {e['action']:<18} {e.get('result', '?')!s:<8} {e.get('app') or '-'}  {e.get('target', '?')}"
            + (f"  key {e['keyId']}" if e.get("keyId") else "") for e in entries)

    emit(entries, text)


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
