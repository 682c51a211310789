"""``provision doctor``: why would a worker or a starter get 401 or 403? ``provision explain``: how an
application holds what its workers and starters need."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from orkes_provision.cli.common import (
    AGE,
    APP_NAME,
    DOMAIN,
    STORE_KINDS,
    TASK_NAME,
    WORKFLOW_NAME,
    common_options,
    emit,
    info,
)

if TYPE_CHECKING:
    from datetime import timedelta

    from orkes_provision.access.doctor import DoctorReport, KeyPolicy


def _needs(task_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--task, --workflow and --domain: what doctor and explain check."""
    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed([
            click.option("--task", "tasks", multiple=True, metavar="TASK", type=TASK_NAME, help=task_help),
            click.option("--workflow", "workflows", multiple=True, metavar="WORKFLOW", type=WORKFLOW_NAME,
                         help="A workflow APP starts (repeatable): checks EXECUTE on it."),
            click.option("--domain", "domains", multiple=True, metavar="DOMAIN", type=DOMAIN,
                         help="A domain the worker polls in (repeatable): a DOMAIN grant counts for these only."),
        ]):
            func = option(func)
        return func
    return apply


def _emit_report(report: DoctorReport, extra: dict[str, Any]) -> None:
    """The report on stdout; a failed check is an error like any other command's: its object is on
    stdout too (in the report, which stays one document), not only on stderr."""
    from orkes_provision.errors import VerificationFailed

    failure = None
    if not report.ok:
        first = report.problems[0]
        failure = VerificationFailed(f"{len(report.problems)} problem(s) found; first: {first.problem}",
                                     first.fix or "see the report above")
    emit(report.to_dict() | extra | (failure.to_dict() if failure else {}), report.render)
    if failure is not None:
        raise failure


@click.command("doctor")
@click.argument("app", required=False, type=APP_NAME)
@_needs("A task the worker polls (repeatable; default: the project file's, else the app's granted tasks).")
@click.option("--store", "store_spec", metavar="SPEC",
              help="Where the worker's key is (default: the project file's, else where this machine delivered "
                   f"it, else the keyring): {STORE_KINDS}.")
@click.option("--max-key-age", type=AGE, default=None, metavar="DURATION",
              help="Warn when an ACTIVE key of APP is older than this (the server's createdAt), e.g. 90d.")
@click.option("-f", "--file", "env_file", metavar="FILE",
              help="An environment file: its keyMaxAge for APP is the key-age policy (--max-key-age wins).")
@common_options
def doctor(app: str | None, tasks: tuple[str, ...], workflows: tuple[str, ...], domains: tuple[str, ...],
           store_spec: str | None, max_key_age: timedelta | None, env_file: str | None) -> None:
    """Explain why a worker or a starter of APP would be refused, and how to fix each problem.

    Checks the server, the stored key (known, ACTIVE, accepted), the WORKER role, each task
    definition and EXECUTE on it, and EXECUTE on each workflow given with --workflow (a
    starter: with only --workflow, no WORKER role is needed). Access is resolved as the server
    does: the application's own grants, its groups', tags, domains and roles ('provision
    explain' shows how each is held). Exits 0 when all pass, 11 when something is wrong.

    For each task it also reads the server's poll data and says which worker polled it last and
    when, or that none did: the first thing to look at when a workflow stays SCHEDULED. That
    line is information, not a failure. Doctor only reads: it starts no workflow and polls no task.

    With a key-age policy (--max-key-age, or keyMaxAge in the environment file -f) it warns when
    an ACTIVE key is older, with the rotate command; a warning does not change the exit code.

    \b
    Examples:
      provision doctor greetings-worker --task greetings
      provision doctor greetings-starter --workflow greetings
      provision doctor --store env-file:./worker.env --json
      provision doctor greetings-worker --max-key-age 90d
      provision doctor greetings-worker -f staging.toml
    """
    from orkes_provision.access.doctor import diagnose
    from orkes_provision.access.state import find_application, read_app_state
    from orkes_provision.cli.context import hint_options, make_client, resolve_server_credentials
    from orkes_provision.credentials.delivery import (
        Choice,
        Hints,
        check_project_server,
        choose_app_name,
        choose_store,
        find_stored_key,
        unknown_application,
    )
    from orkes_provision.credentials.stores import open_store
    from orkes_provision.errors import ProvisionError, StoreError
    from orkes_provision.workers.project import load_project

    project = load_project()
    defaults = project.defaults() if project is not None else None
    name = choose_app_name(app, project=defaults, tasks=tasks).value
    policy = _key_policy(name, max_key_age, env_file)
    credentials = resolve_server_credentials()
    check_project_server(defaults, name, Choice(credentials.server, "the provisioning credentials"))
    choice = choose_store(store_spec, app=name, server=credentials.server, project=defaults)
    if choice.source != "--store":
        info(f"Key store: {choice.value} (from {choice.source})")
    try:
        key = find_stored_key(open_store(choice.value), credentials.server, name)
    except StoreError:
        if unknown_application(name, choice) is None:
            raise
        key = None  # a name nothing here knows: the server says whether it exists, not the keyring
    with make_client(credentials) as client:
        task_list = list(tasks) or (list(project.application.grants) if project and project.application
                                    and project.application.name == name and not workflows else [])
        if not task_list and not workflows:
            try:
                held = read_app_state(client, find_application(client, name)).grants
                task_list = sorted(i for (t, i) in held if t == "TASK_DEF")
            except ProvisionError:  # diagnose reports a missing or ambiguous app itself
                task_list = []
        hints = Hints(app=name, store=choice.value, options=hint_options(), server=credentials.server,
                      tasks=tuple(task_list))
        report = diagnose(client, app=name, tasks=task_list, key=key, server=credentials.server, hints=hints,
                          require_tasks=True, polls=True, key_policy=policy, workflows=list(workflows),
                          domains=domains)
    _agents(report, credentials.server, name, key.key_id if key is not None else None)
    _emit_report(report, {"store": choice.value, "storeSource": choice.source})


