"""``export`` never replaces a file it did not write (issue 25, item 7): without ``-o`` it writes workflow files
to ./workflows/, where a project keeps its own; a hand-written or hand-edited one stops the export before
anything is written (exit 7), and ``--force``, as the hint says, replaces it. ``-o`` over an existing
environment file says what it replaces."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from orkes_provision.orkes.models import TaskDef
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output
from tests.environments.apply.helpers import admin_client, run, run_ok
from tests.sandbox_fixtures import one_sandbox

HAND_WRITTEN = '{\n  "name": "order",\n  "version": 3,\n  "tasks": []\n}\n'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    for sandbox in one_sandbox(tmp_path_factory.mktemp("export-overwrite")):
        with admin_client(sandbox) as admin:
            admin.register_task_defs([TaskDef(name="ship")])
            admin.register_workflow_def({"name": "order", "version": 1, "schemaVersion": 2, "tasks": [
                {"name": "ship", "taskReferenceName": "ship_ref", "type": "SIMPLE"}]})
        yield sandbox


def test_export_without_o_keeps_a_hand_written_workflow_file_until_force(server: SandboxProcess,
                                                                         tmp_path: Path) -> None:
    mine = tmp_path / "workflows" / "order.json"
    mine.parent.mkdir()
    mine.write_text(HAND_WRITTEN)

    refused = run(server, tmp_path, "export")

    assert refused.returncode == 7, output(refused)
    assert refused.stderr.splitlines() == [
        f"error: export would replace 1 file it did not write: {mine}; nothing was written",
        "hint: move them away, or add --force to replace them"]
    assert refused.stdout == ""
    assert mine.read_text() == HAND_WRITTEN

    forced = run_ok(server, tmp_path, "export", "--force")  # the hint, as printed

    assert json.loads(mine.read_text())["tasks"][0]["name"] == "ship"
    assert f"wrote {mine}" in forced.stderr
    again = run_ok(server, tmp_path, "export")  # export's own file now: replaced without a word
    assert f"wrote {mine}" in again.stderr
    mine.write_text(mine.read_text().replace('"ship_ref"', '"ship_it"'))  # edited by hand since
    assert run(server, tmp_path, "export").returncode == 7


def test_a_file_already_holding_what_export_writes_is_not_in_the_way(server: SandboxProcess, tmp_path: Path) -> None:
    (tmp_path / "first").mkdir()
    run_ok(server, tmp_path / "first", "export", "-o", "env.toml")
    (tmp_path / "second" / "workflows").mkdir(parents=True)
    copied = (tmp_path / "first" / "workflows" / "order.json").read_text()
    (tmp_path / "second" / "workflows" / "order.json").write_text(copied)  # a checkout of the same export
    run_ok(server, tmp_path / "second", "export", "-o", "env.toml")


def test_export_with_o_over_an_existing_file_says_what_it_replaces(server: SandboxProcess, tmp_path: Path) -> None:
    (tmp_path / "env.toml").write_text('# ours\nname = "staging"\n\n[[tasks]]\nname = "ship"\n')

    first = run_ok(server, tmp_path, "export", "-o", "env.toml")

    assert "warning: replaced env.toml, environment staging with 0 applications, 1 task, 0 workflows, which " \
           "export did not write (or it was edited since): its comments and layout are not kept; its stores " \
           "and keyMaxAge are kept" in first.stderr
    second = run_ok(server, tmp_path, "export", "-o", "env.toml")
    assert "replaced env.toml, environment staging with 0 applications, 1 task, 1 workflow, as export last " \
           "wrote it" in second.stderr
    as_json = run_ok(server, tmp_path, "export", "-o", "env.toml", "--json")
    warning = json.loads(as_json.stderr.splitlines()[-1])
    assert (warning["warning"], warning["file"]) == ("replaced", "env.toml")
