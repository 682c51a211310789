"""A grant on a tag settles: Orkes lists it per resource carrying the tag, with ``"tag"``, and the tool
reads those entries as the one tag grant it declared (no second write, no drift, nothing pruned)."""

from __future__ import annotations

from pathlib import Path

from orkes_provision.orkes.models import TaskDef
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output
from tests.environments.apply.helpers import admin_client, run, run_ok

ENV = """\
name = "staging"

[[applications]]
name = "billing-worker"
roles = ["WORKER"]

[[applications.grants]]
tags = ["team:billing"]
access = ["EXECUTE", "READ"]
"""


def test_a_tag_grant_applied_once_plans_nothing_shows_no_drift_and_is_never_pruned(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    with admin_client(sandbox) as admin:
        billing = [{"key": "team", "value": "billing"}]
        admin.register_task_defs([TaskDef(name=n, tags=billing) for n in ("invoice", "refund")])
        (tmp_path / "env.toml").write_text(ENV)
        run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--auto-approve")
        [app] = [a for a in admin.list_applications() if a.name == "billing-worker"]
        listed = admin.get_user_permissions(f"app:{app.id}")
        # Orkes's shape: one entry per tagged resource, each naming the tag.
        assert sorted((g.target.type, g.target.id, g.tag) for g in listed) == [
            ("TASK_DEF", "invoice", "team:billing"), ("TASK_DEF", "refund", "team:billing")]

        mark = sandbox.mark()
        plan = run(sandbox, tmp_path, "plan", "-f", "env.toml", "--detailed-exitcode")
        assert plan.returncode == 0, output(plan)
        drift = run(sandbox, tmp_path, "drift", "-f", "env.toml")
        assert drift.returncode == 0, output(drift)
        run_ok(sandbox, tmp_path, "apply", "-f", "env.toml", "--prune", "--auto-approve")
        assert sandbox.write_requests(mark) == []
        assert sorted(g.target.id for g in admin.get_user_permissions(f"app:{app.id}")) == ["invoice", "refund"]
