"""The README's promises that code can check: the exit-code table and the two set-up commands."""

from __future__ import annotations

import re
from pathlib import Path

from orkes_provision.errors import EXIT_CODES

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_exit_code_table_matches_the_code() -> None:
    section = README.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", section, flags=re.MULTILINE))
    assert {int(k): v for k, v in rows.items()} == EXIT_CODES


def test_readme_gives_the_two_setup_commands_and_ci_runs_the_test_one() -> None:
    setup = README.split("## Set up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    block = setup.split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "\nmake test\n" in ci


def test_readme_project_file_example_is_valid(tmp_path: Path) -> None:
    from orkes_provision.workers.project import load_project

    section = README.split("## Workers:", 1)[1].split("\n## ", 1)[0]
    example = section.split("```toml", 1)[1].split("```", 1)[0]
    (tmp_path / "orkes-provision.toml").write_text(example)
    project = load_project(tmp_path / "orkes-provision.toml")
    assert project is not None
    assert project.app_name == "greetings-worker"
    assert [w.name for w in project.workers] == ["greetings"]
