"""No hostile listener ever receives the admin secret or an application secret.

One scenario, with the real CLI: a logging proxy in every proxy variable while an application is
provisioned and its key rotated against the sandbox, then commands aimed at hostile servers of the
test's own (a dripping one, a deeply nested one, one that echoes escape sequences) from a machine
that holds the admin key (``--profile sandbox``) and the application's env file. Everything every
listener received is then searched for every secret, in clear, base64 and URL-encoded.
"""

from __future__ import annotations

from pathlib import Path

from orkes_provision.credentials.stores.envfile import parse_env
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision
from tests.hostile import Hostile, answer, drip_body, routes, token_ok

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
THROWAWAY = {"CONDUCTOR_AUTH_KEY": "throwaway-key", "CONDUCTOR_AUTH_SECRET": "throwaway-secret-0123456789"}


def test_no_hostile_listener_receives_a_secret(sandbox: SandboxProcess, hostile: Hostile, tmp_path: Path) -> None:
    proxy = hostile.proxy()
    dripping = hostile.server(drip_body(0.5), name="dripping")
    nested = hostile.server(routes({"POST /api/token": answer(200, "[" * 200_000)}), name="nested")
    echoing = hostile.server(routes({"POST /api/token": token_ok(),
                                     "GET /api/applications": answer(200, [{"id": "x", "name": "\x1b]0;t\x07"}])}),
                             name="echoing")
    hostile.forbid("admin secret", sandbox.admin_secret.get_secret_value())
    base = {name: proxy.root_url for name in PROXY_VARS}
    base.update(ORKES_PROVISION_SANDBOX_DIR=str(sandbox.data_dir), ORKES_PROVISION_TIMEOUT="3")
    store = tmp_path / "leak.env"
    secrets: list[str] = []

    def remember_secret() -> None:
        secret = parse_env(store.read_text())["CONDUCTOR_AUTH_SECRET"]
        secrets.append(secret)
        hostile.forbid(f"application secret {len(secrets)}", secret)

    # Against the sandbox, with a proxy in every variable: nothing may cross the proxy.
    result = provision(["--profile", "sandbox", "app", "leak-app", "--worker", "--grant", "leak-task",
                        "--register-tasks", "--store", f"env-file:{store}"], env=base)
    assert result.returncode == 0, output(result)
    remember_secret()
    result = provision(["--profile", "sandbox", "keys", "rotate", "leak-app", "--grace", "0s", "--switch-wait", "0",
                        "--store", f"env-file:{store}"], env=base)
    assert result.returncode == 0, output(result)
    remember_secret()
    assert secrets[0] != secrets[1]
    result = provision(["--profile", "sandbox", "doctor", "leak-app", "--store", f"env-file:{store}"], env=base)
    assert result.returncode == 0, output(result)

    for server in (dripping, nested, echoing):
        # The admin profile is bound to the sandbox: pointing it elsewhere is refused before sending.
        result = provision(["--profile", "sandbox", "--server", server.url, "apps", "list"], env=base)
        assert result.returncode == 3, output(result)
        # The application's key is bound to the sandbox too: the worker runs against the server its
        # env file names, whatever CONDUCTOR_SERVER_URL says; another server gets nothing of it.
        result = provision(["run", "--no-agent", "--app", "leak-app", "--store", f"env-file:{store}", "--no-preflight",
                            "--",
                            "sh", "-c", 'test "$CONDUCTOR_SERVER_URL" = "$0"', sandbox.url],
                           env={**base, "CONDUCTOR_SERVER_URL": server.url})
        assert result.returncode == 0, output(result)
        # With a key meant for it, the hostile server is talked to, and the command still ends cleanly.
        result = provision(["doctor", "leak-app", "--store", f"env-file:{store}"],
                           env={**base, **THROWAWAY, "CONDUCTOR_SERVER_URL": server.url})
        assert result.returncode in (3, 8, 11, 13), output(result)
        assert "Traceback" not in result.stderr
        assert server.requests, f"{server.name} was never asked: the check below would prove nothing"

    assert proxy.connections == 0, proxy.received[:300]
    assert len(hostile.forbidden) == 3
    assert hostile.leaks() == {}
