"""``provision init``: scaffold a worker project from a template."""

from __future__ import annotations

from pathlib import Path

import click

from orkes_provision.cli.common import APP_NAME, command_options, emit
from orkes_provision.workers.scaffold import LANGUAGES


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--lang", "language", type=click.Choice(LANGUAGES), default="python", show_default=True,
              help="The worker's language (its official Conductor SDK).")
@click.option("--app", "app_name", default=None, metavar="NAME", type=APP_NAME,
              help="The application the worker runs as (written to orkes-provision.toml); default: named after "
                   "DIRECTORY (greetings -> greetings-worker), so that two projects never share one.")
@click.option("--force", is_flag=True, help="Write into a directory that is not empty (template files are replaced).")
@command_options(server=False, verbose=False)
def init(directory: Path, language: str, app_name: str | None, force: bool) -> None:
    """Create a worker project in DIRECTORY: a 'greetings' worker, orkes-provision.toml, a README.

    The worker polls the task 'greetings' (input 'name', output 'greeting': 'Hello, <name>') with
    the language's official SDK. The project file names the application and the worker command,
    so that 'provision app' and 'provision worker run greetings' need no arguments there.

    \b
    Example:
      provision init --lang python greetings && cd greetings
      provision app --register-tasks
      provision worker run greetings
    """
    from orkes_provision.workers.scaffold import scaffold

    result = scaffold(language, directory, app=app_name, force=force)

    def text() -> str:
        lines = [f"Created a {language} worker project in {directory} (application {result.app}):"]
        lines += [f"  {path.relative_to(directory)}" for path in result.files]
        lines += ["Next:"] + [f"  {step}" for step in result.next_steps]
        return "\n".join(lines)

    emit(result.to_dict(), text)
