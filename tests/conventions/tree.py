"""The command tree as ``provision --help`` shows it: every command and subcommand, with its help."""

from __future__ import annotations

from dataclasses import dataclass

import click

from orkes_provision.cli import cli


@dataclass(frozen=True)
class Node:
    """A command or a group; ``path`` is what follows ``provision`` (``keys rotate``, ``''`` for the root)."""

    path: str
    command: click.Command
    parent: click.Group | None

    @property
    def is_group(self) -> bool:
        return isinstance(self.command, click.Group)

    @property
    def runs_alone(self) -> bool:
        """A command, or a group that also runs without a subcommand (``provision sandbox``)."""
        return not self.is_group or bool(getattr(self.command, "invoke_without_command", False))

    @property
    def argv(self) -> list[str]:
        return self.path.split()

    def help_text(self) -> str:
        """The --help output, rendered by click as the CLI renders it."""
        ctx = click.Context(self.command, info_name=f"provision {self.path}".strip())
        return self.command.get_help(ctx)

    def option_names(self) -> set[str]:
        return {name for p in self.command.params if isinstance(p, click.Option) for name in p.opts}

    def options(self) -> list[click.Option]:
        return [p for p in self.command.params if isinstance(p, click.Option)]


def walk() -> list[Node]:
    """The root, then every command and subcommand, depth first, in --help order."""
    nodes: list[Node] = []

    def visit(path: str, command: click.Command, parent: click.Group | None) -> None:
        nodes.append(Node(path, command, parent))
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None, f"{path} {name}: listed but not loadable"
                visit(f"{path} {name}".strip(), sub, command)

    visit("", cli, None)
    return nodes


def commands() -> list[Node]:
    """Every command and subcommand (the root excluded)."""
    return [n for n in walk() if n.path]


def leaves() -> list[Node]:
    """Every command that runs something: not a group, or a group that also runs alone."""
    return [n for n in walk() if n.path and n.runs_alone]
