"""The agent's HTTP/1.1 on both sides (agent/http1.py through agent/proxy.py), against a small loopback server.

What a worker sends is parsed strictly (llhttp); what the agent writes is built from parsed headers
and can never carry CR or LF inside a header; bodies stream; what the server sends is relayed or,
when it breaks off, the worker's connection is closed rather than handed a short answer as whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from orkes_provision.agent import http1
from orkes_provision.agent.connections import Pool
from orkes_provision.agent.instances import Instances
from orkes_provision.agent.metrics import Metrics
from orkes_provision.agent.proxy import Proxy
from tests.agent.test_agent_connections import Server, ok, run

REAL_TOKEN = "real-token-never-shown"


class _Holder:
    state = "ready"
    key_id = "real-key"
    problem = None

    async def token(self, *, stale: str | None = None) -> str:
        return REAL_TOKEN


@asynccontextmanager
async def agent_before(server: Server) -> AsyncIterator[tuple[int, str]]:
    """An agent's proxy on loopback in front of ``server``: (port, a worker's local token)."""
    instances = Instances()
    instances.register("worker")
    token = next(iter(instances.all())).token
    upstream = Pool(server.root)
    proxy = Proxy(_Holder(), instances, Metrics(), upstream, lambda message: None)  # type: ignore[arg-type]
    listening = await asyncio.start_server(proxy.connection, "127.0.0.1", 0)
    try:
        yield int(listening.sockets[0].getsockname()[1]), token
    finally:
        listening.close()
        await upstream.aclose()


async def exchange(port: int, data: bytes, *, then: Callable[[asyncio.StreamWriter], Awaitable[None]] | None = None
                   ) -> bytes:
    """Everything the agent writes on one worker connection until it closes it (after ``data`` and ``then``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    if then is not None:
        await then(writer)
    received = await reader.read()  # until the agent closes
    writer.close()
    return received


def request(token: str, head: bytes = b"GET /api/metadata/taskdefs HTTP/1.1", extra: bytes = b"",
            body: bytes = b"") -> bytes:
    return head + b"\r\nHost: localhost\r\nX-Authorization: " + token.encode() + b"\r\n" + extra + b"\r\n" + body


CLOSE = b"Connection: close\r\n"


@pytest.mark.parametrize("bad", [
    b"GET /api/x HTTP/1.1\r\nHost: a\r\nBad Name: 1\r\n\r\n",
    b"GET /api/x HTTP/1.1\r\nHost: a\r\nX: a\r\n folded\r\n\r\n",
    b"GET /api/x HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
    b"GET /api/x HTTP/1.1\r\nX: no host\r\n\r\n",
    b"GET /api/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET /api/x HTTP/1.1\r\nHost: a\r\nX: " + b"a" * (http1.MAX_HEAD + 1024) + b"\r\n\r\n",
    b"NOT HTTP AT ALL\r\n\r\n",
])
def test_a_malformed_request_gets_400_and_its_connection_closed_and_nothing_reaches_the_server(bad: bytes) -> None:
    async def scenario() -> None:
        async with Server(ok) as server, agent_before(server) as (port, _):
            answer = await exchange(port, bad)
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert b"connection: close" in answer.lower()
        assert server.requests == []
    run(scenario())


@pytest.mark.parametrize("framing", [
    b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
    b"Content-Length: 4\r\nContent-Length: 40\r\n",
    b"Transfer-Encoding: gzip\r\n",
    b"Transfer-Encoding: chunked, identity\r\n",
])
def test_a_request_framed_two_ways_is_refused_and_no_smuggled_request_reaches_the_server(framing: bytes) -> None:
    smuggled = b"0\r\n\r\nGET /api/admin HTTP/1.1\r\nHost: localhost\r\n\r\n"

    async def scenario() -> None:
        async with Server(ok) as server, agent_before(server) as (port, token):
            answer = await exchange(port, request(token, b"POST /api/tasks HTTP/1.1", framing, smuggled))
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert answer.count(b"HTTP/1.1") == 1
        assert server.requests == []
    run(scenario())


@pytest.mark.parametrize("value", [b"a\r\nInjected: 1", b"a\nInjected: 1", b"a\rb", b"a\0b"])
def test_a_header_with_cr_lf_or_nul_is_never_written(value: bytes) -> None:
    with pytest.raises(ValueError, match="never written") as raised:
        http1.head(b"HTTP/1.1 200 OK", [(b"x-fine", b"1"), (b"x", value)])
    assert b"Injected" not in str(raised.value).encode()
    with pytest.raises(ValueError, match="never written"):
        http1.head(b"HTTP/1.1 200 OK", [(b"x" + value, b"1")])


@pytest.mark.parametrize("header", [b"x: a\r\n folded", b"x: a\rInjected: 1", b"x: a\nInjected: 1"])
def test_a_server_answer_with_a_split_header_is_503_and_never_relayed(header: bytes) -> None:
    async def split(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\n" + header + b"\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        return False

    async def scenario() -> None:
        async with Server(split) as server, agent_before(server) as (port, token):
            answer = await exchange(port, request(token, extra=CLOSE))
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"Injected" not in answer
    run(scenario())


def test_a_chunked_upload_streams_to_the_server_before_the_worker_has_sent_all_of_it() -> None:
    first_piece = asyncio.Event()

    async def server_side(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head
        assert await reader.readuntil(b"one,\r\n") == b"4\r\none,\r\n"
        first_piece.set()  # the worker sends the rest only now: the agent did not wait for the whole body
        rest = await reader.readuntil(b"0\r\n\r\n")
        body = b"one," + rest.split(b"\r\n")[1]
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    async def rest(writer: asyncio.StreamWriter) -> None:
        await first_piece.wait()
        writer.write(b"3\r\ntwo\r\n0\r\n\r\n")

    async def scenario() -> None:
        listening = await asyncio.start_server(server_side, "127.0.0.1", 0)
        server = Server(ok)
        server.server = listening
        async with agent_before(server) as (port, token):
            answer = await exchange(port, request(token, b"PUT /api/metadata/taskdefs HTTP/1.1",
                                                  b"Transfer-Encoding: chunked\r\n" + CLOSE, b"4\r\none,\r\n"),
                                    then=rest)
        listening.close()
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert answer.endswith(b"\r\n\r\none,two")
    run(scenario())


def test_a_1xx_from_the_server_is_skipped_and_the_answer_after_it_relayed() -> None:
    async def early(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n"
                     b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal")
        await writer.drain()
        return True

    async def scenario() -> None:
        async with Server(early) as server, agent_before(server) as (port, token):
            answer = await exchange(port, request(token, extra=CLOSE))
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert answer.count(b"HTTP/1.1") == 1
        assert answer.endswith(b"\r\n\r\nfinal")
    run(scenario())


@pytest.mark.parametrize("cut", [b"content-length: 10\r\n\r\nabc", b"transfer-encoding: chunked\r\n\r\n5\r\nabc"])
def test_an_answer_cut_short_by_the_server_closes_the_worker_s_connection(cut: bytes) -> None:
    async def short(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\n" + cut)
        await writer.drain()
        return False

    async def scenario() -> None:
        async with Server(short) as server, agent_before(server) as (port, token):
            # two requests on a keep-alive connection: the second is never answered, the connection ends
            answer = await exchange(port, request(token) + request(token))
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert answer.count(b"HTTP/1.1") == 1
        assert b"\r\n0\r\n\r\n" not in answer  # never ended as if whole
    run(scenario())


def test_keep_alive_serves_requests_in_a_row_and_a_streamed_answer_of_unknown_length_goes_chunked() -> None:
    async def unsized(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        await writer.drain()
        return True

    async def scenario() -> None:
        async with Server(unsized) as server, agent_before(server) as (port, token):
            answer = await exchange(port, request(token) + request(token, extra=CLOSE))
        assert answer.count(b"HTTP/1.1 200 ") == 2
        assert answer.count(b"transfer-encoding: chunked") == 2
        assert answer.endswith(b"abc\r\n2\r\nde\r\n0\r\n\r\n")
        assert server.connections == 1
        assert all(b"x-authorization: " + REAL_TOKEN.encode() in r for r in server.requests)
    run(scenario())


def test_a_request_waiting_for_100_continue_gets_400_as_before() -> None:
    async def scenario() -> None:
        async with Server(ok) as server, agent_before(server) as (port, token):
            answer = await exchange(port, request(token, b"PUT /api/metadata/taskdefs HTTP/1.1",
                                                  b"Content-Length: 5\r\nExpect: 100-continue\r\n"))
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert server.requests == []
    run(scenario())


def test_an_http_1_0_worker_gets_its_answer_and_the_connection_closed() -> None:
    async def scenario() -> None:
        async with Server(ok) as server, agent_before(server) as (port, token):
            answer = await exchange(port, request(token, b"GET /api/metadata/taskdefs HTTP/1.0"))
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert answer.endswith(b"seen /api/metadata/taskdefs")
    run(scenario())

