"""The HTTP transport under ``OrkesClient``: which proxy, a deadline per request, a cap on answers.

- **Proxies.** Loopback never goes through a proxy: the sandbox is plain http, so the key exchange
  would cross the proxy in clear. Other hosts use ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` and
  ``NO_PROXY`` as curl and Python's ``urllib`` read them (an uppercase ``HTTP_PROXY`` is ignored in a
  CGI request, "httpoxy"); plain http through a proxy is refused unless ``--insecure-http``.
- **Deadline.** httpx's timeouts bound each socket operation, so a server that sends one byte
  every few seconds holds a request for ever. Here every connect, TLS handshake, read and write
  is bounded by the time left before the deadline of the request in progress (``deadline_scope``,
  set by the client around a request and all its retries), so the request ends by then.
- **Size.** An answer larger than ``MAX_ANSWER_BYTES`` is not read: ``AnswerTooLarge`` is raised
  as soon as the announced length or the bytes received (decompressed, for gzip and deflate) pass
  the cap, without holding more than the cap in memory.

The transport is httpcore's connection pool with a network backend of its own, mapped to httpx
exceptions the way httpx's ``HTTPTransport`` maps them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import time
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from orkes_provision.errors import UsageError
from orkes_provision.orkes.urls import is_loopback_host

# No Orkes answer comes near this (a list of a thousand applications is a few hundred kB).
MAX_ANSWER_BYTES = 8 * 1024 * 1024
ACCEPT_ENCODING = "gzip, deflate"

_DEADLINE: ContextVar[float | None] = ContextVar("orkes_provision_request_deadline", default=None)
_STARTED: ContextVar[float | None] = ContextVar("orkes_provision_request_started", default=None)


class AnswerTooLarge(Exception):
    """The server's answer is larger than the transport reads."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than {limit // (1024 * 1024)} MB")
        self.limit = limit


@dataclass(frozen=True)
class RequestClock:
    """When the outermost request in progress started, and its deadline (``time.monotonic()`` based)."""

    started: float
    deadline: float | None

    def left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started


@contextlib.contextmanager
def deadline_scope(seconds: float | None) -> Iterator[RequestClock]:
    """Bound every socket operation in this context by ``seconds`` from now, or by an earlier deadline
    already in force (a token exchange inside a request keeps the request's). Nested scopes share
    the outermost start, so a message can say how long the user has been waiting."""
    now = time.monotonic()
    outer, started = _DEADLINE.get(), _STARTED.get()
    deadline = outer if seconds is None else now + seconds
    if outer is not None and deadline is not None:
        deadline = min(outer, deadline)
    tokens = (_DEADLINE.set(deadline), _STARTED.set(now if started is None else started))
    try:
        yield RequestClock(now if started is None else started, deadline)
    finally:
        _STARTED.reset(tokens[1])
        _DEADLINE.reset(tokens[0])


def _bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the request's deadline has passed")
    return left if timeout is None else min(timeout, left)


def json_body(response: httpx.Response) -> Any:
    """The decoded JSON of ``response``; ``ValueError`` for anything that does not decode, a body
    nested too deeply for the parser (``RecursionError``) included."""
    try:
        return response.json()
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


# ------------------------------------------------------------------------------------ proxies


