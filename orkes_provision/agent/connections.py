"""The agent's connections to the server: a keep-alive pool of HTTP/1.1 connections on asyncio streams.

Messages are read with ``httptools`` and heads written by ``http1``, as on the workers' side (h11
before: a third of the agent's CPU per request). The server's side once went through
``httpx.AsyncClient``, whose per-request machinery (request and response models, anyio and
sniffio layers, the pool's locks and events) was most of the CPU the agent added to each request
(benchmarks/README.md, the credential agent). This pool does only what a reverse proxy needs: a
connection per request in flight, idle ones kept (up to ``max_idle``, for ``keepalive`` seconds)
and reused last-in first-out, bodies streamed both ways, nothing cached. A request that fails on a
reused connection before any answer arrived, with a body that can be sent again, is retried once
on a new one (the server closed the idle connection as it was taken). ``TCP_NODELAY`` is set on
every connection (asyncio's default, said here because a 40 ms Nagle stall once hid in the sandbox).

A server reached through a proxy (``HTTPS_PROXY`` and friends) keeps ``httpx`` (``ProxiedUpstream``):
CONNECT tunnels and SOCKS are not worth writing again for the rare agent behind one.

Errors are ``UpstreamError`` (no answer: 503) and ``UpstreamTimeout`` (504); neither carries a
header, a token or a body.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Protocol

import httpx

from orkes_provision.agent import http1

READ_CHUNK = 64 * 1024
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 300.0  # longer than any long poll the server holds
WATCH_EVERY = 5.0  # how often the pool looks for reads waiting longer than READ_TIMEOUT
WRITE_TIMEOUT = 60.0
POOL_TIMEOUT = 60.0

BODILESS = frozenset({b"GET", b"HEAD", b"DELETE", b"OPTIONS"})  # no content-length: 0 when empty

Body = bytes | AsyncIterator[bytes] | None
Headers = list[tuple[bytes, bytes]]


class UpstreamError(Exception):
    """The server did not answer (refused, reset, closed); carries no secret."""


class UpstreamTimeout(UpstreamError):
    """The server did not answer in time."""


class UpstreamResponse(Protocol):
    status: int
    headers: Headers

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Upstream(Protocol):
    async def send(self, method: bytes, target: bytes, headers: Headers, body: Body) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


async def read_limited(response: UpstreamResponse, limit: int) -> bytes | None:
    """The whole answer body, or ``None`` when it is longer than ``limit``."""
    parts: list[bytes] = []
    size = 0
    async for chunk in response.chunks():
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


def upstream_for(root: str, proxy: str | None) -> Upstream:
    """The upstream for the server at ``root`` (scheme://host[:port], no path), direct or through ``proxy``."""
    return ProxiedUpstream(root, proxy) if proxy is not None else Pool(root)


# ----- direct: httptools on asyncio streams ------------------------------------------------------


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.answer: http1.ResponseReader | None = None  # the answer being read, a new parser for each
        self.idle_since = time.monotonic()
        self.reused = False
        self.body_started = False  # a streamed body, once read from, cannot be sent again

    def usable(self, now: float, keepalive: float) -> bool:
        return now - self.idle_since < keepalive and not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()

    def end_answer(self) -> None:
        """Done with the answer read on this connection: its parser's memory goes back now."""
        if self.answer is not None:
            self.answer.release()
        self.answer = None

    async def drain(self) -> None:
        """Wait for the server to take what was written, only when there is something to wait for."""
        if self.writer.transport.get_write_buffer_size():
            async with asyncio.timeout(WRITE_TIMEOUT):
                await self.writer.drain()


class _PooledResponse:
    def __init__(self, pool: Pool, connection: _Connection, answer: http1.ResponseReader,
                 head: http1.ResponseHead) -> None:
        self.status = head.status
        self.headers: Headers = head.headers
        self._pool = pool
        self._connection: _Connection | None = connection
        self._answer = answer
        self._done = False

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._connection is None or self._done:
            return
        answer = self._answer
        try:
            while True:
                event = await answer.next()
                if event is http1.END:
                    self._done = True
                    return
                yield event
        except TimeoutError:
            raise UpstreamTimeout("the server stopped sending its answer") from None
        except (OSError, http1.Malformed, http1.Truncated) as err:
            raise UpstreamError(f"the server's answer broke off ({type(err).__name__})") from None

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        self._pool.give_back(connection, reusable=self._done and self._answer.finished_cleanly)


class Pool:
    """Connections to one server, ``max_connections`` at most, idle ones kept for reuse."""

    def __init__(self, root: str, *, max_connections: int = 1000, max_idle: int = 200,
                 keepalive: float = 5.0) -> None:
        parts = urllib.parse.urlsplit(root)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.tls else 80)
        default_port = parts.port is None or parts.port == (443 if self.tls else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = (host if default_port else f"{host}:{self.port}").encode("ascii")
        self.prefix = parts.path.rstrip("/").encode("ascii")  # a server under a path: https://host/conductor
        self.max_idle = max_idle
        self.keepalive = keepalive
        self._ssl: ssl.SSLContext | None = httpx.create_ssl_context(verify=True, trust_env=True) if self.tls else None
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._open: set[_Connection] = set()
        self._watchdog: asyncio.TimerHandle | None = None

    async def send(self, method: bytes, target: bytes, headers: Headers, body: Body) -> UpstreamResponse:
        if self._slots.locked():  # a free slot is taken at once: no timeout to arm and disarm
            try:
                async with asyncio.timeout(POOL_TIMEOUT):
                    await self._slots.acquire()
            except TimeoutError:
                raise UpstreamTimeout("too many requests to the server in flight") from None
        else:
            await self._slots.acquire()
        try:
            return await self._send(method, target, headers, body)
        except BaseException:
            self._slots.release()
            raise

    async def _send(self, method: bytes, target: bytes, headers: Headers, body: Body) -> UpstreamResponse:
        framing: Headers = []
        if body is not None and not isinstance(body, bytes):
            framing = [(b"transfer-encoding", b"chunked")]
        elif body or method not in BODILESS:
            framing = [(b"content-length", b"%d" % len(body or b""))]
        try:
            start = http1.head(method + b" " + self.prefix + target + b" HTTP/1.1",
                               [(b"host", self.authority), *headers, *framing])
        except ValueError:
            raise UpstreamError("a header that cannot be sent") from None
        while True:
            connection = await self._take()
            try:
                await _write_request(connection, start, body)
                answer = http1.ResponseReader(connection.reader)
                connection.answer = answer
                self._watch()
                return _PooledResponse(self, connection, answer, await _read_answer(answer, method))
            except TimeoutError:
                self._discard(connection)
                raise UpstreamTimeout("the server did not answer in time") from None
            except (OSError, UpstreamError) as err:
                self._discard(connection)
                if connection.reused and not connection.body_started:
                    continue  # the server closed this idle connection as it was taken: once more on a new one
                raise UpstreamError(f"the server does not answer ({type(err).__name__})") from None
            except BaseException:
                self._discard(connection)
                raise

    async def _take(self) -> _Connection:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.usable(now, self.keepalive):
                connection.reused = True
                return connection
            self._discard(connection)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self._ssl, server_hostname=self.host if self._ssl else None,
                    limit=READ_CHUNK)
        except TimeoutError:
            raise UpstreamTimeout("the server did not accept a connection in time") from None
        except (OSError, ssl.SSLError) as err:
            raise UpstreamError(f"cannot connect to the server ({type(err).__name__})") from None
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = _Connection(reader, writer)
        self._open.add(connection)
        return connection

    def give_back(self, connection: _Connection, *, reusable: bool) -> None:
        """The answer on ``connection`` is finished with (read whole when ``reusable``)."""
        self._slots.release()
        if reusable and len(self._idle) < self.max_idle:
            connection.end_answer()
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
            return
        self._discard(connection)

    def _discard(self, connection: _Connection) -> None:
        self._open.discard(connection)
        connection.end_answer()
        connection.close()

    def _watch(self) -> None:
        """Fail, with ``TimeoutError``, every read from the server waiting longer than ``READ_TIMEOUT``.

        One timer for the pool, while answers are awaited, rather than a timeout armed and disarmed
        around every read."""
        if self._watchdog is not None:
            return
        self._watchdog = asyncio.get_running_loop().call_later(WATCH_EVERY, self._check)

    def _check(self) -> None:
        self._watchdog = None
        late = time.monotonic() - READ_TIMEOUT
        for connection in self._open:
            answer = connection.answer
            if answer is not None and 0.0 < answer.waiting_since < late:
                connection.reader.set_exception(TimeoutError())  # the waiting read raises it
        if any(c.answer is not None for c in self._open):
            self._watch()

    async def aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()


