"""``provision probe``: what the current server does, for each behaviour the tool relies on."""

from __future__ import annotations

from pathlib import Path

import click

from orkes_provision.cli.common import common_options, emit, in_command, info, opts, terminal_safe


@click.command("probe")
@click.option("--record", "record_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Also record the run and the wire scenarios as scrubbed cassettes in DIR (no secret, no token).")
@common_options
def probe(record_dir: Path | None) -> None:
    """Check what the server really does, with the provisioning credentials (an ADMIN key).

    It creates only objects named orkes-provision-probe-*, removes all of them at the end (also
    after Ctrl-C or a failure; a rerun first removes what a killed run left) and prints one line
    per behaviour: duplicate application names, keys per application, whether deactivating a key
    ends its tokens, whether a WORKER key may search tasks or read its own permissions, the shape
    of tag grants, the token endpoint's answers to a wrong key id and secret, groups holding
    applications, the IN_PROGRESS hand-back of a task, poll data, Retry-After on 429. What the tool
    acts on is remembered for this server (servers.json in the state directory).

    \b
    Examples:
      provision --profile sandbox probe
      provision probe --json | jq '.observations[] | select(.observed != "yes")'
      provision probe --record ./cassettes-orkes     # cassettes anyone can replay
    """
    from orkes_provision.cli.context import make_client, resolve_server_credentials
    from orkes_provision.probe import Observation, run_probe

    credentials = resolve_server_credentials()

    @in_command
    def show(observation: Observation) -> None:
        if not opts().json:
            click.echo(terminal_safe(observation.line(), one_line=True))

    report = run_probe(credentials, make_client, on_observation=show)
    if opts().json:
        emit(report.to_dict())
    elif report.removed_before:
        info(f"removed {len(report.removed_before)} object(s) an earlier probe left behind")
    if report.left:
        info(f"could not remove: {', '.join(report.left)}; the next 'provision probe' tries again")
    if record_dir is not None:
        from orkes_provision.probe.record import record_cassettes

        recorded = record_cassettes(credentials, record_dir)
        for line in recorded.lines():
            info(terminal_safe(line, one_line=True))
        failure = recorded.error()
        if failure is not None:
            raise failure
