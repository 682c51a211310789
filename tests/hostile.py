"""Hostile listeners on loopback for tests: servers that log every byte they receive and misbehave.

A ``HostileServer`` accepts connections on 127.0.0.1 (optionally over TLS), logs everything that
arrives, parses HTTP/1.1 requests and hands each to a handler that may answer, drip, flood, hang or
send garbage. Handlers are built by the functions below (``answer``, ``routes``, ``drip_body``...).
A logging proxy is a ``HostileServer`` that answers everything with 502.

The ``hostile`` fixture (a pytest plugin: ``pytest_plugins = ["tests.hostile"]``) starts them,
stops them at the end of the test, and fails the test when any of them received a secret given to
``hostile.forbid(...)``, in clear or base64- or URL-encoded.

Also here: a self-signed certificate for TLS listeners, a JWT-shaped token, and ``run_measured``,
which runs ``provision`` and reports the peak memory of that one process.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cli import PROVISION

MAX_HEAD = 64 * 1024


@dataclass
class Request:
    """One HTTP request as the listener read it."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urllib.parse.urlsplit(self.target).path if "://" in self.target else self.target.split("?")[0]

    def json(self) -> object:
        return json.loads(self.body) if self.body else None


class Connection:
    """The server side of one accepted connection; handlers write through it."""

    def __init__(self, sock: socket.socket, server: HostileServer) -> None:
        self.sock = sock
        self.server = server
        self.keep_alive = True

    def send(self, data: bytes) -> bool:
        """Send ``data``; False once the client is gone (or the server stops)."""
        if self.server.stopping.is_set():
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        self.server.add_sent(len(data))
        return True

    def pause(self, seconds: float) -> bool:
        """Wait, but return early (False) when the server stops."""
        return not self.server.stopping.wait(seconds)


Handler = Callable[[Request, Connection], None]


class HostileServer:
    """A threaded listener on 127.0.0.1 that logs every byte and lets ``handler`` answer each request."""

    def __init__(self, handler: Handler, *, tls: ssl.SSLContext | None = None, name: str = "hostile") -> None:
        self.handler = handler
        self.tls = tls
        self.name = name
        self.stopping = threading.Event()
        self.connections = 0
        self.requests: list[Request] = []
        self._received = bytearray()
        self._sent = 0
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        scheme = "https" if tls else "http"
        self.root_url = f"{scheme}://127.0.0.1:{self.port}"
        self.url = self.root_url + "/api"
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"{name}-accept", daemon=True)
        self._acceptor.start()

    # what it saw -------------------------------------------------------------------------------

    @property
    def received(self) -> bytes:
        """Every byte any client sent, TLS records before decryption excluded (plaintext only)."""
        with self._lock:
            return bytes(self._received)

    @property
    def sent(self) -> int:
        with self._lock:
            return self._sent

    def add_sent(self, count: int) -> None:
        with self._lock:
            self._sent += count

    # life cycle --------------------------------------------------------------------------------

    def stop(self) -> None:
        self.stopping.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        self._acceptor.join(timeout=5)
        for thread in list(self._threads):
            thread.join(timeout=5)

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._socks.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), name=f"{self.name}-conn", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, raw: socket.socket) -> None:
        sock = raw
        try:
            raw.settimeout(30)
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(raw, server_side=True)
                except (ssl.SSLError, OSError):
                    return  # the client refused our certificate: that is what a TLS test looks for
                with self._lock:
                    self._socks.append(sock)
            conn = Connection(sock, self)
            buffer = bytearray()
            while conn.keep_alive and not self.stopping.is_set():
                request = self._read_request(sock, buffer)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                self.handler(request, conn)
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def _recv(self, sock: socket.socket) -> bytes:
        data = sock.recv(65536)
        with self._lock:
            self._received += data
        return data

    def _read_request(self, sock: socket.socket, buffer: bytearray) -> Request | None:
        while b"\r\n\r\n" not in buffer:
            if len(buffer) > MAX_HEAD:
                return None
            data = self._recv(sock)
            if not data:
                return None
            buffer += data
        head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) < 2:
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        body = bytearray(rest)
        while len(body) < length:
            data = self._recv(sock)
            if not data:
                return None
            body += data
        buffer[:] = body[length:]
        return Request(method=parts[0], target=parts[1], headers=headers, body=bytes(body[:length]))


# ------------------------------------------------------------------------------------- handlers


def response_head(status: int, headers: Mapping[str, str] | None = None, *, length: int | None = None,
                  close: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}"]
    merged = {"Content-Type": "application/json", **(headers or {})}
    if length is not None:
        merged["Content-Length"] = str(length)
    if close:
        merged["Connection"] = "close"
    lines += [f"{name}: {value}" for name, value in merged.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer(status: int = 200, body: bytes | str | object = b"", headers: Mapping[str, str] | None = None) -> Handler:
    """Answer every request with ``status`` and ``body`` (bytes, text, or anything json.dumps takes)."""
    if isinstance(body, str):
        data = body.encode()
    elif isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body).encode()

    def handle(request: Request, conn: Connection) -> None:
        conn.send(response_head(status, headers, length=len(data)) + data)

    return handle


def routes(table: Mapping[str, Handler], default: Handler | None = None) -> Handler:
    """Dispatch on ``"METHOD /path"`` (exact), else on ``"/path"``, else ``default`` (404)."""
    fallback = default or answer(404, {"message": "not found"})

    def handle(request: Request, conn: Connection) -> None:
        chosen = table.get(f"{request.method} {request.path}") or table.get(request.path) or fallback
        chosen(request, conn)

    return handle


