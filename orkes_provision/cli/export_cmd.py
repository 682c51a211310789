"""``provision export``: write the server's current environment as an environment file.

The work is in ``orkes_provision.environments.export``; this command parses flags, writes and reports.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from orkes_provision.cli.common import common_options, emit, opts

DEFAULT_PARALLELISM = 16
MAX_PARALLELISM = 64


@click.command("export")
@click.option("-o", "--output", "output", metavar="FILE",
              help="Write the environment file here (workflow JSON files go to workflows/ beside it); "
                   "default: print it, and write workflow files to ./workflows/.")
@click.option("--name", metavar="ENV",
              help="The environment's name; default: the environment its applications are tagged with "
                   "by apply, else the server's host name.")
@click.option("--application", "applications", multiple=True, metavar="NAME",
              help="Only this application (repeatable), and the definitions its grants name; no users or groups.")
@click.option("--tag", "tags", multiple=True, metavar="KEY:VALUE",
              help="Only applications carrying this tag (repeatable: all must match), and the definitions "
                   "their grants name.")
@click.option("--parallelism", type=click.IntRange(1, MAX_PARALLELISM), default=DEFAULT_PARALLELISM,
              show_default=True, help="Requests in flight at most.")
@click.option("--force", is_flag=True,
              help="Replace workflow files export did not write (hand-written, or edited since it wrote them).")
@common_options
def export(output: str | None, name: str | None, applications: tuple[str, ...], tags: tuple[str, ...],
           parallelism: int, force: bool) -> None:
    """Write the server's task and workflow definitions, applications (roles, grants), users and
    groups (roles, members, grants) as an environment file that 'provision plan -f FILE' finds
    nothing to do for.

    Keys and secrets are never read or written. Applications this environment's tags do not mark
    as its own are written 'owned = false' (apply then leaves their tags alone and --prune never
    touches them). What the file cannot hold is listed as skipped, with the reason. Exporting over
    an existing FILE keeps its name and its applications' stores and keyMaxAge, and says what it
    replaces. A workflow file export did not write (a hand-written workflows/order.json) is never
    replaced without --force: export stops before writing anything and names it (exit 7).

    \b
    Examples:
      provision export -o staging.toml --name staging
      provision export --application greetings-worker > greetings.toml
      provision export --tag environment:staging -o staging.toml --json
    """
    from orkes_provision.cli.context import hint_options, make_client, resolve_server_credentials
    from orkes_provision.environments.export import export_environment, export_target, previous_export

    target = export_target(output)
    previous = previous_export(target, on_replaced=lambda err: _warn(
        f"{err.message}; it is replaced, and nothing in it is kept",
        {"warning": "replaced", "file": str(target), "reason": err.message}))
    credentials = resolve_server_credentials()
    with make_client(credentials) as client:
        result = export_environment(client, server=credentials.server, name=name or previous.name,
                                    applications=applications, tags=tags, self_key_id=credentials.key_id,
                                    stores=previous.stores, key_max_ages=previous.key_max_ages,
                                    parallelism=parallelism)
    # Without -o the file goes to stdout, as if saved in the current directory: its workflows go to ./workflows/.
    written = result.write(target, force=force) if target is not None else \
        result.write_workflows(Path.cwd(), force=force)
    if previous.replaces is not None:
        _warn(previous.replaces, {"warning": "replaced", "file": str(target), "reason": previous.replaces})
    if target is None and not opts().json:
        for path in written:
            click.echo(f"wrote {path}", err=True)
    for skipped in result.skipped:
        _warn(f"skipped {skipped.what}: {skipped.reason}", {"warning": "skipped"} | skipped.to_dict())
    summary = result.summary(narrowed=bool(applications or tags))
    data = result.to_dict() | {"file": str(target) if target else None, "written": [str(p) for p in written]}
    if target is not None:
        check = shlex.join(["provision", *hint_options(), "plan", "-f", str(target), "--detailed-exitcode"])
        emit(data, f"{summary}\nWrote {target}" + "".join(f"\n  {p}" for p in written[:-1])
             + f"\nPlanning it finds nothing to do (exit 0). Next: {check}")
    elif opts().json:
        emit(data | {"content": result.toml()})
    else:
        click.echo(result.toml(), nl=False)
        click.echo(summary, err=True)


def _warn(text: str, data: dict[str, str]) -> None:
    import json

    if opts().json:
        click.echo(json.dumps(data, sort_keys=True), err=True)
    else:
        click.echo(f"warning: {text}", err=True)
