"""``provision sandbox --data-dir D --port P`` writes an admin.env that ``--profile sandbox`` uses as is."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import httpx

from tests.cli import PROVISION, provision


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_profile_sandbox_uses_the_admin_env_of_the_sandbox_dir(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "D", _free_port()
    server = subprocess.Popen([PROVISION, "sandbox", "--data-dir", str(data_dir), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        started = time.monotonic()
        while time.monotonic() - started < 20:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        healthy_after = time.monotonic() - started
        print(f"healthy after {healthy_after:.2f} s")
        admin_env = data_dir / "admin.env"
        assert stat.S_IMODE(admin_env.stat().st_mode) == 0o600
        assert f"CONDUCTOR_SERVER_URL=http://127.0.0.1:{port}/api" in admin_env.read_text()
        result = provision(["--profile", "sandbox", "apps", "list", "--json"],
                           env={"ORKES_PROVISION_SANDBOX_DIR": str(data_dir)}, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        names = [row["name"] for row in json.loads(result.stdout)]
        assert len(names) == 1  # the bootstrap admin application
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
