"""A hostile server on loopback for trust tests: it logs every request it receives, whole, and refuses it.

It stands for a server named by a planted project or env file. Tests grep ``received`` (method,
path, headers and body of every request, as raw bytes) for secrets that must never reach it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RecordingListener:
    def __init__(self) -> None:
        self.received: list[bytes] = []
        self._lock = threading.Lock()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                head = f"{self.command} {self.path}\n{self.headers}".encode()
                with listener._lock:
                    listener.received.append(head + b"\n" + body)
                answer = b'{"message": "Invalid access key or secret", "error": "INVALID_CREDENTIALS"}'
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_DELETE = _any

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/api"

    def everything(self) -> bytes:
        with self._lock:
            return b"\n".join(self.received)

    def start(self) -> RecordingListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def recording_listener() -> Iterator[RecordingListener]:
    listener = RecordingListener().start()
    try:
        yield listener
    finally:
        listener.stop()