def proxy_for(server: str, *, insecure_http: bool = False) -> str | None:
    """The proxy URL requests to ``server`` go through, or ``None``.

    Raises ``UsageError`` for plain http through a proxy without ``insecure_http``, and for a SOCKS
    proxy when the ``socksio`` package is missing.
    """
    parts = urllib.parse.urlsplit(server)
    host = parts.hostname or ""
    if is_loopback_host(host):
        return None
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or _no_proxy(host, parts.port or (443 if parts.scheme == "https" else 80), proxies.get("no", "")):
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    try:
        httpx.Proxy(proxy)
        shown = _without_credentials(proxy)
    except (ValueError, httpx.InvalidURL):
        raise UsageError(f"the proxy set for {parts.scheme}:// (HTTP(S)_PROXY or ALL_PROXY) is not a URL",
                         "fix it (http://HOST:PORT), or unset it") from None
    if parts.scheme == "http" and not insecure_http:
        raise UsageError(f"refusing plain http:// to {host} through the proxy {shown}: the key secret and tokens "
                         "would cross it unencrypted",
                         f"use https://, add {host} to NO_PROXY, or pass --insecure-http if the proxy is trusted")
    scheme = urllib.parse.urlsplit(proxy).scheme.lower()
    if scheme in ("socks5", "socks5h"):
        if importlib.util.find_spec("socksio") is None:
            raise UsageError(f"the proxy for {host} is a SOCKS proxy ({shown}), which needs the socksio package",
                             f"pip install socksio, or add {host} to NO_PROXY")
    elif scheme not in ("http", "https"):
        raise UsageError(f"unsupported proxy {shown} for {host}", "use an http://, https:// or socks5:// proxy")
    return proxy


def _no_proxy(host: str, port: int, no_proxy: str) -> bool:
    """Does ``NO_PROXY`` exempt ``host``? Entries as curl reads them: ``*``, a host or domain suffix
    (``example.com`` and ``.example.com`` both cover ``api.example.com``), optionally ``:PORT``, an IP
    address or a CIDR range."""
    host = host.lower().strip("[]").rstrip(".")
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name, wanted_port = entry, None
        if entry.count(":") == 1 and not entry.startswith("["):
            name, _, port_text = entry.partition(":")
            wanted_port = int(port_text) if port_text.isdigit() else None
        name = name.strip("[]").lstrip("*").lstrip(".").rstrip(".")
        if wanted_port is not None and wanted_port != port:
            continue
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(name, strict=False):
                return True
            continue
        except ValueError:
            pass
        if host == name or host.endswith("." + name):
            return True
    return False


def _without_credentials(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl()


# ------------------------------------------------------------------------------------ the transport


def server_transport(server: str, *, insecure_http: bool = False) -> OrkesTransport:
    """The transport for requests to ``server``: its proxy (if any), the deadline, the size cap."""
    return OrkesTransport(proxy=proxy_for(server, insecure_http=insecure_http),
                          tls=server.startswith("https://"))


def describe_proxy(transport: httpx.BaseTransport) -> str:
    """`` through the proxy URL`` for a transport that uses one (credentials left out), else ``""``."""
    proxy = getattr(transport, "proxy", None)
    return f" through the proxy {_without_credentials(proxy)}" if isinstance(proxy, str) else ""


class OrkesTransport(httpx.BaseTransport):
    """httpcore's pool with deadline-bounded sockets, and answers capped at ``max_bytes``."""

    def __init__(self, *, proxy: str | None = None, tls: bool = True, max_bytes: int = MAX_ANSWER_BYTES) -> None:
        """``tls=False`` (a plain-http server, no https proxy) skips loading the CA bundle, which
        takes a tenth of a second and would never be used. ``SSL_CERT_FILE``/``SSL_CERT_DIR`` are honoured."""
        self.max_bytes = max_bytes
        self.proxy = proxy
        needs_tls = tls or (proxy is not None and proxy.startswith("https://"))
        ssl_context = httpx.create_ssl_context(verify=True, trust_env=True) if needs_tls else None
        backend = _DeadlineBackend(httpcore.SyncBackend())
        self._pool: httpcore.ConnectionPool
        if proxy is None:
            self._pool = httpcore.ConnectionPool(ssl_context=ssl_context, max_connections=100,
                                                 max_keepalive_connections=20, keepalive_expiry=5.0,
                                                 network_backend=backend)
            return
        parsed = httpx.Proxy(proxy)
        url = httpcore.URL(scheme=parsed.url.raw_scheme, host=parsed.url.raw_host, port=parsed.url.port,
                           target=parsed.url.raw_path)
        if parsed.url.scheme in ("socks5", "socks5h"):
            self._pool = httpcore.SOCKSProxy(proxy_url=url, proxy_auth=parsed.raw_auth, ssl_context=ssl_context,
                                             max_connections=100, max_keepalive_connections=20,
                                             keepalive_expiry=5.0, network_backend=backend)
        else:
            self._pool = httpcore.HTTPProxy(proxy_url=url, proxy_auth=parsed.raw_auth,
                                            proxy_headers=parsed.headers.raw, ssl_context=ssl_context,
                                            proxy_ssl_context=parsed.ssl_context, max_connections=100,
                                            max_keepalive_connections=20, keepalive_expiry=5.0,
                                            network_backend=backend)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, Iterable)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host, port=request.url.port,
                             target=request.url.raw_path),
            headers=request.headers.raw, content=request.stream, extensions=request.extensions)
        with _httpx_exceptions():
            response = self._pool.handle_request(core_request)
        headers = httpx.Headers(response.headers)
        encoding = headers.get("content-encoding", "identity").strip().lower()
        try:
            announced = int(headers.get("content-length", "0") or 0)
            decoder = _decoder(encoding)
        except BaseException:
            response.close()
            raise
        if announced > self.max_bytes:
            response.close()
            raise AnswerTooLarge(self.max_bytes)
        if decoder is not None:
            # Decoded here, within the cap, so that httpx does not inflate a compressed bomb itself.
            del headers["content-encoding"]
            headers.pop("content-length", None)
        assert isinstance(response.stream, Iterable)
        return httpx.Response(status_code=response.status, headers=headers,
                              stream=_CappedStream(response, self.max_bytes, decoder),
                              extensions=response.extensions)

    def close(self) -> None:
        self._pool.close()


