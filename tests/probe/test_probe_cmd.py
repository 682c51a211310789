"""``provision probe`` against a sandbox: one line per behaviour, nothing named orkes-provision-probe-*
left behind (also after SIGKILL and a rerun), and ``--record`` cassettes that the replay accepts."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from pydantic import SecretStr

from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.probe import PREFIX
from orkes_provision.probe.wire.recorder import capturing_context
from orkes_provision.probe.wire.recording import ADMIN_KEY_PLACEHOLDER, NEUTRAL_ORIGIN, SCRUBBED, Scrubber, make_vcr
from orkes_provision.probe.wire.scenarios import SCENARIOS
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import PROVISION, output, process_group, provision

BEHAVIOURS = ["duplicate-application-names", "keys-per-application", "deactivating-a-key-ends-its-tokens",
              "worker-may-search-tasks", "worker-may-read-its-own-permissions", "tag-grant-shape",
              "token-answer-to-a-wrong-key-id", "token-answer-to-a-wrong-secret", "a-group-may-hold-an-application",
              "in-progress-requeue", "poll-data-names-the-worker", "retry-after-on-429"]


def probe_objects(sandbox: SandboxProcess) -> list[str]:
    creds = Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret)
    with OrkesClient(creds) as admin:
        return sorted([a.name for a in admin.list_applications() if a.name.startswith(PREFIX)]
                      + [t.name for t in admin.list_task_defs() if t.name.startswith(PREFIX)]
                      + [str(w["name"]) for w in admin.list_workflow_defs() if str(w["name"]).startswith(PREFIX)]
                      + [g.id for g in admin.list_groups() if g.id.startswith(PREFIX)])


def test_probe_prints_one_line_per_behaviour_as_observed_and_leaves_nothing(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    env = {**sandbox.admin_env, "ORKES_PROVISION_STATE_DIR": str(tmp_path / "state")}
    result = provision(["probe"], env=env, timeout=180)
    assert result.returncode == 0, output(result)
    lines = result.stdout.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == BEHAVIOURS
    observed = {line.split(":", 1)[0]: line.split(": ", 1)[1] for line in lines}
    # What the default (strict) sandbox does, as the Orkes docs describe it.
    assert observed["worker-may-search-tasks"].startswith("no (403")
    assert observed["worker-may-read-its-own-permissions"].startswith("no (403")
    assert observed["tag-grant-shape"].startswith("per resource, with tag")
    assert observed["keys-per-application"].startswith("capped at 5")
    assert observed["in-progress-requeue"].startswith("yes")
    assert probe_objects(sandbox) == []
    facts = json.loads((tmp_path / "state" / "servers.json").read_text())[sandbox.url]
    assert facts["workerTaskSearch"]["value"] == "refused"
    as_json = json.loads(provision(["probe", "--json"], env=env, timeout=180).stdout)
    assert [o["behaviour"] for o in as_json["observations"]] == BEHAVIOURS
    assert as_json["left"] == []


def test_a_probe_killed_half_way_leaves_objects_that_the_rerun_removes_first(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    env = {**os.environ, **sandbox.admin_env, "ORKES_PROVISION_STATE_DIR": str(tmp_path / "state")}
    with process_group([PROVISION, "probe"], env=env, cwd=tmp_path, log=tmp_path / "killed.log") as killed:
        deadline = time.monotonic() + 60
        while not [n for n in probe_objects(sandbox) if n.endswith("-keys")] and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(timeout=10)
    left = probe_objects(sandbox)
    assert left, "the kill came too late to leave anything"

    rerun = provision(["probe"], env=env, timeout=180)

    assert rerun.returncode == 0, output(rerun)
    assert "object(s) an earlier probe left behind" in rerun.stderr
    assert probe_objects(sandbox) == []


def test_record_writes_scrubbed_cassettes_that_replay_request_for_request(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    env = {**sandbox.admin_env, "ORKES_PROVISION_STATE_DIR": str(tmp_path / "state")}
    out = tmp_path / "cassettes"
    result = provision(["probe", "--record", str(out)], env=env, timeout=600)
    assert result.returncode == 0, output(result)
    assert json.loads((out / "index.json").read_text())["recordedAgainst"] == "sandbox"
    assert sandbox.admin_secret.get_secret_value() not in "".join(p.read_text() for p in out.iterdir())
    replay = Credentials(server=NEUTRAL_ORIGIN + "/api", key_id=ADMIN_KEY_PLACEHOLDER, secret=SecretStr(SCRUBBED))
    player = make_vcr(out, record_mode="none", scrubber=Scrubber({}))
    for scenario in [s for s in SCENARIOS if s.name in ("probe", "token", "access_keys")]:
        with player.use_cassette(scenario.name) as cassette:
            scenario.run(capturing_context(replay, []))
        assert cassette.all_played, scenario.name
