"""A rotated-in worker that cannot authenticate never replaces a working one (the Python template, for real).

The worker command hands every key but the first a wrong secret, as a worker whose deployment
mangled its credentials would have: the new process starts, stays alive (no SDK exits on a bad
key) and never polls. The supervisor stops it and keeps the old worker; ``keys rotate`` sees that
worker still on the old key and fails with exit 11, leaving the old key ACTIVE.
"""

from __future__ import annotations

import json

import pytest

from tests.workers.launch_helpers import group_members, wait_for
from tests.workers.runtimes.e2e import (
    APP,
    Lab,
    app_id,
    complete_workflow,
    init_and_build,
    lab,
    provision_app,
    stop,
    stored_key_id,
)

LANGUAGE = "python"
pytestmark = pytest.mark.slow
__all__ = ["lab"]

# Any key but FIRST_KEY gets a secret that does not match it.
GUARDED = 'if [ "$CONDUCTOR_AUTH_KEY" != "$FIRST_KEY" ]; then CONDUCTOR_AUTH_SECRET=not-the-secret; fi; ' \
          'exec python3 main.py'


def test_a_new_worker_that_cannot_authenticate_leaves_the_old_worker_and_key_and_rotate_exits_11(lab: Lab) -> None:
    init_and_build(lab)
    provision_app(lab)
    first_key = stored_key_id(lab)
    project = lab.project / "orkes-provision.toml"
    text = project.read_text().replace('command = ["python3", "main.py"]',
                                       f'command = ["sh", "-c", {json.dumps(GUARDED)}]')
    text = text.replace("# env = { CONDUCTOR_LOG_LEVEL = \"INFO\" }", f'env = {{ FIRST_KEY = "{first_key}" }}')
    project.write_text(text)
    run = lab.start_worker("--no-agent")  # the supervisor's key switch; behind the agent no process is replaced
    wait_for(lambda: run.events("started") or run.proc.poll() is not None, 60, "the worker to start")
    old = run.events("started")[0]
    assert complete_workflow(lab, "Orkes", run)["output"] == {"greeting": "Hello, Orkes"}

    rotated = lab.provision("keys", "rotate", APP, "--grace", "0s", "--switch-wait", "10s", timeout=180)
    assert rotated.returncode == 11, rotated.stderr + run.output()[-3000:]
    assert f"still runs the old key {first_key}; the old key stays ACTIVE" in rotated.stderr
    new_key = stored_key_id(lab)
    assert new_key != first_key
    with lab.admin() as admin:
        keys = {k.id: k.status for k in admin.list_keys(app_id(admin))}
    assert keys[first_key] == "ACTIVE"
    # The old process still runs and still works (the supervisor gives the new one up after its
    # poll wait, 120 s; test_launch_supervise proves that part without a server).
    later = complete_workflow(lab, "Ada", run)
    assert [t["workerId"] for t in later["tasks"]] == [old["workerId"]]
    pids = [e["pid"] for e in run.events("started")]
    assert stop(run) == 0
    assert not run.events("rotated")
    for pgid in [run.proc.pid, *pids]:
        assert group_members(pgid) == []