class _CappedStream(httpx.SyncByteStream):
    def __init__(self, response: httpcore.Response, limit: int, decoder: Any | None) -> None:
        self._response = response
        self._limit = limit
        self._decoder = decoder

    def __iter__(self) -> Iterator[bytes]:
        received = produced = 0
        stream = self._response.stream
        assert isinstance(stream, Iterable)
        with _httpx_exceptions():
            for part in stream:
                received += len(part)
                if received > self._limit:
                    raise AnswerTooLarge(self._limit)
                if self._decoder is None:
                    yield part
                    continue
                for piece in _inflate(self._decoder, part, self._limit - produced, self._limit):
                    produced += len(piece)
                    yield piece
            if self._decoder is not None:
                tail = self._decoder.flush()
                if produced + len(tail) > self._limit:
                    raise AnswerTooLarge(self._limit)
                if tail:
                    yield tail

    def close(self) -> None:
        self._response.close()


def _decoder(encoding: str) -> Any | None:
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(32 + zlib.MAX_WBITS)  # zlib or gzip header, detected
    raise httpx.DecodingError(f"the server answered in the content encoding {encoding!r}, which was not asked for")


def _inflate(decoder: Any, data: bytes, room: int, limit: int) -> Iterator[bytes]:
    """Decompress ``data``, never producing more than ``room`` + 1 bytes before raising."""
    try:
        while data:
            piece = decoder.decompress(data, room + 1)
            if len(piece) > room:
                raise AnswerTooLarge(limit)
            room -= len(piece)
            yield piece
            data = decoder.unconsumed_tail
    except zlib.error as err:
        raise httpx.DecodingError(f"the answer's compression is broken: {err}") from None


# Most specific first: the first class an httpcore exception is an instance of wins.
_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout), (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout), (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException), (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError), (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError), (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError), (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _httpx_exceptions() -> Iterator[None]:
    try:
        yield
    except Exception as err:
        for core, mapped in _EXCEPTIONS:
            if isinstance(err, core):
                raise mapped(str(err)) from err
        raise


# ------------------------------------------------------------------------------------ sockets


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's blocking backend, each operation bounded by the deadline of the request in progress."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, _bounded(timeout, httpcore.ConnectTimeout), local_address,
                                         socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(path, _bounded(timeout, httpcore.ConnectTimeout), socket_options)
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname,
                                                     _bounded(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)