# ----- through a proxy: httpx ------------------------------------------------------------------


class _ProxiedResponse:
    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.headers: Headers = [(k.lower(), v) for k, v in response.headers.raw]
        self._response = response

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_raw():
                yield chunk
        except httpx.TimeoutException:
            raise UpstreamTimeout("the server stopped sending its answer") from None
        except httpx.HTTPError as err:
            raise UpstreamError(f"the server's answer broke off ({type(err).__name__})") from None

    async def aclose(self) -> None:
        await self._response.aclose()


class ProxiedUpstream:
    def __init__(self, root: str, proxy: str) -> None:
        self.root = root
        self.client = httpx.AsyncClient(
            proxy=proxy, trust_env=False, follow_redirects=False,
            timeout=httpx.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT, write=WRITE_TIMEOUT,
                                  pool=POOL_TIMEOUT),
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200))
        self.client.headers.clear()  # what the worker sent, nothing of httpx's own

    async def send(self, method: bytes, target: bytes, headers: Headers, body: Body) -> UpstreamResponse:
        request = self.client.build_request(method.decode("ascii"), self.root + target.decode("ascii"),
                                            headers=headers, content=body)
        try:
            return _ProxiedResponse(await self.client.send(request, stream=True))
        except httpx.TimeoutException:
            raise UpstreamTimeout("the server did not answer in time") from None
        except httpx.TransportError as err:
            raise UpstreamError(f"the server does not answer ({type(err).__name__})") from None

    async def aclose(self) -> None:
        await self.client.aclose()


async def _write_request(connection: _Connection, start: bytes, body: Body) -> None:
    """Send the request head ``start`` and its body: a whole body in one write, a streamed one chunk by chunk."""
    writer = connection.writer
    if isinstance(body, bytes) or body is None:
        writer.write(start + body if body else start)
    else:
        writer.write(start)
        connection.body_started = True
        async for piece in body:
            if piece:
                writer.write(http1.chunk(piece))
                if writer.transport.get_write_buffer_size() > READ_CHUNK:
                    await connection.drain()
        writer.write(http1.LAST_CHUNK)
    await connection.drain()


async def _read_answer(answer: http1.ResponseReader, method: bytes) -> http1.ResponseHead:
    """The head of the server's answer, past any 1xx."""
    try:
        return await answer.response(head_request=method == b"HEAD")
    except (http1.Malformed, http1.Truncated):
        raise UpstreamError("the server closed the connection without answering") from None
