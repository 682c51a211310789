"""Rotation by policy for a fleet (issue 15, item 1): ``keys rotate --all [--older-than D] [--environment NAME |
APP...]``. Keys are made old by the clock the library is given (``now``), never by waiting: the server's
``createdAt`` is real, the "now" it is compared with is the test's."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orkes_provision.access.keyage import format_age
from orkes_provision.credentials.delivery import deliveries
from orkes_provision.credentials.stores import CredentialStore, StoredKey, open_store
from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.errors import ConfigError, StoreError
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.rotation.fleet import FleetReport, rotate_fleet, select_applications
from orkes_provision.rotation.record import load_progress
from orkes_provision.rotation.rotate import rotate_key
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import start
from tests.rotation.helpers import (
    WorkerApp,
    active_keys,
    authenticates,
    cli_env,
    json_out,
    key_statuses,
    make_worker_app,
    provision,
)

DAY = timedelta(days=1)
FAST = ["--switch-wait", "0s", "--grace", "0s"]


def created_at(client: OrkesClient, app: WorkerApp) -> datetime:
    (key,) = [k for k in client.list_keys(app.id) if k.id == app.key.key_id]
    assert key.created_at is not None
    return datetime.fromtimestamp(key.created_at / 1000, UTC)


def fleet(admin: OrkesClient, server: str, **kwargs: Any) -> FleetReport:
    options: dict[str, Any] = {"switch_wait": 0.0, "grace": timedelta(0), "actor": admin.key_id}
    options.update(kwargs)
    names = options.pop("names", ())
    environment = options.pop("environment", None)
    selection = select_applications(admin, server, names=names, environment=environment)
    return rotate_fleet(admin, server=server, selection=selection, **options)


def by_app(report: FleetReport) -> dict[str, str]:
    return {o.app: o.result for o in report.outcomes}


def stored(path: Path, server: str, app: str) -> StoredKey:
    key = EnvFileStore(path).load(server, app)
    assert key is not None
    return key


class FailsOnce(EnvFileStore):
    """An env file whose next write fails, as a full disk would: the rotation stops after creating its key."""

    armed: dict[str, bool] = {}

    def save(self, key: StoredKey) -> None:
        if FailsOnce.armed.pop(str(self.path), False):
            raise StoreError(f"cannot write {self.path}: no space left on device", "free some space")
        super().save(key)


def test_older_than_rotates_only_applications_whose_active_key_the_server_made_before_the_limit(
        admin: OrkesClient, server: str, tmp_path: Path) -> None:
    names = [f"fleet-age-{i}-{uuid.uuid4().hex[:6]}" for i in range(2)]
    old, young = (make_worker_app(admin, server, n, [EnvFileStore(tmp_path / f"{n}.env")]) for n in names)
    # 30 days after the moment between the two keys' creation: the first is older than 30d, the second is not.
    between = created_at(admin, old) + (created_at(admin, young) - created_at(admin, old)) / 2
    clock = lambda: between + 30 * DAY  # noqa: E731

    report = fleet(admin, server, older_than=30 * DAY, now=clock)

    assert by_app(report) == {old.name: "rotated", young.name: "not_due"}
    assert report.ok and report.exit_code == 0
    (not_due,) = [o for o in report.outcomes if o.app == young.name]
    assert not_due.reason == f"key {young.key.key_id} is 29 days old, not older than 30d"
    new = stored(tmp_path / f"{old.name}.env", server, old.name)
    assert new.key_id != old.key.key_id and authenticates(admin, new)
    assert key_statuses(admin, old.id) == {new.key_id: "ACTIVE"}
    assert key_statuses(admin, young.id) == {young.key.key_id: "ACTIVE"}  # untouched
    assert "30 days old" in next(o.reason for o in report.outcomes if o.app == old.name)


def test_one_failing_application_does_not_stop_the_others_and_a_rerun_finishes_it(
        admin: OrkesClient, server: str, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    apps = [make_worker_app(admin, server, f"fleet-{name}-{tag}", [EnvFileStore(tmp_path / f"{name}.env")])
            for name in ("a", "b", "c")]
    failing = apps[1]
    FailsOnce.armed[str(tmp_path / "b.env")] = True
    opener: Callable[[str], CredentialStore] = \
        lambda spec: FailsOnce(spec.partition(":")[2]) if spec.startswith("env-file:") else open_store(spec)  # noqa: E731
    forty_days_on = created_at(admin, apps[0]) + 40 * DAY

    first = fleet(admin, server, older_than=30 * DAY, now=lambda: forty_days_on, parallelism=3,
                  rotate=functools.partial(rotate_key, opener=opener))

    assert by_app(first) == {apps[0].name: "rotated", failing.name: "failed", apps[2].name: "rotated"}
    assert not first.ok and first.exit_code == StoreError.exit_code == 10
    failure = first.failure()
    assert failure is not None and failure.code == 10 and failure.to_dict()["error"] == "store"
    assert "1 of 3 application rotation(s) failed; first: " + failing.name in failure.message
    pending = load_progress(server, failing.name)
    assert pending is not None and pending.new_key_id is not None  # stopped after creating its new key
    assert sorted(active_keys(admin, failing.id)) == sorted([failing.key.key_id, pending.new_key_id])
    assert authenticates(admin, failing.key)  # the old key still works: nothing is down

    # A day later: the keys rotated yesterday are young, the failed application's old key is young too by
    # this clock; the pending rotation is finished all the same.
    rerun = fleet(admin, server, older_than=30 * DAY, now=lambda: datetime.now(UTC) + DAY,
                  rotate=functools.partial(rotate_key, opener=opener))

    assert by_app(rerun) == {apps[0].name: "not_due", failing.name: "resumed", apps[2].name: "not_due"}
    assert rerun.ok and rerun.exit_code == 0
    (resumed,) = [o for o in rerun.outcomes if o.app == failing.name]
    assert resumed.reason == "a rotation stopped after 'created' was pending"
    new = stored(tmp_path / "b.env", server, failing.name)
    # The key made before the failure was never stored anywhere: the rerun deleted it and made another.
    assert new.key_id not in (failing.key.key_id, pending.new_key_id)
    assert key_statuses(admin, failing.id) == {new.key_id: "ACTIVE"}
    assert authenticates(admin, new) and not authenticates(admin, failing.key)
    assert load_progress(server, failing.name) is None


def test_applications_run_in_parallel_within_the_limit(admin: OrkesClient, server: str, tmp_path: Path) -> None:
    import threading

    tag = uuid.uuid4().hex[:6]
    for i in range(5):
        make_worker_app(admin, server, f"fleet-par-{i}-{tag}", [EnvFileStore(tmp_path / f"{i}.env")])
    lock, calls, running, peak, threads = threading.Lock(), [0], [0], [0], set()
    # The first two rotations wait for each other: they run at the same time, or the wait times out.
    first_two = threading.Barrier(2, timeout=30)

    def counting(*args: Any, **kwargs: Any) -> Any:
        with lock:
            calls[0] += 1
            mine = calls[0]
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            threads.add(threading.current_thread().name)
        try:
            if mine <= 2:
                first_two.wait()
            return rotate_key(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    report = fleet(admin, server, parallelism=2, rotate=counting)

    assert set(by_app(report).values()) == {"rotated"} and len(report.outcomes) == 5
    # Two at once (the barrier), never more: the pool ran every rotation on two threads.
    assert peak[0] == 2 and len(threads) == 2, (peak, threads)


def test_an_application_without_an_active_key_is_left_alone(admin: OrkesClient, server: str, tmp_path: Path) -> None:
    app = make_worker_app(admin, server, f"fleet-off-{uuid.uuid4().hex[:6]}", [EnvFileStore(tmp_path / "w.env")])
    admin.toggle_key(app.id, app.key.key_id)  # deactivated on purpose (a leak?): no nightly job revives it

    report = fleet(admin, server, now=lambda: datetime.now(UTC) + 400 * DAY)

    (outcome,) = report.outcomes
    assert (outcome.result, outcome.reason) == ("not_due", "no ACTIVE key to rotate")
    assert key_statuses(admin, app.id) == {app.key.key_id: "INACTIVE"}


def test_an_application_deleted_on_the_server_is_gone_and_forgotten_not_a_failure_every_night(
        admin: OrkesClient, server: str, tmp_path: Path) -> None:
    kept = make_worker_app(admin, server, f"fleet-kept-{uuid.uuid4().hex[:6]}", [EnvFileStore(tmp_path / "k.env")])
    deleted = make_worker_app(admin, server, f"fleet-del-{uuid.uuid4().hex[:6]}", [EnvFileStore(tmp_path / "d.env")])
    admin.delete_application(deleted.id)  # in the Orkes UI, say: this machine's record still lists it

    report = fleet(admin, server, older_than=30 * DAY)

    assert by_app(report) == {kept.name: "not_due", deleted.name: "gone"}
    assert report.ok
    assert deliveries(server, deleted.name) == []
    assert [o.app for o in fleet(admin, server, older_than=30 * DAY).outcomes] == [kept.name]


def test_the_deliveries_record_listing_nothing_is_an_error_not_a_quiet_success(admin: OrkesClient,
                                                                               server: str) -> None:
    with pytest.raises(ConfigError) as caught:
        select_applications(admin, server)
    assert "delivered no application key on" in caught.value.message
    assert "ORKES_PROVISION_STATE_DIR" in caught.value.hint


def test_format_age_says_the_largest_whole_unit() -> None:
    assert [format_age(timedelta(seconds=s)) for s in (0, 1, 59, 60, 3599, 3600, 86399, 86400, 95 * 86400)] == [
        "0 seconds", "1 second", "59 seconds", "1 minute", "59 minutes", "1 hour", "23 hours", "1 day", "95 days"]


# ----- the command ------------------------------------------------------------------------------------


@pytest.fixture
def env(shared_sandbox: SandboxProcess, state_dir: Path, tmp_path: Path) -> dict[str, str]:
    return cli_env(shared_sandbox.admin_env, state_dir, tmp_path / "home")


def env_server(env: dict[str, str]) -> str:
    from orkes_provision.orkes.urls import normalize_server_url

    return normalize_server_url(env["CONDUCTOR_SERVER_URL"], insecure_http=True)


def made(env: dict[str, str], *args: str) -> None:
    result = provision(list(args), env)
    assert result.returncode == 0, result.stderr


def test_all_rotates_every_delivered_application_and_an_unwritable_store_fails_only_its_own(
        admin: OrkesClient, tmp_path: Path, env: dict[str, str]) -> None:
    tag = uuid.uuid4().hex[:6]
    names = [f"cli-{n}-{tag}" for n in ("a", "b", "c")]
    for name in names:
        made(env, "app", name, "--worker", "--store", f"env-file:{tmp_path / name}.env")
    before = {n: json.loads(provision(["keys", "list", n, "--json"], env).stdout)[0]["id"] for n in names}
    not_due = provision(["keys", "rotate", "--all", "--older-than", "30d", *FAST], env)
    assert not_due.returncode == 0, not_due.stderr
    assert [line.split(": ")[1].split(" ")[0:2] for line in not_due.stdout.splitlines()[:3]] == [["not", "due"]] * 3
    assert not_due.stdout.splitlines()[3].startswith("0 rotated, 3 not due, 0 failed of 3 applications on ")
    # b's env file is replaced by a directory: that store cannot be written.
    broken = tmp_path / f"{names[1]}.env"
    broken.rename(tmp_path / "b.env.saved")
    broken.mkdir()

    result = provision(["keys", "rotate", "--all", *FAST, "--json"], env)

    assert result.returncode == 10, result.stderr
    report = json_out(result)
    assert [(a["app"], a["result"]) for a in report["applications"]] == [
        (names[0], "rotated"), (names[1], "failed"), (names[2], "rotated")]
    assert (report["ok"], report["exitCode"], report["selection"]) == (False, 10, "deliveries")
    assert report["applications"][1]["error"]["error"] == "store"
    assert report["counts"] == {"rotated": 2, "resumed": 0, "notDue": 0, "failed": 1, "gone": 0, "skipped": 0}
    error = json.loads(result.stderr.strip().splitlines()[-1])  # stdout stays one document
    assert (error["error"], error["exitCode"]) == ("store", 10)
    assert [k["id"] for k in json.loads(provision(["keys", "list", names[1], "--json"], env).stdout)] == \
        [before[names[1]]]  # nothing changed for b: its old key works as before

    broken.rmdir()
    (tmp_path / "b.env.saved").rename(broken)
    rerun = provision(["keys", "rotate", "--all", *FAST], env)  # the same command again

    assert rerun.returncode == 0, rerun.stderr
    lines = rerun.stdout.splitlines()
    assert [line.split(": ")[1].split(" ")[0] for line in lines[:3]] == ["rotated"] * 3
    assert lines[3].startswith("3 rotated, 0 not due, 0 failed of 3 applications")
    for app in (a for a in admin.list_applications() if a.name in names):
        assert active_keys(admin, app.id) == [stored(tmp_path / f"{app.name}.env", env_server(env), app.name).key_id]


def test_all_environment_rotates_what_apply_tagged_and_a_key_it_cannot_redeliver_fails_alone(
        admin: OrkesClient, tmp_path: Path, env: dict[str, str]) -> None:
    tag = uuid.uuid4().hex[:6]
    environment = f"fleet-{tag}"
    names = [f"env-{n}-{tag}" for n in ("a", "b", "c")]
    (tmp_path / "env.toml").write_text(f'name = "{environment}"\n' + "".join(
        f'[[applications]]\nname = "{n}"\nstore = "env-file:{n}.env"\n' for n in names))
    made(env, "apply", "-f", str(tmp_path / "env.toml"), "--yes")
    outsider = f"outside-{tag}"
    made(env, "app", outsider, "--worker", "--store", f"env-file:{tmp_path / 'outside.env'}")
    # b's key also went to a secret manager through json: a rotation cannot give that copy a successor.
    made(env, "keys", "create", names[1], "--store", "json")
    outsider_key = active_keys(admin, next(a.id for a in admin.list_applications() if a.name == outsider))

    result = provision(["keys", "rotate", "--all", "--environment", environment, *FAST, "--json"], env)

    assert result.returncode == 7, result.stderr
    report = json_out(result)
    assert (report["selection"], report["environment"]) == ("environment", environment)
    assert [(a["app"], a["result"]) for a in report["applications"]] == [
        (names[0], "rotated"), (names[1], "failed"), (names[2], "rotated")]
    assert "cannot give a successor to" in report["applications"][1]["error"]["message"]
    assert active_keys(admin, next(a.id for a in admin.list_applications() if a.name == outsider)) == outsider_key

    rerun = provision(["keys", "rotate", "--all", "--environment", environment, "--retire-undelivered", *FAST], env)

    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.splitlines()[1].startswith(f"{names[1]}: rotated (")
    for name in names:
        app_id = next(a.id for a in admin.list_applications() if a.name == name)
        assert active_keys(admin, app_id) == [stored(tmp_path / f"{name}.env", env_server(env), name).key_id]


def test_all_with_named_applications_rotates_those_only(admin: OrkesClient, tmp_path: Path,
                                                        env: dict[str, str]) -> None:
    tag = uuid.uuid4().hex[:6]
    names = [f"named-{n}-{tag}" for n in ("a", "b", "c")]
    for name in names:
        made(env, "app", name, "--worker", "--store", f"env-file:{tmp_path / name}.env")

    result = provision(["keys", "rotate", "--all", names[0], names[2], "--parallelism", "2", *FAST, "--json"], env)

    assert result.returncode == 0, result.stderr
    report = json_out(result)
    assert [(a["app"], a["result"]) for a in report["applications"]] == [(names[0], "rotated"), (names[2], "rotated")]
    assert (report["selection"], report["parallelism"]) == ("named", 2)
    missing = provision(["keys", "rotate", "--all", names[1], f"nothing-{tag}", *FAST], env)
    assert missing.returncode == 6, missing.stderr
    assert f"nothing-{tag}: failed: no application is named 'nothing-{tag}'" in missing.stdout
    assert missing.stdout.startswith(f"{names[1]}: rotated (")


@pytest.mark.parametrize(("args", "message"), [
    (["a", "b"], "2 applications named: rotating several needs --all"),
    ([], "missing argument 'APP'"),
    (["a", "--older-than", "30d"], "--older-than chooses among many applications: it needs --all"),
    (["--environment", "staging"], "--environment chooses among many applications: it needs --all"),
    (["--all", "--store", "env-file:x.env"], "--store names the stores of one application"),
    (["--all", "--start-over"], "--start-over discards one application's interrupted rotation"),
    (["--all", "a", "--environment", "staging"], "name applications or give --environment, not both"),
    (["--all", "--older-than", "soon"], "'soon' is not a duration"),
])
def test_fleet_options_are_checked_before_any_request(shared_sandbox: SandboxProcess, env: dict[str, str],
                                                      args: list[str], message: str) -> None:
    mark = shared_sandbox.mark()
    result = provision(["keys", "rotate", *args], env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr.splitlines()[0]
    assert shared_sandbox.requests()[mark:] == []


def test_all_with_nothing_delivered_here_exits_3_naming_the_record(env: dict[str, str]) -> None:
    result = provision(["keys", "rotate", "--all", "--json"], env)
    assert result.returncode == 3
    error = json.loads(result.stdout)
    assert error["error"] == "config" and "deliveries record" in error["message"]


def test_an_environment_nothing_is_tagged_with_exits_6(env: dict[str, str]) -> None:
    result = provision(["keys", "rotate", "--all", "--environment", f"none-{uuid.uuid4().hex[:6]}"], env)
    assert result.returncode == 6, result.stderr
    assert "is tagged environment=none-" in result.stderr


def test_ctrl_c_stops_every_rotation_at_once_and_the_rerun_finishes_them(
        admin: OrkesClient, tmp_path: Path, env: dict[str, str]) -> None:
    import os
    import signal
    import subprocess
    import time

    from tests.rotation.helpers import PROVISION, REPO

    tag = uuid.uuid4().hex[:6]
    names = [f"int-{n}-{tag}" for n in ("a", "b")]
    for name in names:
        made(env, "app", name, "--worker", "--store", f"env-file:{tmp_path / name}.env")
    err = tmp_path / "rotate.err"
    with err.open("w") as stderr:
        proc = start([PROVISION, "keys", "rotate", "--all", "--switch-wait", "60s", "--grace", "0s"],
                     env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while err.read_text().count("waiting for workers of") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert err.read_text().count("waiting for workers of") >= 2, err.read_text()
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        assert time.monotonic() - started < 40  # not the 60 s switch waits
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "Traceback" not in err.read_text()
    assert err.read_text().splitlines()[-2:][0] == "error: interrupted"
    # Both rotations are pending; by age neither is due, but pending rotations are always finished.
    rerun = provision(["keys", "rotate", "--all", "--older-than", "30d", *FAST, "--json"], env)
    assert rerun.returncode == 0, rerun.stderr
    assert [(a["app"], a["result"]) for a in json_out(rerun)["applications"]] == [(n, "resumed") for n in names]
    for name in names:
        app_id = next(a.id for a in admin.list_applications() if a.name == name)
        assert active_keys(admin, app_id) == [stored(tmp_path / f"{name}.env", env_server(env), name).key_id]
