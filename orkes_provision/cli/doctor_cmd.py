"""``provision doctor``: why would a worker get 401 or 403?"""

from __future__ import annotations

import click

from orkes_provision.cli.common import APP_NAME, TASK_NAME, common_options, emit


@click.command("doctor")
@click.argument("app", required=False, type=APP_NAME)
@click.option("--task", "tasks", multiple=True, metavar="TASK", type=TASK_NAME,
              help="A task the worker polls (repeatable; default: the project file's, else the app's granted tasks).")
@click.option("--store", "store_spec", metavar="SPEC",
              help="Where the worker's key is: keyring (default), env-file:PATH.")
@common_options
def doctor(app: str | None, tasks: tuple[str, ...], store_spec: str | None) -> None:
    """Explain why a worker of APP would be refused, and how to fix each problem.

    Checks the server, the stored key (known, ACTIVE, accepted), the WORKER role, each task
    definition and EXECUTE on it. Exits 0 when all pass, 11 when something is wrong.

    \b
    Examples:
      provision doctor greetings-worker --task greetings
      provision doctor --store env-file:./worker.env --json
    """
    from orkes_provision.access.doctor import diagnose
    from orkes_provision.access.state import find_application, read_app_state
    from orkes_provision.cli.app_cmd import default_app_name
    from orkes_provision.cli.context import make_client, resolve_server_credentials
    from orkes_provision.credentials.stores import open_store
    from orkes_provision.errors import ProvisionError, StoreError, VerificationFailed
    from orkes_provision.workers.project import load_project, store_spec_for

    name, _ = default_app_name(app, tasks)
    credentials = resolve_server_credentials()
    try:
        key = open_store(store_spec_for(store_spec, load_project())).load(credentials.server, name)
    except StoreError:
        key = None
    with make_client(credentials) as client:
        task_list = list(tasks) or _default_tasks()
        if not task_list:
            try:
                held = read_app_state(client, find_application(client, name)).grants
                task_list = sorted(i for (t, i) in held if t == "TASK_DEF")
            except ProvisionError:  # diagnose reports a missing or ambiguous app itself
                task_list = []
        report = diagnose(client, app=name, tasks=task_list, key=key, server=credentials.server)
    emit(report.to_dict(), report.render)
    if not report.ok:
        first = report.problems[0]
        raise VerificationFailed(f"{len(report.problems)} problem(s) found; first: {first.problem}",
                                 first.fix or "see the report above")


def _default_tasks() -> list[str]:
    from orkes_provision.workers.project import load_project

    project = load_project()
    if project is None or project.application is None:
        return []
    return list(project.application.grants)
