"""A scaffolded project's .gitignore keeps every file provision writes a secret to out of git."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr

from orkes_provision.credentials.stores.base import StoredKey
from orkes_provision.credentials.stores.envfile import EnvFileStore
from orkes_provision.workers.scaffold import LANGUAGES, default_app_name
from tests.cli import output, provision

SERVER = "https://conductor.example.com/api"
SECRET = "gitignore-secret-never-committed"


def git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False, timeout=30)


@pytest.mark.parametrize("language", LANGUAGES)
def test_rendered_secret_manifests_and_env_files_are_ignored_by_git(tmp_path: Path, language: str) -> None:
    root = tmp_path / "proj"
    result = provision(["init", "--lang", language, str(root)])
    assert result.returncode == 0, output(result)
    assert git(root, "init", "-q").returncode == 0
    EnvFileStore(root / "worker.env").save(
        StoredKey(server=SERVER, app=default_app_name(root), key_id="key-1", secret=SecretStr(SECRET)))
    result = provision(["deploy", "kubernetes", "greetings", "--image", "ghcr.io/acme/greetings:1.0",
                        "--render", "k8s", "--store", "env-file:worker.env"], cwd=root,
                       env={"CONDUCTOR_SERVER_URL": SERVER})
    assert result.returncode == 0, output(result)
    written = sorted(p.relative_to(root) for p in (root / "k8s").iterdir())
    encoded = base64.b64encode(SECRET.encode()).decode()
    holding = [p for p in written if SECRET in (root / p).read_text() or encoded in (root / p).read_text()]
    assert holding and all(p.name.endswith(".secret.yaml") for p in holding), written
    for path in [*holding, Path("worker.env")]:
        assert git(root, "check-ignore", "-q", str(path)).returncode == 0, f"{path} is not ignored"
    # What holds no secret stays committable (GitOps): the Deployment and the ConfigMap.
    for path in (p for p in written if p not in holding):
        assert git(root, "check-ignore", "-q", str(path)).returncode == 1, f"{path} is ignored"
    git(root, "add", "-A")
    staged = git(root, "diff", "--cached", "--name-only").stdout
    assert "secret.yaml" not in staged and "worker.env" not in staged
