"""The agent's keep-alive pool towards the server (agent/connections.py), against a small loopback server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from orkes_provision.agent import connections
from orkes_provision.agent.connections import Pool, UpstreamError, UpstreamTimeout, read_limited

WAIT = 30.0  # generous: only a broken pool waits this long


class Server:
    """An HTTP/1.1 server on loopback that answers each request with ``answer`` and counts connections."""

    def __init__(self, answer: Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def root(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                body = b""
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        body = await reader.readexactly(int(line.split(b":", 1)[1]))
                    if line.lower().startswith(b"transfer-encoding: chunked"):
                        body = await _read_chunked(reader)
                self.requests.append(head + body)
                if not await self.answer(head + body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readline()).strip(), 16)
        parts.append(await reader.readexactly(size + 2))
        if size == 0:
            return b"".join(p[:-2] for p in parts)


async def ok(request: bytes, writer: asyncio.StreamWriter) -> bool:
    body = b"seen " + request.split(b" ", 2)[1]
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    return True


def run(coroutine: Awaitable[None]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(WAIT):
            await coroutine
    asyncio.run(bounded())


def test_requests_in_a_row_reuse_one_connection_and_reach_the_server_s_path_prefix() -> None:
    async def scenario() -> None:
        async with Server(ok) as server:
            pool = Pool(server.root + "/conductor")
            for n in range(5):
                response = await pool.send(b"GET", b"/api/tasks/poll/t%d" % n, [(b"x-authorization", b"tok")], b"")
                assert await read_limited(response, 1024) == b"seen /conductor/api/tasks/poll/t%d" % n
                await response.aclose()
            await pool.aclose()
        assert server.connections == 1
        assert b"host: 127.0.0.1:" in server.requests[0]
        assert b"content-length" not in server.requests[0]  # an empty GET has no body to announce
    run(scenario())


def test_a_connection_the_server_closed_while_idle_is_replaced_without_failing_the_request() -> None:
    async def close_after_answer(request: bytes, writer: asyncio.StreamWriter) -> bool:
        body = b"ok"
        # keep-alive announced, then the server drops the connection: the pool learns it on reuse
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n" + body)
        await writer.drain()
        return False

    async def scenario() -> None:
        async with Server(close_after_answer) as server:
            pool = Pool(server.root)
            for _ in range(3):
                response = await pool.send(b"POST", b"/api/tasks", [], b'{"a": 1}')
                assert await read_limited(response, 1024) == b"ok"
                await response.aclose()
                await asyncio.sleep(0)  # let the close reach the pool's idle connection, or not: both must work
            await pool.aclose()
        assert server.connections == 3
        assert all(r.endswith(b'{"a": 1}') for r in server.requests)
    run(scenario())


def test_a_streamed_body_goes_chunked_and_a_long_answer_comes_back_in_pieces() -> None:
    big = b"x" * (1024 * 1024)

    async def echo_big(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(big))
        writer.write(big)
        await writer.drain()
        return True

    async def body() -> AsyncIterator[bytes]:
        for part in (b"one,", b"two,", b"three"):
            yield part

    async def scenario() -> None:
        async with Server(echo_big) as server:
            pool = Pool(server.root)
            response = await pool.send(b"PUT", b"/api/metadata/taskdefs", [], body())
            pieces = [chunk async for chunk in response.chunks()]
            await response.aclose()
            assert b"".join(pieces) == big and len(pieces) > 1
            await pool.aclose()
        assert server.requests[0].endswith(b"one,two,three")
        assert b"transfer-encoding: chunked" in server.requests[0]
    run(scenario())


def test_an_answer_longer_than_the_limit_reads_as_none_and_its_connection_is_not_reused() -> None:
    async def scenario() -> None:
        async with Server(ok) as server:
            pool = Pool(server.root)
            response = await pool.send(b"GET", b"/api/" + b"a" * 100, [], None)
            assert await read_limited(response, 10) is None
            await response.aclose()
            response = await pool.send(b"GET", b"/api/b", [], None)
            assert await read_limited(response, 1024) == b"seen /api/b"
            await response.aclose()
            await pool.aclose()
        assert server.connections == 2  # the half-read answer's connection was closed, not pooled
    run(scenario())


def test_a_server_that_is_not_there_is_an_upstream_error_that_names_no_header() -> None:
    async def scenario() -> None:
        async with Server(ok) as server:
            root = server.root
        pool = Pool(root)
        with pytest.raises(UpstreamError) as caught:
            await pool.send(b"GET", b"/api/x", [(b"x-authorization", b"real-token-value")], None)
        assert "real-token-value" not in str(caught.value)
        await pool.aclose()
    run(scenario())


@pytest.mark.parametrize("answer", [b"SSH-2.0-OpenSSH_9.6\r\n",
                                    b"HTTP/1.1 200 OK\r\nx: " + b"a" * 300_000 + b"\r\n\r\n",  # held: 64 KiB a read
                                    b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc"],
                         ids=["not HTTP", "head too large", "body cut short"])
def test_a_server_answering_garbage_is_an_upstream_error_and_its_connection_is_dropped(answer: bytes) -> None:
    async def garbage(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer)
        await writer.drain()
        return False

    async def scenario() -> None:
        async with Server(garbage) as server:
            pool = Pool(server.root)
            async def whole() -> bytes | None:
                response = await pool.send(b"GET", b"/api/x", [], None)
                try:
                    return await read_limited(response, 1 << 20)
                finally:
                    await response.aclose()

            with pytest.raises(UpstreamError):
                await whole()
            assert not pool._idle  # nothing broken is kept for the next request
            await pool.aclose()
    run(scenario())


async def pool_with_one_idle_connection(server: Server) -> tuple[Pool, connections._Connection]:
    """A pool that has answered one request, and the idle connection it keeps for the next."""
    pool = Pool(server.root)
    response = await pool.send(b"GET", b"/api/first", [], None)
    await read_limited(response, 1024)
    await response.aclose()
    return pool, pool._idle[-1]


def test_a_streamed_body_is_sent_again_on_a_new_connection_when_a_reused_one_fails_before_the_body_started(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def body() -> AsyncIterator[bytes]:
        for part in (b"one,", b"two"):
            yield part

    async def scenario() -> None:
        async with Server(ok) as server:
            pool, stale = await pool_with_one_idle_connection(server)

            def head_write_fails(data: bytes) -> None:
                raise ConnectionResetError("the server closed it as it was taken")
            monkeypatch.setattr(stale.writer, "write", head_write_fails)
            response = await pool.send(b"PUT", b"/api/second", [], body())
            assert await read_limited(response, 1024) == b"seen /api/second"
            await response.aclose()
            await pool.aclose()
        assert server.connections == 2
        assert server.requests[-1].endswith(b"one,two")
    run(scenario())


def test_a_streamed_body_already_read_from_is_not_sent_again_when_its_reused_connection_fails() -> None:
    async def close_after_answer(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await ok(request, writer)
        return False

    pulled = []

    async def body() -> AsyncIterator[bytes]:
        pulled.append(1)
        yield b"once"

    async def scenario() -> None:
        async with Server(close_after_answer) as server:
            pool, stale = await pool_with_one_idle_connection(server)
            stale.reader.at_eof = lambda: False  # type: ignore[method-assign]
            stale.writer.is_closing = lambda: False  # type: ignore[method-assign]
            with pytest.raises(UpstreamError):
                await pool.send(b"PUT", b"/api/second", [], body())
            await pool.aclose()
        assert pulled == [1]  # read once, never replayed as an empty or partial body
    run(scenario())


@pytest.mark.parametrize("stall", ["head", "body"])
def test_a_server_that_stops_sending_is_an_upstream_timeout_and_its_connection_is_dropped(
        stall: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connections, "READ_TIMEOUT", 0.05)
    monkeypatch.setattr(connections, "WATCH_EVERY", 0.05)

    async def silent(request: bytes, writer: asyncio.StreamWriter) -> bool:
        if stall == "body":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
        await asyncio.Event().wait()  # never a (whole) answer
        return False

    async def whole(pool: Pool) -> bytes | None:
        response = await pool.send(b"GET", b"/api/slow", [], None)
        try:
            return await read_limited(response, 1024)
        finally:
            await response.aclose()

    async def scenario() -> None:
        async with Server(silent) as server:
            pool = Pool(server.root)
            with pytest.raises(UpstreamTimeout):
                await whole(pool)
            assert not pool._idle
            await pool.aclose()
    run(scenario())
