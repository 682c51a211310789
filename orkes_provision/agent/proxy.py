"""The agent's HTTP/1.1 side: loopback connections from workers, forwarded to the server with the real token.

asyncio streams with ``httptools`` (llhttp) reading and heads written by ``http1`` on both sides, a
keep-alive pool of connections to the server (``connections``): one event loop serves any number of
waiting long polls without a thread each. A malformed request (or one framed two ways, or with a
head over 64 KiB) gets 400 and its connection closed; an answer the server breaks off closes the
worker's connection, never passed on as whole. Bodies are streamed both ways; only what the
agent must read is buffered, and bounded: the answers of polls (to see which tasks an instance
now holds), task updates (to see which it finished), and small request bodies (to replay a
request once when the server says the token expired). Nothing is cached.

The agent answers four paths itself: ``POST /api/token`` (a local key for a local token),
``GET /health``, ``GET /metrics``, and a 401 ``INVALID_TOKEN`` for a request without a valid
local token, which makes every SDK fetch a new one. A server that does not answer gives 503
with ``Retry-After``; a request that cannot be forwarded never loops back to the agent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from orkes_provision.agent import http1
from orkes_provision.agent.connections import (
    Body,
    Headers,
    Upstream,
    UpstreamError,
    UpstreamResponse,
    UpstreamTimeout,
    read_limited,
)
from orkes_provision.agent.instances import Instance, Instances
from orkes_provision.agent.metrics import Metrics
from orkes_provision.agent.tracking import UPDATE_V2, hand_back_body, is_poll, is_update, polled_tasks, updated_task
from orkes_provision.agent.upstream import KeyHolder, Unavailable
from orkes_provision.orkes.auth import TOKEN_ERRORS
from orkes_provision.orkes.denials import Denial, denial_in_body

REPLAYABLE_BODY = 1024 * 1024  # request bodies up to this are buffered (replay on an expired token)
MAX_TRACKED_BODY = 64 * 1024 * 1024  # polls and updates are read whole, up to this
RETRY_AFTER = "2"
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
                        b"trailer", b"transfer-encoding", b"upgrade", b"proxy-connection"})
NOT_FORWARDED = HOP_BY_HOP | {b"host", b"x-authorization", b"authorization", b"content-length"}
NOT_ANSWERED = HOP_BY_HOP | {b"content-length"}
TOKEN_HEADER = b"x-authorization"


class _Closed(Exception):
    """The worker closed its connection."""


class _Worker:
    """One worker's connection: its requests (parsed), the answers written to it, the request being served."""

    __slots__ = ("answered", "close_after", "request", "requests", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests = http1.RequestReader(reader)
        self.writer = writer
        self.request: http1.RequestHead | None = None
        self.answered = False  # the head of the answer to ``request`` was written
        self.close_after = False  # the connection ends with this answer

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()  # no wait unless the worker is slow to read; raises once it is gone

    async def respond(self, status: int, headers: Headers, body: bytes | None = None) -> None:
        """The whole answer, head and ``body`` (sized by the caller) in one write."""
        if self.close_after:
            headers = [*headers, (b"connection", b"close")]
        data = http1.head(http1.status_line(status), headers)
        self.answered = True
        await self.write(data + body if body else data)


class Proxy:
    def __init__(self, holder: KeyHolder, instances: Instances, metrics: Metrics, upstream: Upstream,
                 on_event: Callable[[str], None], on_denied: Callable[[Denial], None] | None = None) -> None:
        self.holder = holder
        self.instances = instances
        self.metrics = metrics
        self.upstream = upstream  # worker paths (/api/...) are sent as they are
        self.on_event = on_event
        self.on_denied = on_denied  # a 403 naming the definition and the access refused

    # ----- connections -----------------------------------------------------------------------

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        worker = _Worker(reader, writer)
        try:
            while True:
                request = await worker.requests.request()
                if request is None:
                    break
                worker.request, worker.answered = request, False
                worker.close_after = not request.keep_alive
                await self._handle(worker, request)
                if worker.close_after or worker.requests.upgraded:
                    break
        except http1.Malformed:
            if not worker.answered:
                worker.close_after = True
                await self._simple(worker, 400, {"status": 400, "message": "malformed HTTP request"})
        except (_Closed, ConnectionError, http1.Truncated, UpstreamError, ValueError):
            pass  # an answer that broke off in the middle: the worker sees its connection close
        finally:
            worker.requests.release()
            writer.close()

    @staticmethod
    async def _read_body(worker: _Worker, limit: int) -> bytes | None:
        """The whole request body, or ``None`` (and the rest discarded) when it is longer than ``limit``."""
        parts: list[bytes] = []
        size = 0
        requests = worker.requests
        while True:
            event = await requests.next()
            if event is http1.END:
                return b"".join(parts) if size <= limit else None
            if not isinstance(event, bytes):
                raise _Closed()
            size += len(event)
            if size <= limit:
                parts.append(event)

    @staticmethod
    async def _stream_body(worker: _Worker) -> AsyncIterator[bytes]:
        requests = worker.requests
        while True:
            event = await requests.next()
            if event is http1.END:
                return
            if not isinstance(event, bytes):
                raise _Closed()
            yield event

    # ----- requests --------------------------------------------------------------------------

    async def _handle(self, worker: _Worker, request: http1.RequestHead) -> None:
        method = request.method.decode("ascii", "replace")
        target = request.target.decode("ascii", "replace")
        path = target.split("?", 1)[0]
        if path in ("/health", "/metrics") and method == "GET":
            await self._read_body(worker, 0)
            await self._local_page(worker, path)
            return
        if not path.startswith("/api/"):
            await self._read_body(worker, 0)
            await self._simple(worker, 404, {"status": 404, "message": "the agent serves /api only"})
            return
        if path == "/api/token" and method == "POST":
            await self._token(worker)
            return
        token = next((v for k, v in request.headers if k == TOKEN_HEADER), b"").decode("ascii", "replace")
        instance = self.instances.by_token(token) if token else None
        if instance is None:
            await self._read_body(worker, 0)
            await self._simple(worker, 401, {"status": 401, "error": "INVALID_TOKEN",
                                             "message": "not a token of this agent"})
            return
        await self._forward(worker, request, method, path, instance)

    async def _token(self, worker: _Worker) -> None:
        body = await self._read_body(worker, 64 * 1024)
        key_id = secret = ""
        try:
            data = json.loads(body or b"")
            if isinstance(data, dict):
                key_id, secret = str(data.get("keyId") or ""), str(data.get("keySecret") or "")
        except (ValueError, RecursionError):
            pass
        token = self.instances.token_for(key_id.strip(), secret.strip())
        if token is None:
            await self._simple(worker, 401, {"status": 401, "message": "invalid key id or secret for this agent"})
            return
        await self._simple(worker, 200, {"token": token})

    async def _forward(self, worker: _Worker, request: http1.RequestHead, method: str, path: str,
                       instance: Instance) -> None:
        poll = is_poll(method, path) or (method == "POST" and path == UPDATE_V2)
        update = is_update(method, path)
        headers = _forwarded_headers(request, tracked=poll or update)
        body: Body
        if update or _replayable(request, method):
            body = await self._read_body(worker, MAX_TRACKED_BODY)
            if body is None:
                await self._simple(worker, 413, {"status": 413, "message": "request body too large"})
                return
        else:
            body = self._stream_body(worker)
        if poll:
            instance.polls += 1
            with self.metrics.lock:
                self.metrics.polls += 1
        stale: str | None = None
        for attempt in (1, 2):
            try:
                token = await self.holder.token(stale=stale)
            except Unavailable as err:
                await self._drain(body)
                await self._simple(worker, err.status, {"status": err.status, "message": err.message},
                                   retry_after=True)
                return
            response = await self._send_upstream(worker, request, [*headers, (TOKEN_HEADER, token.encode())], body)
            if response is None:
                return
            try:
                if response.status in (401, 403) or poll or update:
                    data = await read_limited(response, MAX_TRACKED_BODY)
                    if attempt == 1 and isinstance(body, bytes) and _is_token_error(response.status, data):
                        stale = token  # the server no longer takes this token: mint one and replay once
                        continue
                    if response.status == 403 and self.on_denied is not None:
                        denial = denial_in_body(data)
                        if denial is not None:
                            self.on_denied(denial)
                    await self._answer_tracked(worker, response, data, body, instance, poll, update)
                else:
                    await self._stream_answer(worker, response)
            finally:
                await response.aclose()
            return

    async def _send_upstream(self, worker: _Worker, request: http1.RequestHead,
                             headers: list[tuple[bytes, bytes]], body: Body) -> UpstreamResponse | None:
        """The server's answer (streamed), or ``None`` once the worker was told the server is not answering."""
        started = time.perf_counter()
        try:
            response = await self.upstream.send(request.method, request.target, headers, body)
        except UpstreamTimeout:
            self.metrics.observe_upstream(time.perf_counter() - started, None)
            await self._simple(worker, 504, {"status": 504, "message": "the server did not answer in time"},
                               retry_after=True)
            return None
        except UpstreamError:
            self.metrics.observe_upstream(time.perf_counter() - started, None)
            await self._simple(worker, 503, {"status": 503, "message": "the server does not answer"},
                               retry_after=True)
            return None
        self.metrics.observe_upstream(time.perf_counter() - started, response.status)
        return response

    async def _answer_tracked(self, worker: _Worker, response: UpstreamResponse, data: bytes | None, body: Body,
                              instance: Instance, poll: bool, update: bool) -> None:
        ok = 200 <= response.status < 300
        if update and ok and isinstance(body, bytes):
            finished = updated_task(body)
            if finished is not None and instance.held.pop(finished, None) is not None:
                instance.finished += 1
        got = polled_tasks(data) if poll and ok and data is not None else {}
        if got:
            instance.held.update(got)
            with self.metrics.lock:
                self.metrics.tasks_polled += len(got)
        if data is None:
            await self._simple(worker, 502, {"status": 502, "message": "the server's answer is too large"})
            return
        headers = [(k, v) for k, v in response.headers if k not in NOT_ANSWERED]
        try:
            if instance.gone and got:
                raise _Closed()
            if not _bodiless(worker, response.status):
                headers.append((b"content-length", b"%d" % len(data)))
            await worker.respond(response.status, headers, data)
        except (_Closed, ConnectionError):
            if got:  # polled for a worker that is gone: nobody will run them
                await self.hand_back({t: instance.held.pop(t) for t in got if t in instance.held})
            raise _Closed() from None
        self._count(response.status)

    async def _stream_answer(self, worker: _Worker, response: UpstreamResponse) -> None:
        headers = [(k, v) for k, v in response.headers if k not in HOP_BY_HOP]
        request = worker.request
        assert request is not None
        if _bodiless(worker, response.status):
            await worker.respond(response.status, headers)
            async for _ in response.chunks():
                pass
            self._count(response.status)
            return
        sized = any(k == b"content-length" for k, _ in headers)
        chunked = not sized and request.http11
        if chunked:
            headers.append((b"transfer-encoding", b"chunked"))
        elif not sized:
            worker.close_after = True  # HTTP/1.0 without a length: the end of the body is the end of the connection
        await worker.respond(response.status, headers)
        async for piece in response.chunks():
            if piece:
                await worker.write(http1.chunk(piece) if chunked else piece)
        if chunked:
            await worker.write(http1.LAST_CHUNK)
        self._count(response.status)

    # ----- the agent's own answers ------------------------------------------------------------

    async def _local_page(self, worker: _Worker, path: str) -> None:
        ready = self.holder.state == "ready"
        if path == "/health":
            body: dict[str, Any] = {"status": "ready" if ready else "not ready", "state": self.holder.state,
                                    "keyId": self.holder.key_id}
            if self.holder.problem:
                body["problem"] = self.holder.problem
            await self._simple(worker, 200 if ready else 503, body)
            return
        held = {i.label: len(i.held) for i in self.instances.all()}
        text = self.metrics.render(held, ready).encode()
        await worker.respond(200, [(b"content-type", b"text/plain; version=0.0.4"),
                                   (b"content-length", b"%d" % len(text))], text)

    async def _simple(self, worker: _Worker, status: int, body: dict[str, Any], *, retry_after: bool = False) -> None:
        data = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
        if retry_after:
            headers.append((b"retry-after", RETRY_AFTER.encode()))
        if status >= 500:
            worker.close_after = True
        await worker.respond(status, headers, data)
        self._count(status)

    # ----- hand-back --------------------------------------------------------------------------

    async def hand_back(self, held: dict[str, str]) -> list[str]:
        """Return ``held`` (task id -> workflow id) to the queue with the real key; the ids it could."""
        done: list[str] = []
        for task_id, workflow_id in held.items():
            if await self._hand_back_one(task_id, workflow_id):
                done.append(task_id)
        with self.metrics.lock:
            self.metrics.tasks_handed_back += len(done)
        return done

    async def _hand_back_one(self, task_id: str, workflow_id: str) -> bool:
        stale: str | None = None
        for _ in (1, 2):
            try:
                token = await self.holder.token(stale=stale)
                response = await self.upstream.send(b"POST", b"/api/tasks", [
                    (b"content-type", b"application/json"), (TOKEN_HEADER, token.encode())],
                    hand_back_body(task_id, workflow_id))
                try:
                    data = await read_limited(response, MAX_TRACKED_BODY)
                finally:
                    await response.aclose()
            except (Unavailable, UpstreamError) as err:
                self.on_event(f"cannot hand task {task_id} back to the queue ({_reason(err)}); "
                              "it waits for its response timeout")
                return False
            if _is_token_error(response.status, data):
                stale = token
                continue
            if 200 <= response.status < 300:
                return True
            self.on_event(f"cannot hand task {task_id} back to the queue (HTTP {response.status}); "
                          "it waits for its response timeout")
            return False
        return False

    # ----- plumbing ---------------------------------------------------------------------------

    @staticmethod
    async def _drain(body: Body) -> None:
        if body is not None and not isinstance(body, bytes):
            async for _ in body:
                pass

    def _count(self, status: int) -> None:
        with self.metrics.lock:
            self.metrics.requests[status] += 1


def _is_token_error(status: int, data: bytes | None) -> bool:
    if status not in (401, 403) or not data:
        return False
    try:
        body = json.loads(data)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return False
    return isinstance(body, dict) and body.get("error") in TOKEN_ERRORS


def _reason(err: Exception) -> str:
    return err.message if isinstance(err, Unavailable) else str(err)


def _bodiless(worker: _Worker, status: int) -> bool:
    """Is the answer to the worker's request a head alone (HEAD, 1xx, 204, 304)?"""
    return (worker.request is not None and worker.request.method == b"HEAD") or status < 200 \
        or status in http1.NO_BODY_STATUS


def _forwarded_headers(request: http1.RequestHead, *, tracked: bool) -> list[tuple[bytes, bytes]]:
    """The worker's headers the server gets; an answer the agent reads (``tracked``) is asked for as plain bytes."""
    headers = [(k, v) for k, v in request.headers if k not in NOT_FORWARDED]
    if tracked:
        headers = [(k, v) for k, v in headers if k != b"accept-encoding"] + [(b"accept-encoding", b"identity")]
    return headers


def _replayable(request: http1.RequestHead, method: str) -> bool:
    """Is the worker's body read whole (so that a token error can be replayed), rather than streamed?"""
    length = next((v for k, v in request.headers if k == b"content-length"), None)
    return (length is not None and int(length) <= REPLAYABLE_BODY) or method in ("GET", "HEAD", "DELETE")
