"""The options of one sandbox run, shared by the CLI, ``python -m`` and the app factory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Token lifetime when --token-ttl is not given. The Orkes default is not documented; one hour is
# longer than every SDK's proactive refresh interval (Python and JS refresh after 45 min, Go and C#
# after 30), so well-behaved clients never see EXPIRED_TOKEN unless a test shortens it.
DEFAULT_TOKEN_TTL_SECONDS = 3600

# Access keys one application may hold (UNCONFIRMED on Orkes: the sandbox caps, the stricter choice).
DEFAULT_MAX_KEYS = 5

ADMIN_ENV = "admin.env"
REQUESTS_LOG = "requests.log"
DATABASE = "sandbox.db"
SERVER_INFO = "server.json"  # written when ready, removed on clean shutdown; tells harnesses the port
SERVER_LOG = "server.log"  # stdout and stderr of a server started by the harness or 'sandbox --detach'
LOCK_FILE = "sandbox.lock"  # held by the running server: one sandbox per data dir (see control)


@dataclass(frozen=True)
class SandboxConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    latency_ms: int = 0
    token_ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS
    max_keys: int = DEFAULT_MAX_KEYS
    # Lets a WORKER application search tasks, as the sandbox did before it followed the Orkes docs:
    # for tests of the tool's search path on servers that allow it (``provision probe`` tells).
    worker_search: bool = False

    def url_host(self) -> str:
        """The host to put in URLs: a wildcard bind is reached through loopback."""
        if self.host in ("0.0.0.0", ""):
            return "127.0.0.1"
        if self.host == "::":
            return "[::1]"
        if ":" in self.host and not self.host.startswith("["):
            return f"[{self.host}]"
        return self.host

    def root_url(self, port: int) -> str:
        return f"http://{self.url_host()}:{port}"

    def api_url(self, port: int) -> str:
        return self.root_url(port) + "/api"
