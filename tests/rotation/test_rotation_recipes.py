"""docs/rotation.md: the nightly-job recipes run as printed.

The crontab line runs with ``sh -c`` in the environment cron gives a job (HOME, LOGNAME, SHELL and
the crontab's PATH), the systemd service's ``ExecStart`` with its ``EnvironmentFile``, the CronJob's
container command with its ``env`` and ``envFrom``; the unit files pass ``systemd-analyze verify``.
The only substitutions are where things are installed on this machine: the directory of
``provision`` (``/home/deploy/.local/bin``, ``/usr/local/bin``), the CronJob's volume path and the
systemd user's home (``/home/deploy``). ``systemctl``, ``journalctl`` and ``kubectl`` lines are not run.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from orkes_provision.rotation.record import STOP_AFTER_VARIABLE
from orkes_provision.sandbox.harness import SandboxProcess
from tests.rotation.helpers import REPO

DOC = (REPO / "docs" / "rotation.md").read_text()
BIN = str(Path(sys.executable).parent)
_BLOCK = re.compile(r"^ *```(?P<lang>[a-z]*)\n(?P<body>.*?)^ *```$", re.MULTILINE | re.DOTALL)


def blocks(lang: str) -> list[str]:
    return [m["body"] for m in _BLOCK.finditer(DOC) if m["lang"] == lang]


def cron_env(home: Path, path: str) -> dict[str, str]:
    """What cron gives a job: HOME, LOGNAME, SHELL, and the crontab's variables."""
    return {"HOME": str(home), "LOGNAME": "deploy", "SHELL": "/bin/sh", "PATH": path}


@pytest.fixture
def home(shared_sandbox: SandboxProcess, tmp_path: Path) -> Path:
    """The provisioning user's home: two applications delivered from it, the credentials file of the doc."""
    home = tmp_path / "home"
    (home / ".config" / "orkes-provision").mkdir(parents=True)
    credentials = home / ".config" / "orkes-provision" / "rotation.env"
    made = subprocess.run(["sh", "-c", "install -m 600 /dev/null ~/.config/orkes-provision/rotation.env"],
                          env=cron_env(home, "/usr/bin:/bin"), check=False)
    assert made.returncode == 0 and oct(credentials.stat().st_mode & 0o777) == "0o600"
    credentials.write_text("".join(f"{k}={v}\n" for k, v in shared_sandbox.admin_env.items()))
    for name in ("recipe-a", "recipe-b"):
        provision_as(home, shared_sandbox, "app", name, "--worker", "--store", f"env-file:{home / name}.env")
    return home


