"""``provision lint``: least-privilege findings in environment and project files (no server needed).

Exit 0 when clean, 2 when there are findings, 1 on any error (a bad flag or file included).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from orkes_provision.cli.common import command_options, emit, opts, report_error
from orkes_provision.cli.drift_cmd import ExitOneOnUsageError
from orkes_provision.errors import ConfigError, ProvisionError, UsageError, with_problems

if TYPE_CHECKING:
    from orkes_provision.environments.environment import Environment
    from orkes_provision.environments.lint import ProjectDecl


@click.command("lint", cls=ExitOneOnUsageError)
@click.argument("more_paths", nargs=-1, metavar="[FILE]...")
@click.option("-f", "--file", "paths", multiple=True, metavar="FILE",
              help="An environment file, or a project file (orkes-provision.toml); repeatable, and the files "
                   "after it count too (-f a.toml b.toml). Project files tell which tasks each application's "
                   "workers poll.")
@command_options(server=False, verbose=False)
def lint(more_paths: tuple[str, ...], paths: tuple[str, ...]) -> None:
    """Least-privilege findings in environment and project files; reads no server.

    \b
    Rules:
      admin-role              an application (or a group, for every member) holds ADMIN,
                              UNRESTRICTED_WORKER or a *_MANAGER role
      worker-without-execute  a WORKER application has no EXECUTE grant
      wide-grant              a TAG or DOMAIN grant reaches more than the tasks its workers declare
      shared-application      one application serves workers that poll different tasks
      key-without-access      an application gets a key but has neither a role nor a grant
      execute-unused          a WORKER application has EXECUTE on a task no declared workflow uses
      workflow-unexecutable   a declared workflow uses a worker task no application may execute

    Each finding names the rule, FILE:LINE and the narrower alternative. 'plan' and 'apply' print
    the findings of their file as warnings. Exit codes: 0 clean, 2 findings, 1 any error.

    \b
    Examples:
      provision lint -f staging.toml
      provision lint -f staging.toml greetings/orkes-provision.toml --json
    """
    from orkes_provision.environments.lint import RULES
    from orkes_provision.environments.lint import lint as run_lint

    # 'lint -f a b' reads as two files (the README's synopsis: -f FILE...), so the files after -f count.
    paths = paths + more_paths
    try:
        if not paths:
            raise UsageError("no file to lint", "name them: provision lint -f FILE [FILE]...")
        environments, projects = _load_all(paths)
        findings = run_lint(environments, projects)
    except ProvisionError as err:
        err.exit_override = 1  # 2 means "found something" here
        report_error(err, opts())
        raise click.exceptions.Exit(1) from None
    files = [str(p) for p in paths]

    def render() -> str:
        if not findings:
            return f"No findings: {', '.join(files)} follow{'s' if len(files) == 1 else ''} least privilege."
        count = len(findings)
        return "\n".join(f.render() for f in findings) + f"\n{count} finding{'s' if count != 1 else ''}."

    emit({"files": files, "count": len(findings), "findings": [f.to_dict() for f in findings],
          "rules": RULES}, render)
    if findings:
        raise click.exceptions.Exit(2)


def _load_all(paths: tuple[str, ...]) -> tuple[list[Environment], list[ProjectDecl]]:
    from orkes_provision.environments.environment import load_environment
    from orkes_provision.toml.read import parse_toml, read_file
    from orkes_provision.workers.project import PROJECT_FILE, load_project, project_decl

    environments: list[Environment] = []
    projects: list[ProjectDecl] = []
    failed: list[ProvisionError] = []  # every file's problems, listed together: one run shows all to fix
    for raw_path in paths:
        path = Path(raw_path)
        data = parse_toml(read_file(path, raw_path, "file", missing_hint="check the path given to -f",
                                    directory_hint="give an environment or project file (.toml)"), raw_path)
        is_project = path.name == PROJECT_FILE or ("name" not in data and ("application" in data or "workers" in data))
        if is_project:
            project = load_project(path)
            assert project is not None  # a path was given: a missing file raises instead
            projects.append(project_decl(project))
            continue
        try:
            environments.append(load_environment(path))
        except ProvisionError as err:
            if not err.problems:
                raise
            failed.append(err)
    if len(failed) > 1:
        raise with_problems(ConfigError, [p for err in failed for p in err.problems],
                            docs="docs/environment.md documents every key")
    if failed:
        raise failed[0]
    return environments, projects
