"""Recording and replaying the client's HTTP traffic with vcrpy, secrets scrubbed before anything is written.

Used by the cassette tests (replay, ``record_mode="none"``) and by ``provision probe --record``
(recording against the sandbox or a real Orkes server). Scrubbing happens in vcr's
``before_record_request``/``before_record_response`` hooks, which vcr also applies to every
request it looks up on replay, so scrubbed cassettes still match:

- request headers ``X-Authorization``/``Authorization``/``Cookie`` and response ``Set-Cookie`` become
  ``[scrubbed]`` (kept, so a cassette still shows that a call was authenticated);
- JSON fields named ``keySecret``, ``secret``, ``token``, ``password`` (at any depth, in requests
  and responses) become ``[scrubbed]``;
- the recording account's own key id becomes ``[admin-key-id]`` everywhere;
- the server's origin becomes ``https://orkes.invalid``, so replay does not depend on the host
  or port the cassettes were recorded on.

``CaptureTransport`` sits under the client (above vcr's patched transport) and keeps every real
exchange, unscrubbed, in memory: the recording run checks its own tokens and secrets against the
files it just wrote, and the conformance test validates every request against the OpenAPI schemas.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import vcr
import yaml

SCRUBBED = "[scrubbed]"
ADMIN_KEY_PLACEHOLDER = "[admin-key-id]"
NEUTRAL_ORIGIN = "https://orkes.invalid"
NEUTRAL_SERVER = NEUTRAL_ORIGIN + "/api"
SECRET_FIELDS = frozenset({"keySecret", "secret", "token", "password", "accessToken", "refreshToken"})
SECRET_REQUEST_HEADERS = ("X-Authorization", "Authorization", "Cookie", "Proxy-Authorization")
SECRET_RESPONSE_HEADERS = ("Set-Cookie",)
MATCH_ON = ("method", "path", "query", "body")
# A JWT: base64url JSON header and payload ("eyJ" is how '{"' encodes), then a signature part.
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")


def scrub_json(value: Any) -> Any:
    """``value`` with every secret-named field replaced, at any depth."""
    if isinstance(value, dict):
        return {k: (SCRUBBED if k in SECRET_FIELDS and v not in (None, "") else scrub_json(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_json(v) for v in value]
    return value


def _scrub_body(body: Any, replacements: dict[str, str]) -> Any:
    """A body (bytes or str, JSON or not) with secret fields and known values replaced."""
    if body is None:
        return None
    was_bytes = isinstance(body, bytes | bytearray)
    text = bytes(body).decode("utf-8", errors="surrogateescape") if was_bytes else str(body)
    if not text:
        return body
    try:
        parsed = json.loads(text)
    except ValueError:
        pass
    else:
        # Compact and key order kept, as the client sent it (httpx writes compact JSON).
        text = json.dumps(scrub_json(parsed), separators=(",", ":"), ensure_ascii=False)
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text.encode("utf-8", errors="surrogateescape") if was_bytes else text


def neutral_uri(uri: str) -> str:
    parts = urllib.parse.urlsplit(uri)
    neutral = urllib.parse.urlsplit(NEUTRAL_ORIGIN)
    return urllib.parse.urlunsplit((neutral.scheme, neutral.netloc, parts.path, parts.query, ""))


@dataclass
class Scrubber:
    """vcr hooks; ``replacements`` maps values seen on the wire to the placeholders written instead."""

    replacements: dict[str, str] = field(default_factory=dict)

    def request(self, request: Any) -> Any:
        request = copy.deepcopy(request)
        uri = neutral_uri(request.uri)
        for old, new in self.replacements.items():
            uri = uri.replace(urllib.parse.quote(old, safe=""), new).replace(old, new)
        request.uri = uri
        for name in SECRET_REQUEST_HEADERS:
            for present in [h for h in request.headers if h.lower() == name.lower()]:
                request.headers[present] = SCRUBBED
        for name in [h for h in request.headers if h.lower() in ("host", "content-length")]:
            if name.lower() == "host":
                request.headers[name] = urllib.parse.urlsplit(NEUTRAL_ORIGIN).netloc
            else:
                del request.headers[name]  # a token request's length would tell the secret's
        request.body = _scrub_body(request.body, self.replacements)
        return request

    def response(self, response: dict[str, Any]) -> dict[str, Any]:
        response = copy.deepcopy(response)
        headers = response.get("headers") or {}
        for name in list(headers):
            if name.lower() in {h.lower() for h in SECRET_RESPONSE_HEADERS}:
                headers[name] = [SCRUBBED]
            elif name.lower() in ("date", "content-length"):
                # Date changes every run; Content-Length would disagree with a scrubbed body.
                del headers[name]
        body = response.get("body") or {}
        if "string" in body:
            body["string"] = _scrub_body(body["string"], self.replacements)
        return response


def make_vcr(directory: Path, *, record_mode: str, scrubber: Scrubber | None = None) -> vcr.VCR:
    scrubber = scrubber or Scrubber()
    return vcr.VCR(cassette_library_dir=str(directory), record_mode=record_mode, match_on=MATCH_ON,
                   before_record_request=scrubber.request, before_record_response=scrubber.response,
                   decode_compressed_response=True, serializer="yaml", path_transformer=vcr.VCR.ensure_suffix(".yaml"))


# ----------------------------------------------------------------------------------------- capture


@dataclass
class Exchange:
    """One request the client sent and what came back (unscrubbed; kept in memory only)."""

    method: str
    path: str  # as sent: percent-encoded, /api included
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    status: int
    response_body: bytes
    content_type: str


class CaptureTransport(httpx.BaseTransport):
    """Wraps a transport and appends every exchange to ``sink`` (shared by several clients; thread-safe)."""

    _lock = threading.Lock()

    def __init__(self, inner: httpx.BaseTransport | None = None, sink: list[Exchange] | None = None) -> None:
        self._inner = inner or httpx.HTTPTransport()
        self.exchanges: list[Exchange] = sink if sink is not None else []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        response = self._inner.handle_request(request)
        content = response.read()
        exchange = Exchange(method=request.method, path=request.url.raw_path.decode("ascii").split("?", 1)[0],
                            query=list(urllib.parse.parse_qsl(request.url.query.decode("ascii"),
                                                              keep_blank_values=True)),
                            headers=dict(request.headers), body=body, status=response.status_code,
                            response_body=content, content_type=response.headers.get("content-type", ""))
        with self._lock:
            self.exchanges.append(exchange)
        return httpx.Response(response.status_code, headers=response.headers, content=content,
                              extensions=response.extensions, request=request)

    def close(self) -> None:
        self._inner.close()



def secrets_seen(exchanges: list[Exchange]) -> set[str]:
    """Every token and secret that crossed the wire, in either direction."""
    found: set[str] = set()
    for exchange in exchanges:
        for name, value in exchange.headers.items():
            if name.lower() in {h.lower() for h in SECRET_REQUEST_HEADERS} and value:
                found.add(value)
        for raw in (exchange.body, exchange.response_body):
            found.update(_secret_values(raw))
    return {s for s in found if len(s) >= 8 and s != SCRUBBED}


def _secret_values(raw: bytes) -> Iterator[str]:
    try:
        data = json.loads(raw) if raw.strip() else None
    except ValueError:
        return
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in SECRET_FIELDS and isinstance(value, str):
                    yield value
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


# ----------------------------------------------------------------------------------------- reading cassettes


def cassette_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def interactions(path: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text())
    result: list[dict[str, Any]] = data.get("interactions") or []
    return result


def request_body(interaction: dict[str, Any]) -> bytes:
    body = interaction["request"].get("body")
    if body is None:
        return b""
    return body.encode() if isinstance(body, str) else bytes(body)


def response_body(interaction: dict[str, Any]) -> bytes:
    body = (interaction["response"].get("body") or {}).get("string", b"")
    return body.encode() if isinstance(body, str) else bytes(body or b"")


def header(headers: dict[str, Any], name: str) -> str:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return str(value[0] if isinstance(value, list) else value)
    return ""
