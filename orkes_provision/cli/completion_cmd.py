"""``provision completion``: the shell completion script, so that no one has to know click's variable."""

from __future__ import annotations

import click

SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish).

    Load it once per shell, or install it where the shell looks for completions. It completes
    commands, subcommands and options, and asks provision itself, so it follows upgrades.

    \b
    Examples:
      eval "$(provision completion bash)"       # this bash session; put it in ~/.bashrc to keep it
      provision completion zsh > "${fpath[1]}/_provision"
      provision completion fish > ~/.config/fish/completions/provision.fish
    """
    from click.shell_completion import get_completion_class

    root = click.get_current_context().find_root().command
    completer = get_completion_class(shell)
    assert completer is not None  # every name in SHELLS has one
    click.echo(completer(root, {}, "provision", "_PROVISION_COMPLETE").source())
