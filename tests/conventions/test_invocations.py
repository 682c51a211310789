"""Two invocations in one process share no options: the global options live on click's context."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from orkes_provision.cli import cli


def test_json_given_to_one_command_does_not_make_the_next_command_in_the_process_print_json(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    runner = CliRunner()

    first = runner.invoke(cli, ["--json", "audit"], env=env)
    second = runner.invoke(cli, ["audit"], env=env)

    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == []
    assert second.exit_code == 0, second.output
    assert second.stdout.startswith("No audit entries in "), second.stdout

