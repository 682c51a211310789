"""HTTP/1.1 for the agent, both sides: ``httptools`` (llhttp, uvicorn's parser) reads, heads are written here.

h11 parsed and wrote every message in Python and was a third of the CPU the agent added to a
request (benchmarks/README.md, the credential agent). llhttp is as strict as h11 where it matters
to a proxy, and refuses what could smuggle a request past it: a ``Content-Length`` with a
``Transfer-Encoding``, two ``Content-Length``, a ``Transfer-Encoding`` other than chunked on a
request, CR or LF or NUL inside a header, obsolete line folding, bad chunk sizes. What llhttp leaves
to the application is checked here: an HTTP/1.1 request without exactly one ``Host``, a head longer
than ``MAX_HEAD``. Heads are written from headers llhttp has already parsed; ``head`` still refuses
any name or value carrying CR, LF or NUL, so no header can ever split a message it writes.

Each reader turns llhttp's callbacks into a queue of events (a head, body pieces, ``END``) and feeds
llhttp one read at a time, only when the queue is empty: memory stays bounded whatever the peer
sends, pipelined requests included.
"""

from __future__ import annotations

import asyncio
import http
import time
from collections import deque
from typing import Any

import httptools

MAX_HEAD = 64 * 1024
READ_CHUNK = 64 * 1024
END = None  # the end of a message, in a reader's queue
FORBIDDEN_IN_HEADERS = (b"\r", b"\n", b"\0")
NO_BODY_STATUS = frozenset({204, 304})
REASONS = {int(s): s.phrase.encode("ascii") for s in http.HTTPStatus}

Headers = list[tuple[bytes, bytes]]


class Malformed(Exception):
    """The peer broke HTTP/1.1 (or sent a head too long); carries nothing of what it sent."""


class Truncated(Exception):
    """The peer closed its connection in the middle of a message."""


class RequestHead:
    __slots__ = ("expect_continue", "headers", "http11", "keep_alive", "method", "target")

    def __init__(self, method: bytes, target: bytes, headers: Headers, keep_alive: bool, http11: bool) -> None:
        self.method = method
        self.target = target
        self.headers = headers  # names in lower case, as h11 gave them
        self.keep_alive = keep_alive
        self.http11 = http11
        self.expect_continue = False


class ResponseHead:
    __slots__ = ("close_delimited", "headers", "status")

    def __init__(self, status: int, headers: Headers, close_delimited: bool) -> None:
        self.status = status
        self.headers = headers
        self.close_delimited = close_delimited  # no length and not chunked: the body ends with the connection


def head(start_line: bytes, headers: Headers) -> bytes:
    """A message head; refuses (``ValueError``) any header that could end the head or start another."""
    lines = [start_line]
    for name, value in headers:
        for bad in FORBIDDEN_IN_HEADERS:
            if bad in name or bad in value:
                raise ValueError("a header with CR, LF or NUL is never written")
        lines.append(name + b": " + value)
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


def status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %s" % (status, REASONS.get(status, b""))


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