@click.command("explain")
@click.argument("app", required=False, type=APP_NAME)
@_needs("A task a worker of APP polls (repeatable).")
@common_options
def explain(app: str | None, tasks: tuple[str, ...], workflows: tuple[str, ...], domains: tuple[str, ...]) -> None:
    """Explain how APP holds what its workers and starters need, or why it would get 403.

    For each task (--task) it says whether APP may poll it (the WORKER role, and EXECUTE on the
    task) and for each workflow (--workflow) whether APP may start it (EXECUTE on the workflow;
    starting needs no READ and no role), and HOW each is held: a role (its own or a group's),
    being the definition's creator, a grant to APP, to one of its groups or to one of its roles,
    a grant on a tag the definition carries, or on a domain (with --domain). What is missing comes
    with the 'provision grant' command that grants it. With neither option, it explains every
    task and workflow APP holds a grant on. Only reads; needs an admin's credentials (the server
    shows grants to admins only). Exits 0 when all is held, 11 when something is missing.

    \b
    Examples:
      provision explain greetings-starter --workflow greetings
      provision explain greetings-worker --task greetings --json
      provision explain greetings-worker --task greetings --domain staging
    """
    from orkes_provision.access.explain import explain as explain_access
    from orkes_provision.access.state import find_application
    from orkes_provision.cli.context import hint_options, make_client, resolve_server_credentials
    from orkes_provision.credentials.delivery import Hints, choose_app_name
    from orkes_provision.workers.project import load_project

    project = load_project()
    defaults = project.defaults() if project is not None else None
    name = choose_app_name(app, project=defaults, tasks=tasks).value
    credentials = resolve_server_credentials()
    with make_client(credentials) as client:
        application = find_application(client, name)
        task_list = list(tasks) or (list(project.application.grants) if not workflows and project
                                    and project.application and project.application.name == name else [])
        report = explain_access(client, application, tasks=task_list, workflows=list(workflows), domains=domains,
                                hints=Hints(app=application.name, options=hint_options()))
    _emit_report(report, {})


def _agents(report: DoctorReport, server: str, app: str, stored_key_id: str | None) -> None:
    """What the credential agents serving ``app`` on this machine say (their registration files)."""
    from orkes_provision.access.doctor import Finding
    from orkes_provision.agent.registry import serving_agents

    for agent in serving_agents(server, app):
        where = f"agent pid {agent.pid} on {agent.url}"
        if agent.refused_key_id:
            report.findings.append(Finding(
                "agent", True, f"{where} refused the new key {agent.refused_key_id} (the server rejects it) and "
                f"serves with key {agent.key_id}", "store a key that works: " + _new_key_hint(app), warning=True))
        elif agent.state != "ready":
            report.findings.append(Finding("agent", True, f"{where} is {agent.state} (key {agent.key_id}): its "
                                           "workers get 503", "see the agent's output", warning=True))
        elif stored_key_id is not None and agent.key_id != stored_key_id:
            report.findings.append(Finding("agent", True, f"{where} serves with key {agent.key_id}, not the stored "
                                           f"key {stored_key_id} (it switches within seconds)", None, info=True))
        else:
            report.findings.append(Finding("agent", True, f"{where} is ready, serving with key {agent.key_id}", None,
                                           info=True))


def _new_key_hint(app: str) -> str:
    import shlex

    return shlex.join(["provision", "app", app, "--new-key"])


def _key_policy(app: str, max_key_age: timedelta | None, env_file: str | None) -> KeyPolicy | None:
    """--max-key-age, else the keyMaxAge the environment file gives APP (``None``: no policy)."""
    from orkes_provision.access.doctor import KeyPolicy
    from orkes_provision.environments.environment import load_environment
    from orkes_provision.errors import UsageError

    if max_key_age is not None:
        if max_key_age.total_seconds() <= 0:
            raise UsageError("--max-key-age must be longer than 0s", "write it like 90d or 12h")
        return KeyPolicy(max_key_age, "--max-key-age")
    if env_file is None:
        return None
    env = load_environment(env_file)
    entry = next((a for a in env.applications if a.name == app), None)
    if entry is None:
        raise UsageError(f"{env.shown} declares no application {app}",
                         "give the environment file that declares it, or --max-key-age DURATION")
    limit = entry.key_max_age_limit
    return KeyPolicy(limit, f"keyMaxAge of {app} in {env.shown}") if limit is not None else None
