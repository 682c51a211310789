"""``provision export``: write the server's current environment as an environment file.

The work is in ``orkes_provision.environments.export``; this command parses flags, writes and reports.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import click

from orkes_provision.cli.common import common_options, emit, opts

if TYPE_CHECKING:
    from orkes_provision.environments.environment import Environment

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
    from orkes_provision.cli.context import make_client, resolve_server_credentials
    from orkes_provision.environments.export import export_environment
    from orkes_provision.errors import UsageError

    target = Path(output) if output else None
    if target is not None and target.is_dir():
        raise UsageError(f"-o {output}: is a directory", "give a file name, e.g. -o staging.toml")
    stores: dict[str, str] = {}
    key_max_ages: dict[str, str] = {}
    replaces = None
    if target is not None and target.is_file():
        previous = _previous(target)
        replaces = _replaces(target, previous)
        if previous is not None:
            # The server knows nothing of stores: re-exporting over the file keeps them, and its name.
            stores = {a.name: a.store for a in previous.applications if a.store}
            key_max_ages = {a.name: a.key_max_age for a in previous.applications if a.key_max_age}
            name = name or previous.name
    credentials = resolve_server_credentials()
    with make_client(credentials) as client:
        result = export_environment(client, server=credentials.server, name=name, applications=applications,
                                    tags=tags, self_key_id=credentials.key_id, stores=stores,
                                    key_max_ages=key_max_ages,
                                    parallelism=parallelism)
    # Without -o the file goes to stdout, as if saved in the current directory: its workflows go to ./workflows/.
    written = result.write(target, force=force) if target is not None else \
        result.write_workflows(Path.cwd(), force=force)
    if replaces is not None:
        _warn(replaces, {"warning": "replaced", "file": str(target), "reason": replaces})
    if target is None and not opts().json:
        for path in written:
            click.echo(f"wrote {path}", err=True)
    for skipped in result.skipped:
        _warn(f"skipped {skipped.what}: {skipped.reason}", {"warning": "skipped"} | skipped.to_dict())
    counts = result.counts()
    parts = [_count(counts["tasks"], "task definition"), _count(counts["workflows"], "workflow"),
             _count(counts["applications"], "application")]
    if not (applications or tags):  # narrowed to applications, the export reads no users or groups
        parts += [_count(counts["users"], "user"), _count(counts["groups"], "group")]
    if result.skipped:
        parts.append(f"{len(result.skipped)} skipped")
    summary = f"Exported environment {result.name} from {result.server}: {', '.join(parts)}."
    data = result.to_dict() | {"file": str(target) if target else None, "written": [str(p) for p in written]}
    if target is None:
        data["content"] = result.toml()
        if opts().json:
            emit(data)
        else:
            click.echo(result.toml(), nl=False)
            click.echo(summary, err=True)
        return
    from orkes_provision.cli.context import hint_options

    check = shlex.join(["provision", *hint_options(), "plan", "-f", str(target), "--detailed-exitcode"])
    emit(data, f"{summary}\nWrote {target}" + "".join(f"\n  {p}" for p in written[:-1])
         + f"\nPlanning it finds nothing to do (exit 0). Next: {check}")


def _previous(path: Path) -> Environment | None:
    from orkes_provision.environments.environment import load_environment
    from orkes_provision.errors import ConfigError

    try:
        return load_environment(path)
    except ConfigError as err:
        _warn(f"{err.message}; it is replaced, and nothing in it is kept",
              {"warning": "replaced", "file": str(path), "reason": err.message})
        return None


def _replaces(path: Path, previous: Environment | None) -> str | None:
    """What exporting over ``path`` replaces, said before it is gone; ``None`` for an unreadable file
    (``_previous`` said so already)."""
    from orkes_provision.environments.written import written_by_export

    if previous is None:
        return None
    counts = {"applications": len(previous.applications), "tasks": len(previous.tasks),
              "workflows": len(previous.workflows)}
    held = ", ".join(f"{n} {what if n != 1 else what[:-1]}" for what, n in counts.items())
    origin = "as export last wrote it" if written_by_export(path) else \
        "which export did not write (or it was edited since): its comments and layout are not kept"
    return f"replaced {path}, environment {previous.name} with {held}, {origin}; its stores and keyMaxAge are kept"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _warn(text: str, data: dict[str, str]) -> None:
    import json

    if opts().json:
        click.echo(json.dumps(data, sort_keys=True), err=True)
    else:
        click.echo(f"warning: {text}", err=True)
