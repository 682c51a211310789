"""A small HTTP proxy on loopback that can hold the answer of one request, for kill tests.

Every request is forwarded to the upstream server and its answer read. Requests are named by
method, path template and occurrence (``POST /api/token #2`` is the second token exchange). For
the one named by ``hold``, the server has done the work but the answer is kept back: ``held`` is
set and the connection stays silent until ``release`` (then it is dropped), so a test can SIGKILL
the client at exactly that point. ``kinds`` lists what passed, in order.
"""

from __future__ import annotations

import http.client
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}


def kind_of(method: str, path: str, names: dict[str, str]) -> str:
    template = _ID.sub("{id}", urlsplit(path).path)
    for name in sorted(names, key=len, reverse=True):  # "app-task" before "app"
        template = template.replace(name, names[name])
    return f"{method} {template}"


class HoldingProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.names: dict[str, str] = {}  # literal path parts -> placeholder, e.g. the app name -> {app}
        self.kinds: list[str] = []
        self.hold: str | None = None
        self.held = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                    status, reason, answer_headers = answer.status, answer.reason, answer.getheaders()
                finally:
                    upstream.close()
                kind = kind_of(self.command, self.path, proxy.names)
                with proxy._lock:
                    seen = sum(1 for k in proxy.kinds if k.split(" #")[0] == kind)
                    kind = kind if not seen else f"{kind} #{seen + 1}"
                    proxy.kinds.append(kind)
                    hold = proxy.hold == kind and not proxy.held.is_set()
                    if hold:
                        proxy.held.set()
                if hold:
                    proxy.release.wait(timeout=60)
                    self.close_connection = True
                    return
                try:
                    self.send_response(status, reason)
                    for name, value in answer_headers:
                        if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client was killed meanwhile

            do_GET = do_POST = do_PUT = do_DELETE = _forward

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/api"

    def arm(self, kind: str | None, names: dict[str, str]) -> None:
        """Hold the first ``kind`` from now on (``None``: pass everything); ``names`` as in ``kind_of``."""
        with self._lock:
            self.kinds.clear()
            self.names = dict(names)
            self.hold = kind
            self.held.clear()
            self.release.clear()

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