class _Reader:
    """llhttp's callbacks as a queue of events, fed from ``reader`` one read at a time."""

    def __init__(self, reader: asyncio.StreamReader, parser: Any) -> None:
        self.reader = reader
        self.parser = parser
        self.events: deque[Any] = deque()
        self.eof = False
        self.in_message = False  # a message has begun and has not ended
        self.head_bytes = 0  # read since the last head was complete (bounded by MAX_HEAD)
        self.awaiting_head = True
        self.heads = 0  # heads parsed so far
        self._error: Exception | None = None
        self._headers: Headers = []

    def release(self) -> None:
        """Done with: llhttp's parser holds this reader and this reader the parser; breaking the cycle
        gives their memory back now rather than at the collector's next pass (RSS grew ~1 MiB a run)."""
        self.parser = None

    def on_message_begin(self) -> None:
        self.in_message = True
        self._headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self.events.append(body)

    def on_message_complete(self) -> None:
        self.in_message = False
        self.awaiting_head = True
        self.head_bytes = 0
        self.events.append(END)

    async def _read(self) -> bytes:
        return await self.reader.read(READ_CHUNK)

    async def next(self) -> Any:
        """The next event; ``Malformed``/``Truncated`` once the queue before them is used up."""
        while not self.events:
            if self._error is not None:
                raise self._error
            if self.eof:
                raise Truncated()
            data = await self._read()
            if not data:
                self.eof = True
                self._at_eof()
                continue
            self._feed(data)
        return self.events.popleft()

    def _feed(self, data: bytes) -> None:
        if self.awaiting_head:
            room = MAX_HEAD - self.head_bytes
            if len(data) > room:  # the head must end within MAX_HEAD: parse up to there, and see
                heads = self.heads
                self._parse(data[:room])
                if self.heads == heads and self._error is None:
                    self._error = Malformed()
                if self._error is not None or self.eof:
                    return
                data = data[room:]
            else:
                self.head_bytes += len(data)
        self._parse(data)

    def _parse(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._upgraded()
        except httptools.HttpParserError:
            self._error = Malformed()

    def _head_done(self) -> None:
        self.awaiting_head = False
        self.heads += 1

    def _at_eof(self) -> None:
        if self.in_message:
            self._error = Truncated()

    def _upgraded(self) -> None:
        self._error = Malformed()


class RequestReader(_Reader):
    """Requests from a worker's connection."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        super().__init__(reader, None)
        self.parser = httptools.HttpRequestParser(self)
        self._url = b""
        self.upgraded = False  # after this request, the connection is closed
        self._waiting_continue = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._url = b""

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_headers_complete(self) -> None:
        parser = self.parser
        version = parser.get_http_version()
        request = RequestHead(parser.get_method(), self._url, self._headers, parser.should_keep_alive(),
                              version == "1.1")
        request.expect_continue = any(k == b"expect" and v.lower() == b"100-continue" for k, v in self._headers)
        self._waiting_continue = request.expect_continue
        self._head_done()
        self.events.append(request)

    def on_body(self, body: bytes) -> None:
        self._waiting_continue = False
        self.events.append(body)

    def on_message_complete(self) -> None:
        self._waiting_continue = False
        super().on_message_complete()

    async def _read(self) -> bytes:
        if self._waiting_continue:  # the worker waits for a 100 Continue the agent does not send
            raise Malformed()
        return await super()._read()

    def _upgraded(self) -> None:
        self.upgraded = True  # the request itself is queued; nothing after it is read
        self.eof = True

    async def request(self) -> RequestHead | None:
        """The next request's head, or ``None`` when the worker closed the connection between requests."""
        if self.upgraded and not self.events:
            return None
        try:
            event = await self.next()
        except Truncated:
            if self.in_message:
                raise
            return None
        if not isinstance(event, RequestHead):
            raise Malformed()
        hosts = sum(1 for k, _ in event.headers if k == b"host")
        if hosts > 1 or (event.http11 and hosts == 0):
            raise Malformed()
        return event


class ResponseReader(_Reader):
    """Answers on a connection to the server, 1xx skipped."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        super().__init__(reader, None)
        self.parser = httptools.HttpResponseParser(self)
        self.head_request = False
        self.close_delimited = False
        self.reusable = True
        self.waiting_since = 0.0  # time.monotonic() when the read now waiting began (0: none waits)
        self._skip = False

    async def _read(self) -> bytes:
        # No asyncio.timeout per read (a tenth of the agent's CPU per request): the pool's watchdog
        # fails a read that waits too long (connections.Pool).
        self.waiting_since = time.monotonic()
        data = await self.reader.read(READ_CHUNK)
        self.waiting_since = 0.0
        return data

    @property
    def finished_cleanly(self) -> bool:
        """The answer was read to its end and nothing followed it: the connection can carry another."""
        return self.reusable and not self.events and self._error is None and not self.eof and not self.in_message

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            self._skip = True  # 100 Continue, 103 Early Hints: the answer follows
            return
        self._head_done()
        headers = self._headers
        no_body = self.head_request or status in NO_BODY_STATUS
        self.close_delimited = not no_body and not any(
            k == b"content-length" or (k == b"transfer-encoding" and b"chunked" in v.lower()) for k, v in headers)
        self.reusable = self.parser.should_keep_alive() and not self.close_delimited and not self.head_request
        self.events.append(ResponseHead(status, headers, self.close_delimited))
        if self.head_request:  # llhttp cannot be told the request was HEAD: the answer ends here
            self.in_message = False
            self.events.append(END)
            self.eof = True

    def on_message_complete(self) -> None:
        if self._skip:
            self._skip = False
            self.in_message = False
            return
        super().on_message_complete()

    def _at_eof(self) -> None:
        if self.in_message and self.close_delimited and not self.awaiting_head:
            self.in_message = False
            self.events.append(END)
            return
        super()._at_eof()

    async def response(self, *, head_request: bool) -> ResponseHead:
        self.head_request = head_request
        event = await self.next()
        if not isinstance(event, ResponseHead):
            raise Malformed()
        return event