def hang() -> Handler:
    """Read the request and never answer (a dead server that still accepts connections)."""

    def handle(request: Request, conn: Connection) -> None:
        conn.pause(3600)
        conn.keep_alive = False

    return handle


def drip_body(interval: float, *, total: int = 100_000) -> Handler:
    """Headers at once (Content-Length ``total``), then one byte of body every ``interval`` seconds."""

    def handle(request: Request, conn: Connection) -> None:
        if not conn.send(response_head(200, length=total)):
            return
        for _ in range(total):
            if not conn.send(b" ") or not conn.pause(interval):
                break
        conn.keep_alive = False

    return handle


def drip_head(interval: float) -> Handler:
    """The status line and headers, one byte every ``interval`` seconds (never finishing)."""

    def handle(request: Request, conn: Connection) -> None:
        head = b"HTTP/1.1 200 OK\r\n" + b"".join(f"X-Drip-{i}: {'x' * 20}\r\n".encode() for i in range(10_000))
        for byte in head:
            if not conn.send(bytes([byte])) or not conn.pause(interval):
                break
        conn.keep_alive = False

    return handle


def endless_body(limit: int, *, chunk: bytes = b"[" * 65536, length: bool = False) -> Handler:
    """A 200 whose body goes on until the client hangs up or ``limit`` bytes were sent."""

    def handle(request: Request, conn: Connection) -> None:
        if not conn.send(response_head(200, length=limit if length else None, close=True)):
            return
        sent = 0
        while sent < limit:
            piece = chunk[: limit - sent]
            if not conn.send(piece):
                break
            sent += len(piece)
        conn.keep_alive = False
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_WR)

    return handle


def token_ok(token: str | None = None) -> Handler:
    """``POST /api/token`` that accepts any key."""
    return answer(200, {"token": token or fake_jwt()})


def fake_jwt(subject: str = "app:hostile", lifetime: int = 3600) -> str:
    """A JWT-shaped token (unsigned); its payload has ``exp`` and ``iat`` so clients can schedule refreshes."""
    now = int(time.time())

    def part(data: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return ".".join([part({"alg": "HS256", "typ": "JWT"}), part({"sub": subject, "iat": now, "exp": now + lifetime}),
                     base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()])


def logging_proxy() -> Handler:
    """What a proxy that logs what crosses it answers: 502 to everything (CONNECT included)."""
    return answer(502, {"message": "this proxy forwards nothing"})


# ------------------------------------------------------------------------------------- TLS


def self_signed_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for ``host`` (an IP address): (cert.pem, key.pem)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hostile test server")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


# ------------------------------------------------------------------------------------- secrets


def secret_forms(secret: str) -> list[str]:
    """How a secret may appear on the wire: as is, base64 (standard and URL-safe), URL-encoded, JSON-escaped."""
    raw = secret.encode()
    forms = {secret, base64.b64encode(raw).decode().rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("="),
             urllib.parse.quote(secret, safe=""), json.dumps(secret)[1:-1]}
    return sorted(f for f in forms if f)


def find_secrets(data: bytes, secrets: Mapping[str, str]) -> list[str]:
    """The names of the ``secrets`` (name -> value) found in ``data`` in any of their forms."""
    text = data.decode("latin-1")
    return sorted(name for name, value in secrets.items() if any(form in text for form in secret_forms(value)))


@dataclass
class Hostile:
    """The fixture: starts listeners, remembers them, and knows which secrets none may receive."""

    servers: list[HostileServer] = field(default_factory=list)
    forbidden: dict[str, str] = field(default_factory=dict)

    def server(self, handler: Handler, *, tls: ssl.SSLContext | None = None, name: str = "hostile") -> HostileServer:
        server = HostileServer(handler, tls=tls, name=name)
        self.servers.append(server)
        return server

    def proxy(self) -> HostileServer:
        return self.server(logging_proxy(), name="proxy")

    def forbid(self, name: str, secret: str) -> None:
        """No listener may ever receive ``secret`` (checked when the test ends, and by ``leaks()``)."""
        if len(secret) >= 8:
            self.forbidden[name] = secret

    def leaks(self) -> dict[str, list[str]]:
        """Listener name -> names of the forbidden secrets it received."""
        found = {f"{s.name}:{s.port}": find_secrets(s.received, self.forbidden) for s in self.servers}
        return {where: names for where, names in found.items() if names}

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    """Hostile listeners for one test; the test fails if any received a secret it was told to forbid."""
    state = Hostile()
    try:
        yield state
    finally:
        state.stop()
    leaks = state.leaks()
    assert not leaks, f"hostile listeners received secrets: {leaks}"


# ------------------------------------------------------------------------------------- running provision


_MEASURE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:])
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
sys.stderr.write("\\n@@peak-rss-kib=%d\\n" % peak)
sys.exit(done.returncode)
"""


@dataclass
class Measured:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mib: float


def run_measured(args: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 120.0,
                 cwd: Path | None = None) -> Measured:
    """``provision ARGS`` in a process of its own: exit code, output, wall time and peak RSS of that process."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _MEASURE, PROVISION, *args], env=full_env, capture_output=True,
                          text=True, timeout=timeout, check=False, cwd=cwd)
    seconds = time.monotonic() - started
    stderr, _, tail = done.stderr.rpartition("\n@@peak-rss-kib=")
    peak = int(tail.strip() or 0) / 1024
    return Measured(done.returncode, done.stdout, stderr, seconds, peak)