def provision_as(home: Path, sandbox: SandboxProcess, *args: str, extra: dict[str, str] | None = None) -> None:
    env = {**cron_env(home, f"{BIN}:/usr/bin:/bin"), **sandbox.admin_env, **(extra or {})}
    result = subprocess.run([f"{BIN}/provision", *args], env=env, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == (-9 if extra else 0), result.stderr


def crontab() -> tuple[dict[str, str], str]:
    (block,) = blocks("crontab")
    variables: dict[str, str] = {}
    jobs = []
    for line in block.strip().splitlines():
        name, sep, value = line.partition("=")
        if sep and re.fullmatch(r"[A-Z_]+", name):
            variables[name] = value
        else:
            jobs.append(line.split(None, 5)[5])  # minute hour day month weekday command
    (command,) = jobs
    return variables, command


def test_the_crontab_line_rotates_reports_and_says_so_only_on_failure(shared_sandbox: SandboxProcess,
                                                                      home: Path) -> None:
    variables, command = crontab()
    path = variables["PATH"].replace("/home/deploy/.local/bin", BIN)
    report = home / ".local" / "state" / "orkes-provision" / "rotation-report.json"

    quiet = subprocess.run(["sh", "-c", command], env=cron_env(home, path), capture_output=True, text=True,
                           timeout=120, check=False)

    assert (quiet.returncode, quiet.stdout) == (0, ""), quiet.stderr  # nothing for cron to mail
    data = json.loads(report.read_text())
    assert [(a["app"], a["result"]) for a in data["applications"]] == [("recipe-a", "not_due"),
                                                                       ("recipe-b", "not_due")]

    # A rotation of recipe-b killed half-way, and its env file gone: the night's run finishes recipe-a's
    # nothing, tries recipe-b (pending rotations are always due) and fails with the store's exit code.
    provision_as(home, shared_sandbox, "keys", "rotate", "recipe-b", "--switch-wait", "0s",
                 extra={STOP_AFTER_VARIABLE: "created"})
    saved = (home / "recipe-b.env").read_bytes()
    (home / "recipe-b.env").unlink()
    (home / "recipe-b.env").mkdir()

    failed = subprocess.run(["sh", "-c", command], env=cron_env(home, path), capture_output=True, text=True,
                            timeout=120, check=False)

    assert failed.returncode == 0  # the '|| echo' line: cron mails its output
    assert failed.stdout == ("orkes key rotation failed with exit 10; "
                             "see ~/.local/state/orkes-provision/rotation.log\n")
    assert json.loads(report.read_text())["exitCode"] == 10
    logged = (home / ".local" / "state" / "orkes-provision" / "rotation.log").read_text().splitlines()
    error = json.loads(logged[-1])  # under --json the error object follows the report, on stderr
    assert (error["error"], error["exitCode"]) == ("store", 10) and "recipe-b" in error["message"]

    (home / "recipe-b.env").rmdir()
    (home / "recipe-b.env").write_bytes(saved)
    (home / "recipe-b.env").chmod(0o600)
    fixed = subprocess.run(["sh", "-c", command], env=cron_env(home, path), capture_output=True, text=True,
                           timeout=120, check=False)
    assert (fixed.returncode, fixed.stdout) == (0, ""), fixed.stderr
    results = {a["app"]: a["result"] for a in json.loads(report.read_text())["applications"]}
    assert results == {"recipe-a": "not_due", "recipe-b": "resumed"}


def units() -> dict[str, str]:
    found = {}
    for block in blocks("ini"):
        first, _, rest = block.partition("\n")
        found[Path(first.removeprefix("# ")).name] = rest
    assert set(found) == {"orkes-key-rotation.service", "orkes-key-rotation.timer"}
    return found


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_systemd_units_verify(tmp_path: Path) -> None:
    for name, text in units().items():
        (tmp_path / name).write_text(text.replace("/usr/local/bin/provision", f"{BIN}/provision"))
    result = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / n) for n in sorted(units()))],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_systemd_service_runs_its_exec_start_with_its_environment_file(home: Path) -> None:
    service = units()["orkes-key-rotation.service"]
    settings = dict(line.split("=", 1) for line in service.splitlines() if "=" in line and not line.startswith("#"))
    assert (settings["Type"], settings["User"]) == ("oneshot", "deploy")
    environment_file = Path(settings["EnvironmentFile"].replace("/home/deploy", str(home)))
    variables = dict(line.split("=", 1) for line in environment_file.read_text().splitlines() if line)
    command = shlex.split(settings["ExecStart"].replace("/usr/local/bin/provision", f"{BIN}/provision"))

    # systemd gives a User= service that user's HOME; the rest comes from EnvironmentFile.
    result = subprocess.run(command, env={"HOME": str(home), "PATH": "/usr/bin:/bin", **variables},
                            capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("0 rotated, 2 not due, 0 failed of 2 applications on ")


def test_the_cronjob_runs_its_command_with_its_environment(shared_sandbox: SandboxProcess, home: Path) -> None:
    (manifest,) = [yaml.safe_load(b) for b in blocks("yaml")]
    assert (manifest["kind"], manifest["spec"]["concurrencyPolicy"]) == ("CronJob", "Forbid")
    pod: dict[str, Any] = manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (volume,) = pod["volumes"]
    (mount,) = container["volumeMounts"]
    assert mount["name"] == volume["name"] and "persistentVolumeClaim" in volume
    assert pod["restartPolicy"] == "Never"
    # The volume holds the deliveries record of the provisioning: here, the provisioning user's.
    state = home / ".local" / "state" / "orkes-provision"
    env = {e["name"]: e["value"].replace(mount["mountPath"], str(state)) for e in container["env"]}
    assert env == {"ORKES_PROVISION_STATE_DIR": str(state)}
    assert container["envFrom"] == [{"secretRef": {"name": "orkes-provisioning"}}]
    secret = shared_sandbox.admin_env  # what the Secret holds

    result = subprocess.run(container["command"], env={"HOME": "/nonexistent", "PATH": f"{BIN}:/usr/bin:/bin",
                                                       **env, **secret},
                            capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["counts"]["notDue"] == 2


def test_the_first_example_runs_as_printed(shared_sandbox: SandboxProcess, home: Path) -> None:
    first = blocks("console")[0]
    (line,) = [line for line in first.splitlines() if line.startswith("$ ")]
    result = subprocess.run(["sh", "-c", line[2:]],
                            env={**cron_env(home, f"{BIN}:/usr/bin:/bin"), **shared_sandbox.admin_env},
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "2 not due, 0 failed of 2 applications" in result.stdout


def test_the_exit_code_table_lists_every_code_a_rotation_can_end_with() -> None:
    from orkes_provision.errors import EXIT_CODES

    table = DOC.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    listed = {int(code) for row in re.findall(r"^\| ([\d, ]+) \|", table, flags=re.MULTILINE)
              for code in row.split(",")}
    assert listed == {0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
    assert listed <= set(EXIT_CODES)
