"""A scriptable fake Orkes server for ``httpx.MockTransport``, and JWT helpers."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.orkes.retry import RetryPolicy

SERVER = "https://orkes.example.com/api"
KEY_ID = "admin-key-id"
SECRET = "Sentinel-Secret-8f3a"  # a value that must never show up in output

Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def make_jwt(lifetime: float = 3600.0, *, iat: float | None = None, sub: str = "app:admin") -> str:
    issued = time.time() if iat is None else iat

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'sub': sub, 'iat': issued, 'exp': issued + lifetime})}.c2ln"


@dataclass
class Seen:
    method: str
    path: str  # raw, percent-encoded, with /api
    query: str
    headers: httpx.Headers
    body: Any


@dataclass
class FakeOrkes:
    """Answers ``/api/token`` with fresh JWTs and everything else from scripts or routes.

    ``script(method, path, *replies)`` queues one-shot replies (responses, or exceptions to
    raise as transport errors); ``route(method, path, reply)`` sets the reply used when the queue
    is empty. Every request is recorded in ``seen``.
    """

    seen: list[Seen] = field(default_factory=list)
    scripts: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)
    routes: dict[tuple[str, str], Reply] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)
    token_lifetime: float = 3600.0

    def script(self, method: str, path: str, *replies: Reply) -> None:
        self.scripts.setdefault((method, path), []).extend(replies)

    def route(self, method: str, path: str, reply: Reply) -> None:
        self.routes[(method, path)] = reply

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path.decode().split("?")[0]
        body: Any = None
        if request.content:
            try:
                body = json.loads(request.content)
            except ValueError:
                body = request.content.decode()
        self.seen.append(Seen(request.method, path, request.url.query.decode(), httpx.Headers(request.headers), body))
        queue = self.scripts.get((request.method, path))
        reply: Reply | None = queue.pop(0) if queue else self.routes.get((request.method, path))
        if reply is None and path == "/api/token":
            token = make_jwt(self.token_lifetime)
            self.tokens.append(token)
            return httpx.Response(200, json={"token": token})
        if reply is None:
            return httpx.Response(404, json={"status": 404, "message": f"no route {request.method} {path}"})
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx.Response):
            return reply
        return reply(request)

    def calls(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        return [s for s in self.seen if (method is None or s.method == method) and (path is None or s.path == path)]

    def non_token(self) -> list[Seen]:
        return [s for s in self.seen if s.path != "/api/token"]


class Sleeps(list[float]):
    """Records the waits a client asked for, without waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_client(fake: FakeOrkes, *, sleeps: Sleeps | None = None, secret: str = SECRET, key_id: str = KEY_ID,
                max_retries: int = 4, **kwargs: Any) -> OrkesClient:
    credentials = Credentials(server=SERVER, key_id=key_id, secret=SecretStr(secret))
    return OrkesClient(credentials, transport=httpx.MockTransport(fake),
                       sleep=sleeps if sleeps is not None else Sleeps(),
                       retry_policy=RetryPolicy(max_retries=max_retries), **kwargs)


def error_body(status: int, message: str, **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"status": status, "message": message, "instance": "fake", "retryable": False,
                                        **extra})


def token_error(status: int, code: str) -> httpx.Response:
    return httpx.Response(status, json={"message": "Token expired", "error": code, "timestamp": 1})
