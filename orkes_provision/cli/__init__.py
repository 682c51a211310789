"""The ``provision`` command: parse, call the library, render.

Subcommands are imported lazily so that ``provision --help`` stays as fast as ``import click``.
This package is the one place where errors become exit codes.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import click

from orkes_provision import __version__
from orkes_provision.cli.common import GlobalOptions, ProvisionGroup, common_options, report_error
from orkes_provision.errors import Interrupted, ProvisionError, UsageError

# name -> "module:attribute"; kept sorted as it reads in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "agent": ("orkes_provision.cli.agent_cmd:agent", "Serve workers on loopback, holding the application's key."),
    "app": ("orkes_provision.cli.app_cmd:app", "Create or update an application so a worker can run."),
    "apps": ("orkes_provision.cli.apps_cmd:apps", "List, show and delete applications."),
    "apply": ("orkes_provision.cli.env_cmd:apply", "Apply an environment file to the server."),
    "audit": ("orkes_provision.cli.audit_cmd:audit", "Show the local audit log of provisioning actions."),
    "completion": ("orkes_provision.cli.completion_cmd:completion", "Print the shell completion script."),
    "deploy": ("orkes_provision.cli.deploy_cmd:deploy", "Render or apply worker deployments (Kubernetes)."),
    "doctor": ("orkes_provision.cli.doctor_cmd:doctor", "Explain why a worker or starter would get 401 or 403."),
    "drift": ("orkes_provision.cli.drift_cmd:drift", "Report what differs between the server and an environment file."),
    "explain": ("orkes_provision.cli.doctor_cmd:explain",
                "Explain how an application holds what its workers and starters need."),
    "export": ("orkes_provision.cli.export_cmd:export", "Write the server's environment as an environment file."),
    "grant": ("orkes_provision.cli.grant_cmd:grant", "Grant an application access to tasks or workflows."),
    "init": ("orkes_provision.cli.init_cmd:init", "Scaffold a worker project."),
    "keys": ("orkes_provision.cli.keys_cmd:keys", "Manage an application's access keys."),
    "lint": ("orkes_provision.cli.lint_cmd:lint", "Least-privilege findings in environment and project files."),
    "login": ("orkes_provision.cli.login_cmd:login", "Store provisioning credentials for a profile."),
    "plan": ("orkes_provision.cli.env_cmd:plan", "Show what applying an environment file would change."),
    "probe": ("orkes_provision.cli.probe_cmd:probe", "Check what the server really does, for what the tool relies on."),
    "revoke": ("orkes_provision.cli.grant_cmd:revoke", "Revoke an application's access to tasks or workflows."),
    "run": ("orkes_provision.cli.run_cmd:run", "Run a worker command with credentials injected."),
    "sandbox": ("orkes_provision.cli.sandbox_cmd:sandbox", "Run, stop or check the local Orkes-compatible server."),
    "schema": ("orkes_provision.cli.env_cmd:schema", "Print the JSON Schema of the environment file."),
    "token": ("orkes_provision.cli.token_cmd:token", "Print a short-lived token for an application's key."),
    "worker": ("orkes_provision.cli.run_cmd:worker", "Run workers declared in the project file."),
}


class LazyGroup(ProvisionGroup):
    """A group whose subcommands are imported only when they are run."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if _available(name))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None or not _available(cmd_name):
            return None
        module_name, attr = target[0].split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help comes from COMMANDS so that --help imports no subcommand module.
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _available(name: str) -> bool:
    module_name = COMMANDS[name][0].split(":")[0]
    return importlib.util.find_spec(module_name) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="provision")
