"""Proxies: loopback never goes through one; plain http through one needs --insecure-http.

The proxy is a listener of the test's own that logs every byte that reaches it (tests/hostile.py)
and forwards nothing, so a request that went through it fails and a secret that crossed it is found.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from orkes_provision.credentials.stores.base import StoredKey
from orkes_provision.credentials.stores.envfile import EnvFileStore, parse_env
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision
from tests.hostile import Hostile, HostileServer, answer, routes, token_ok

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def proxied(proxy: HostileServer, **extra: str) -> dict[str, str]:
    env = {name: proxy.root_url for name in PROXY_VARS}
    env.update({"NO_PROXY": "", "no_proxy": ""}, **extra)
    return env


def sandbox_env(sandbox: SandboxProcess) -> dict[str, str]:
    return {"ORKES_PROVISION_SANDBOX_DIR": str(sandbox.data_dir)}


def test_loopback_traffic_never_goes_through_a_proxy(sandbox: SandboxProcess, hostile: Hostile,
                                                     tmp_path: Path) -> None:
    proxy = hostile.proxy()
    hostile.forbid("admin secret", sandbox.admin_secret.get_secret_value())
    env = proxied(proxy, **sandbox_env(sandbox))
    result = provision(["--profile", "sandbox", "app", "proxied-app", "--worker", "--grant", "proxied-task",
                        "--register-tasks", "--store", f"env-file:{tmp_path / 'w.env'}"], env=env)
    assert result.returncode == 0, output(result)
    hostile.forbid("application secret", parse_env((tmp_path / "w.env").read_text())["CONDUCTOR_AUTH_SECRET"])
    result = provision(["doctor", "proxied-app", "--task", "proxied-task", "--store", f"env-file:{tmp_path / 'w.env'}",
                        "--profile", "sandbox"], env=env)
    assert result.returncode == 0, output(result)
    assert proxy.connections == 0, proxy.received[:500]
    assert proxy.received == b""


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_every_loopback_name_bypasses_the_proxy(hostile: Hostile, host: str) -> None:
    proxy = hostile.proxy()
    server = hostile.server(routes({"POST /api/token": token_ok(), "GET /api/applications": answer(200, [])}))
    env = proxied(proxy, CONDUCTOR_SERVER_URL=f"http://{host}:{server.port}/api", CONDUCTOR_AUTH_KEY="k",
                  CONDUCTOR_AUTH_SECRET="proxied-secret-1")
    result = provision(["apps", "list"], env=env)
    assert result.returncode == 0, output(result)
    assert [r.path for r in server.requests] == ["/api/token", "/api/applications"]
    assert proxy.connections == 0


def test_plain_http_to_a_remote_host_through_a_proxy_needs_insecure_http(hostile: Hostile) -> None:
    proxy = hostile.proxy()
    env = proxied(proxy, CONDUCTOR_SERVER_URL="http://orkes.example.com/api", CONDUCTOR_AUTH_KEY="k",
                  CONDUCTOR_AUTH_SECRET="remote-secret-1234")
    result = provision(["apps", "list"], env=env)
    assert result.returncode == 2, output(result)
    assert "--insecure-http" in result.stderr
    assert proxy.connections == 0
    # Asked for explicitly, it goes through the proxy (which answers 502 here).
    result = provision(["--insecure-http", "apps", "list"], env=env)
    assert result.returncode == 8, output(result)
    assert proxy.requests and proxy.requests[0].target.startswith("http://orkes.example.com/api/token")


def test_https_to_a_remote_host_uses_the_proxy_and_no_proxy_is_honoured(hostile: Hostile) -> None:
    proxy = hostile.proxy()
    env = proxied(proxy, CONDUCTOR_SERVER_URL="https://orkes.example.com/api", CONDUCTOR_AUTH_KEY="k",
                  CONDUCTOR_AUTH_SECRET="remote-secret-1234", ORKES_PROVISION_TIMEOUT="5")
    result = provision(["apps", "list"], env=env)
    assert result.returncode == 8, output(result)
    assert proxy.requests and proxy.requests[0].method == "CONNECT"
    assert proxy.requests[0].target == "orkes.example.com:443"
    before = proxy.connections
    env.update(NO_PROXY="orkes.example.com", no_proxy="orkes.example.com")
    result = provision(["apps", "list"], env=env)
    assert result.returncode == 8, output(result)  # no such host, but not through the proxy
    assert proxy.connections == before



def test_a_worker_started_for_a_loopback_server_is_told_not_to_proxy_it(hostile: Hostile, tmp_path: Path) -> None:
    proxy = hostile.proxy()
    server = "http://127.0.0.1:8080/api"
    EnvFileStore(tmp_path / "w.env").save(
        StoredKey(server=server, app="proxied-worker", key_id="k-1", secret=SecretStr("worker-secret-1234")))
    probe = "import json, os; print(json.dumps({n: os.environ.get(n) for n in ('NO_PROXY', 'no_proxy')}))"
    env = proxied(proxy, CONDUCTOR_SERVER_URL=server, NO_PROXY="corp.example", no_proxy="")
    result = provision(["run", "--app", "proxied-worker", "--store", f"env-file:{tmp_path / 'w.env'}",
                        "--no-preflight", "--", sys.executable, "-c", probe], env=env)
    assert result.returncode == 0, output(result)
    assert json.loads(result.stdout) == {"NO_PROXY": "corp.example,127.0.0.1", "no_proxy": "127.0.0.1"}
