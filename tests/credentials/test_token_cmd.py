"""``provision token APP --ttl``: a short-lived token from the application's stored key, never the secret."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import jwt

from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import PROVISION, output, provision


def _app_with_key(sandbox: SandboxProcess, tmp_path: Path, name: str = "ci-deployer") -> str:
    store = f"env-file:{tmp_path / 'ci.env'}"
    made = provision(["app", name, "--role", "WORKER", "--store", store], env=sandbox.admin_env, cwd=tmp_path)
    assert made.returncode == 0, output(made)
    return store


def _stored_secret(tmp_path: Path) -> str:
    line = next(v for v in (tmp_path / "ci.env").read_text().splitlines() if v.startswith("CONDUCTOR_AUTH_SECRET="))
    return line.split("=", 1)[1].strip("'\"")


def test_token_expires_after_the_ttl_and_authenticates_one_request(sandbox: SandboxProcess, tmp_path: Path) -> None:
    store = _app_with_key(sandbox, tmp_path)
    result = provision(["token", "ci-deployer", "--ttl", "15m", "--store", store], cwd=tmp_path)
    assert result.returncode == 0, output(result)
    token = result.stdout.strip()
    assert result.stdout.count("\n") == 1  # the token alone, for $(...)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert _stored_secret(tmp_path) not in output(result)
    answer = httpx.get(f"{sandbox.url}/token/userInfo", headers={"X-Authorization": token}, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["id"] == claims["sub"]
    assert "expires at" in result.stderr


def test_token_json_names_key_and_expiry(sandbox: SandboxProcess, tmp_path: Path) -> None:
    store = _app_with_key(sandbox, tmp_path)
    result = provision(["token", "ci-deployer", "--ttl", "90s", "--store", store, "--json"], cwd=tmp_path)
    assert result.returncode == 0, output(result)
    doc = json.loads(result.stdout)
    claims = jwt.decode(doc["token"], options={"verify_signature": False})
    assert claims["keyId"] == doc["keyId"]
    assert claims["exp"] - claims["iat"] == 90
    assert doc["app"] == "ci-deployer" and doc["expiresAt"]
    assert _stored_secret(tmp_path) not in result.stdout


def test_ttl_above_the_default_maximum_is_refused_before_any_request(sandbox: SandboxProcess, tmp_path: Path) -> None:
    store = _app_with_key(sandbox, tmp_path)
    mark = sandbox.mark()
    result = provision(["token", "ci-deployer", "--ttl", "2h", "--store", store], cwd=tmp_path)
    assert result.returncode == 2
    assert "longer than the maximum of 1h (the default)" in result.stderr
    assert result.stdout == ""
    assert sandbox.requests()[mark:] == []


def test_config_raises_the_maximum(sandbox: SandboxProcess, tmp_path: Path) -> None:
    store = _app_with_key(sandbox, tmp_path)
    config = tmp_path / "config.toml"
    config.write_text('max_token_ttl = "3h"\n')
    config.chmod(0o600)
    env = {"ORKES_PROVISION_CONFIG": str(config)}
    result = provision(["token", "ci-deployer", "--ttl", "2h", "--store", store], cwd=tmp_path, env=env)
    assert result.returncode == 0, output(result)
    claims = jwt.decode(result.stdout.strip(), options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 2 * 3600
    too_long = provision(["token", "ci-deployer", "--ttl", "4h", "--store", store], cwd=tmp_path, env=env)
    assert too_long.returncode == 2
    assert f"max_token_ttl in {config}" in too_long.stderr


def test_token_is_refused_on_a_terminal_without_show_token(sandbox: SandboxProcess, tmp_path: Path) -> None:
    store = _app_with_key(sandbox, tmp_path)
    leader, follower = os.openpty()
    try:
        refused = subprocess.run([PROVISION, "token", "ci-deployer", "--store", store], stdout=follower,
                                 stderr=subprocess.PIPE, text=True, cwd=tmp_path, timeout=60, check=False)
        assert refused.returncode == 2
        assert "stdout is a terminal" in refused.stderr and "--show-token" in refused.stderr
        shown = subprocess.run([PROVISION, "token", "ci-deployer", "--store", store, "--show-token"],
                               stdout=follower, stderr=subprocess.PIPE, text=True, cwd=tmp_path, timeout=60,
                               check=False)
        assert shown.returncode == 0, shown.stderr
        assert b"eyJ" in os.read(leader, 65536)
    finally:
        os.close(leader)
        os.close(follower)


def test_a_deactivated_key_mints_nothing(sandbox: SandboxProcess, tmp_path: Path) -> None:
    store = _app_with_key(sandbox, tmp_path)
    key_id = next(v for v in (tmp_path / "ci.env").read_text().splitlines()
                  if v.startswith("CONDUCTOR_AUTH_KEY=")).split("=", 1)[1].strip("'\"")
    off = provision(["keys", "deactivate", "ci-deployer", key_id, "--yes"], env=sandbox.admin_env, cwd=tmp_path)
    assert off.returncode == 0, output(off)
    result = provision(["token", "ci-deployer", "--store", store], cwd=tmp_path)
    assert result.returncode == 4
    assert result.stdout == ""
