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
from orkes_provision.cli.common import GlobalOptions, common_options, report_error
from orkes_provision.errors import ProvisionError

# name -> "module:attribute"; kept sorted as it reads in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "app": ("orkes_provision.cli.app_cmd:app", "Create or update an application so a worker can run."),
    "apps": ("orkes_provision.cli.apps_cmd:apps", "List, show and delete applications."),
    "apply": ("orkes_provision.cli.env_cmd:apply", "Apply an environment file to the server."),
    "audit": ("orkes_provision.cli.audit_cmd:audit", "Show the local audit log of provisioning actions."),
    "deploy": ("orkes_provision.cli.deploy_cmd:deploy", "Render or apply worker deployments (Kubernetes)."),
    "doctor": ("orkes_provision.cli.doctor_cmd:doctor", "Explain why a worker would get 401 or 403."),
    "grant": ("orkes_provision.cli.grant_cmd:grant", "Grant an application access to tasks or workflows."),
    "init": ("orkes_provision.cli.init_cmd:init", "Scaffold a worker project."),
    "keys": ("orkes_provision.cli.keys_cmd:keys", "Manage an application's access keys."),
    "login": ("orkes_provision.cli.login_cmd:login", "Store provisioning credentials for a profile."),
    "plan": ("orkes_provision.cli.env_cmd:plan", "Show what applying an environment file would change."),
    "revoke": ("orkes_provision.cli.grant_cmd:revoke", "Revoke an application's access to tasks or workflows."),
    "run": ("orkes_provision.cli.run_cmd:run", "Run a worker command with credentials injected."),
    "sandbox": ("orkes_provision.cli.sandbox_cmd:sandbox", "Run the local Orkes-compatible server."),
    "schema": ("orkes_provision.cli.env_cmd:schema", "Print the JSON Schema of the environment file."),
    "worker": ("orkes_provision.cli.run_cmd:worker", "Run workers declared in the project file."),
}


class LazyGroup(click.Group):
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


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and map every failure to its exit code."""
    try:
        rv = cli.main(args=argv, prog_name="provision", standalone_mode=False)
    except ProvisionError as err:
        report_error(err, GlobalOptions.current())
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except BrokenPipeError:
        sys.exit(1)
    if isinstance(rv, int):
        sys.exit(rv)
