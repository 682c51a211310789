"""The bootstrap admin application, admin.env, token options and the data dir's files."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from orkes_provision.sandbox import default_data_dir
from orkes_provision.sandbox.bootstrap import ensure_admin, read_env_file
from tests.sandbox.conftest import Api


def test_default_data_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / "orkes-provision" / "sandbox"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert default_data_dir() == Path.home() / ".local" / "share" / "orkes-provision" / "sandbox"


def test_default_data_dir_imports_without_the_server_stack() -> None:
    code = ("import sys; import orkes_provision.sandbox as s; s.default_data_dir(); "
            "import orkes_provision.cli.sandbox_cmd; "
            "print(sorted(m for m in ('starlette', 'uvicorn', 'jwt') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_admin_env_is_rewritten_with_the_new_url_and_keeps_a_working_key(api: Api) -> None:
    again = ensure_admin(api.state, "http://127.0.0.1:9999/api")
    assert again.key_id == api.creds.key_id
    assert again.app_id == api.creds.app_id
    env = read_env_file(api.config.data_dir / "admin.env")
    assert env["CONDUCTOR_SERVER_URL"] == "http://127.0.0.1:9999/api"
    assert stat.S_IMODE(os.stat(api.config.data_dir / "admin.env").st_mode) == 0o600


def test_a_lost_admin_env_gets_a_new_key_for_the_same_admin_application(api: Api) -> None:
    (api.config.data_dir / "admin.env").unlink()
    fresh = ensure_admin(api.state, api.config.api_url(8080))
    assert fresh.app_id == api.creds.app_id
    assert fresh.key_id != api.creds.key_id
    assert api.token(fresh.key_id, fresh.secret.get_secret_value())


def test_token_expiration_is_honoured_in_milliseconds_and_negative_means_never(api: Api) -> None:
    body = {"keyId": api.creds.key_id, "keySecret": api.creds.secret.get_secret_value()}
    short = api.client.post("/api/token", json={**body, "expiration": 60_000}).json()["token"]
    forever = api.client.post("/api/token", json={**body, "expiration": -1}).json()["token"]
    claims = jwt.decode(short, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 60
    assert "exp" not in jwt.decode(forever, options={"verify_signature": False})
    assert api.client.get("/api/token/userInfo", headers={"X-Authorization": forever}).status_code == 200


def test_a_busy_port_is_a_usage_error_with_a_hint(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-c", "from orkes_provision.cli import main; main()", "sandbox",
                                 "--port", str(port), "--data-dir", str(tmp_path / "d")],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "--port 0" in result.stderr
