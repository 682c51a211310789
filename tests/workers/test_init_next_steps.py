"""The steps `provision init` prints run as printed, and `provision app` in a project gives its
application the roles and grants the project file declares."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from orkes_provision.credentials.stores.envfile import parse_env
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials, app_subject
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import run_provision, stop_group

NO_KEYRING = "keyring.backends.fail.Keyring"


def fresh_env(home: Path, sandbox: SandboxProcess, **extra: str) -> dict[str, str]:
    """PATH and HOME only (and the sandbox profile): no CONDUCTOR_*, no keyring."""
    return {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"), "XDG_STATE_HOME": str(home / ".state"),
            "XDG_DATA_HOME": str(home / ".data"), "ORKES_PROVISION_SANDBOX_DIR": str(sandbox.data_dir),
            "ORKES_PROVISION_PROFILE": "sandbox", "PYTHON_KEYRING_BACKEND": NO_KEYRING, **extra}


def admin(sandbox: SandboxProcess) -> OrkesClient:
    return OrkesClient(Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret))


def test_the_steps_init_prints_run_as_printed_without_a_keyring(sandbox: SandboxProcess, tmp_path: Path) -> None:
    env = fresh_env(tmp_path / "home", sandbox)
    made = run_provision(["init", "--lang", "python", "--app", "init steps", "my project", "--json"],
                         cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    steps = json.loads(made.stdout)["next"]
    project = tmp_path / "my project"
    assert steps[0] == "cd 'my project'"  # as given, quoted for the shell
    # The language's own set-up (a venv and pip for Python) is not provision's; the rest must run as printed.
    provision_steps = [s for s in steps[1:] if s.startswith("provision ")]
    app_step, worker_step = provision_steps
    assert app_step == "provision app --register-tasks --store env-file:worker.env"
    ran = subprocess.run(["bash", "-c", f"{steps[0]} && {app_step}"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    # Its own "Next:" is the project's worker, with the store given on its command line.
    [next_line] = [line for line in ran.stdout.splitlines() if line.startswith("Next: ")]
    words = shlex.split(next_line.removeprefix("Next: "))
    store = f"env-file:{project / 'worker.env'}"
    assert words[words.index("worker"):] == ["worker", "run", "greetings", "--store", store]
    # The project file's application got what the file declares: WORKER and EXECUTE on greetings.
    with admin(sandbox) as client:
        [app] = [a for a in client.list_applications() if a.name == "init steps"]
        assert {r.name for r in client.get_app_user(app.id).roles} >= {"WORKER"}
        granted = {(g.target.type, g.target.id) for g in client.get_user_permissions(app_subject(app.id).id)
                   if "EXECUTE" in g.access}
        assert ("TASK_DEF", "greetings") in granted
    stored = parse_env((project / "worker.env").read_text())
    assert stored["CONDUCTOR_SERVER_URL"] == sandbox.url
    # The next step starts the worker: its preflight passes (role, key and grant in place).
    worker = subprocess.Popen(["bash", "-c", f"{steps[0]} && exec {worker_step}"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert worker.stdout is not None
        seen = ""
        for line in worker.stdout:
            seen += line
            if "started pid" in line or "error:" in line:
                break
        assert "preflight: ok" in seen and "started pid" in seen, seen
    finally:
        stop_group(worker, 30)


def test_app_in_a_project_adds_the_declared_roles_and_grants_to_the_flags(sandbox: SandboxProcess,
                                                                          tmp_path: Path) -> None:
    env = fresh_env(tmp_path / "home", sandbox)
    (tmp_path / "orkes-provision.toml").write_text(
        '[application]\nname = "declared"\nroles = ["WORKER"]\ngrants = ["greetings"]\n'
        'store = "env-file:declared.env"\n')
    ran = run_provision(["app", "--role", "METADATA_API", "--grant", "farewells", "--register-tasks", "--json"],
                        cwd=tmp_path, env=env, timeout=120)
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["app"] == "declared"
    assert sorted(report["roles"]) == ["METADATA_API", "WORKER"]
    assert sorted(report["grants"]) == ["EXECUTE on TASK_DEF farewells", "EXECUTE on TASK_DEF greetings"]
    # Another application named on the command line gets only its flags, not the project's declarations.
    other = run_provision(["app", "other-app", "--role", "METADATA_API", "--store", "env-file:o.env", "--json"],
                          cwd=tmp_path, env=env, timeout=120)
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["roles"] == ["METADATA_API"]
