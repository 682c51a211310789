"""Exit codes: one table, in the README, generated from the code, and true for every command."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import orkes_provision
from orkes_provision.errors import EXIT_CODES, ProvisionError, exit_code_table
from tests.conventions import jsondoc
from tests.conventions.scenarios import Context, Run

REPO = Path(__file__).resolve().parents[2]


def _all_error_classes() -> set[type[ProvisionError]]:
    for module in pkgutil.walk_packages(orkes_provision.__path__, "orkes_provision."):
        if ".templates" not in module.name and module.name != "orkes_provision.sandbox.__main__":
            importlib.import_module(module.name)
    found: set[type[ProvisionError]] = set()
    todo: list[type[ProvisionError]] = [ProvisionError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo += cls.__subclasses__()
    return found


def test_the_documented_table_is_the_one_the_code_renders() -> None:
    section = (REPO / "docs" / "exit-codes.md").read_text()
    assert exit_code_table() in section, "regenerate it: python -m orkes_provision.errors"


def test_every_error_class_exits_with_a_documented_code_and_kind() -> None:
    classes = _all_error_classes()
    assert len(classes) >= 15
    error_section = (REPO / "docs" / "json.md").read_text().split("## Errors", 1)[1].split("\n## ", 1)[0]
    for cls in classes:
        assert cls.exit_code in EXIT_CODES, f"{cls.__name__} exits {cls.exit_code}, which the table lacks"
        assert f"`{cls.kind}`" in error_section, f"docs/json.md does not list the error kind {cls.kind!r}"


def test_no_user_facing_error_is_raised_without_its_class() -> None:
    # The base class exits 1, "unexpected error": a failure a user can cause needs a class with its code.
    raised = []
    for path in (REPO / "orkes_provision").rglob("*.py"):
        for line in path.read_text().splitlines():
            if re.search(r"\bProvisionError\((?!f?\"internal error)", line) and "class " not in line:
                raised.append(f"{path.relative_to(REPO)}: {line.strip()}")
    assert raised == []


def test_every_run_of_every_command_exits_with_a_code_of_the_table(
        human_runs: tuple[Context, list[Run]], json_runs: tuple[Context, list[Run]]) -> None:
    for _, runs in (human_runs, json_runs):
        for run in runs:
            assert run.result.code in EXIT_CODES, str(run.result)
            if run.step.section == "Errors" and run.step.takes_json and "--json" in run.result.args:
                assert jsondoc.check("Errors", run.result.json()) is None
