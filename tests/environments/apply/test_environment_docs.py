"""docs/environment.md: every example file is valid, every key is documented, and the users-and-groups
example plans exactly as the page shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from orkes_provision.environments.environment import (
    ApplicationEntry,
    Environment,
    GroupEntry,
    UserEntry,
    load_environment,
)
from orkes_provision.sandbox.harness import SandboxProcess
from tests.environments.apply.helpers import run_ok

DOC = (Path(__file__).resolve().parents[3] / "docs" / "environment.md").read_text()
TOML_BLOCKS = re.findall(r"```toml\n(.*?)```", DOC, flags=re.DOTALL)


def _section(title: str) -> str:
    return DOC.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("example", TOML_BLOCKS, ids=[f"block{i}" for i in range(len(TOML_BLOCKS))])
def test_every_example_file_on_the_page_is_valid(tmp_path: Path, example: str) -> None:
    for workflow in re.findall(r'file = "([^"]+)"', example):
        (tmp_path / workflow).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / workflow).write_text(json.dumps({"name": Path(workflow).stem,
                                                     "tasks": [{"name": "greetings", "taskReferenceName": "g"}]}))
    (tmp_path / "env.toml").write_text(example)
    assert load_environment(tmp_path / "env.toml").name


def test_the_complete_example_declares_every_kind_of_entry() -> None:
    assert len(TOML_BLOCKS) >= 2
    complete = TOML_BLOCKS[0]
    for table in ("[[tasks]]", "[[workflows]]", "[[applications]]", "[[applications.grants]]", "[[users]]",
                  "[[groups]]", "[[groups.grants]]"):
        assert table in complete, table


@pytest.mark.parametrize("model", [Environment, ApplicationEntry, UserEntry, GroupEntry])
def test_every_key_of_the_file_is_in_a_table_of_the_page(model: type[object]) -> None:
    documented = set(re.findall(r"^\| `([A-Za-z]+)` \|", DOC, flags=re.MULTILINE))
    keys = {field.alias or name for name, field in model.model_fields.items()}  # type: ignore[attr-defined]
    assert keys <= documented, keys - documented


def test_the_users_and_groups_example_plans_as_the_page_shows(sandbox: SandboxProcess, tmp_path: Path) -> None:
    section = _section("Users and groups")
    example = re.findall(r"```toml\n(.*?)```", section, flags=re.DOTALL)[0]
    shown = re.findall(r"```\n(Environment .*?)```", section, flags=re.DOTALL)[0].splitlines()
    (tmp_path / "people.toml").write_text(example)
    planned = run_ok(sandbox, tmp_path, "plan", "-f", "people.toml").stdout.splitlines()
    assert planned[0] == f"Environment staging on {sandbox.url}"
    assert planned[1:] == shown[1:]