@common_options
def cli(**_: Any) -> None:
    """Automate Orkes Conductor access control and worker deployment.

    \b
    Example, from nothing to a running worker:
      provision app --worker --grant greetings
      provision run -- python3 main.py

    Credentials come from --server and the CONDUCTOR_SERVER_URL, CONDUCTOR_AUTH_KEY and
    CONDUCTOR_AUTH_SECRET variables, else from the profile stored by 'provision login'.
    '--profile sandbox' uses the local sandbox server with no set-up.

    \b
    Each request gives up after --timeout seconds, retries included (default 30):
      provision --timeout 10 apps list
    """
    from orkes_provision import progress
    from orkes_provision.cli.common import WAITS

    previous = progress.set_reporter(WAITS)
    click.get_current_context().call_on_close(lambda: progress.set_reporter(previous))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and map every outcome to its exit code.

    Every failure, the parser's included, is one ``error:`` and one ``hint:`` line on stderr, or
    one JSON object on stdout under --json; its exit code is the one docs/exit-codes.md lists.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    # The options live on the root context; this invocation keeps a hold of them to report a
    # failure after click has closed its contexts.
    options = GlobalOptions()
    try:
        rv = cli.main(args=args, prog_name="provision", standalone_mode=False, obj=options)
    except ProvisionError as err:
        _fail(err, args, options)
    except (click.exceptions.Abort, KeyboardInterrupt):
        _fail(Interrupted("interrupted"), args, options)
    except click.UsageError as err:
        if _is_help(err) and not _json_requested(args) and not options.json:
            err.show()  # a group run without a command: its help, as click shows it
            sys.exit(err.exit_code)
        _fail(_from_click(err), args, options, exit_code=err.exit_code)
    except click.ClickException as err:
        _fail(UsageError(_sentence(err.format_message())), args, options, exit_code=err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except BrokenPipeError:
        sys.exit(1)
    if isinstance(rv, int):
        sys.exit(rv)


def _fail(err: ProvisionError, args: list[str], options: GlobalOptions, exit_code: int | None = None) -> None:
    if not options.json and _json_requested(args):
        # The parser failed before it read --json; the user still asked for JSON.
        options.json = True
    if exit_code is not None:
        err.exit_override = exit_code
    corrected = _corrected_command(args, err.corrections)
    if corrected is not None:
        err.hint = f"did you mean: {corrected}"
    report_error(err, options)
    sys.exit(err.code)


def _corrected_command(args: list[str], corrections: dict[str, str]) -> str | None:
    """The command line with each typo the library found replaced by what was meant (the worker command
    after ``--`` left alone); ``None`` when a typo is not on the command line (it came from a file)."""
    import shlex

    if not corrections:
        return None
    end = args.index("--") if "--" in args else len(args)
    fixed, seen = [], set()
    for i, word in enumerate(args):
        option, eq, value = word.partition("=") if word.startswith("--") else ("", "", word)
        if i < end and value in corrections:
            seen.add(value)
            word = f"{option}{eq}{corrections[value]}"
        fixed.append(word)
    return shlex.join(["provision", *fixed]) if seen == set(corrections) else None


def _json_requested(args: list[str]) -> bool:
    return "--json" in (args[:args.index("--")] if "--" in args else args)


def _from_click(err: click.UsageError) -> UsageError:
    """A parser error as one ``error:`` line and a ``hint:`` with the usage and where to find help."""
    from orkes_provision.cli.common import NoSuchCommand

    ctx = err.ctx
    where = f"'{ctx.command_path} --help'" if ctx is not None else "'provision --help'"
    if _is_help(err) or err.message == "Missing command.":
        return UsageError("no command given", f"{where} lists the commands")
    if isinstance(err, NoSuchCommand):
        lead = f"did you mean {err.suggestion}? " if err.suggestion else ""
        return UsageError(f"no such command '{err.name}'", f"{lead}{where} lists the commands")
    usage = ctx.get_usage().strip().removeprefix("Usage: ") if ctx is not None else ""
    return UsageError(_sentence(err.format_message()), f"usage: {usage}; see {where}" if usage else f"see {where}")


def _is_help(err: click.UsageError) -> bool:
    # click 8.2+ raises this for a group run without a command; its message is the whole help.
    return type(err).__name__ == "NoArgsIsHelpError"


def _sentence(message: str) -> str:
    message = " ".join(message.split()).rstrip(".")
    return message[:1].lower() + message[1:] if message[1:2].islower() else message
