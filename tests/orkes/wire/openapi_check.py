"""Check one request the client sent against the Orkes OpenAPI document (the trimmed subset in
``tests/sandbox/conformance/openapi_subset.json``; regenerate it with
``tests/sandbox/conformance/make_openapi_subset.py``).

For a request: the operation (method + path template) must exist; every query parameter must be
declared for it and of its type; a JSON body must validate against the operation's request schema,
and an operation that requires a body must get one; a body goes with ``Content-Type:
application/json``; every call but ``POST /api/token`` carries ``X-Authorization``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from orkes_provision.probe.wire.recording import Exchange
from tests.sandbox.conformance.schemas import SUBSET, operation

FULL_DOCUMENT = Path(__file__).resolve().parents[4] / "shared" / "reference" / "orkes-openapi.json"


@cache
def components() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SUBSET.read_text())["components"]
    return data


def check(exchange: Exchange) -> tuple[str, list[str]]:
    """``(operation, problems)``; the operation is ``METHOD path-as-sent`` when the document lacks it."""
    found = operation(exchange.method, exchange.path)
    if found is None:
        return f"{exchange.method} {exchange.path}", []
    template, op = found
    name = f"{exchange.method} {template}"
    problems: list[str] = []
    params = {p["name"]: p for p in op.get("parameters", []) if p.get("in") == "query"}
    for key, value in exchange.query:
        declared = params.get(key)
        if declared is None:
            problems.append(f"query parameter {key!r} is not declared")
            continue
        kind = declared.get("schema", {}).get("type")
        if kind == "boolean" and value not in ("true", "false"):
            problems.append(f"query parameter {key}={value!r} is not a boolean")
        if kind == "integer" and not value.lstrip("-").isdigit():
            problems.append(f"query parameter {key}={value!r} is not an integer")
    body = op.get("requestBody")
    sent = exchange.body.strip()
    if sent:
        content_type = next((v for k, v in exchange.headers.items() if k.lower() == "content-type"), "")
        if "application/json" not in content_type:
            problems.append(f"a body sent as {content_type or 'no content type'}")
        schema = _json_schema(body)
        if schema is None:
            problems.append("a body sent to an operation that takes none")
        else:
            root = {**schema, "components": components()}
            for error in jsonschema.Draft4Validator(root).iter_errors(json.loads(sent)):
                where = "/".join(map(str, error.path)) or "<root>"
                problems.append(f"body {where}: {error.message[:160]}")
    elif body is not None and body.get("required"):
        problems.append("the operation requires a body and none was sent")
    has_token = any(k.lower() == "x-authorization" and v for k, v in exchange.headers.items())
    if template == "/api/token":
        if has_token:
            problems.append("the token exchange carries X-Authorization")
    elif not has_token:
        problems.append("no X-Authorization header")
    return name, problems


def _json_schema(body: dict[str, Any] | None) -> dict[str, Any] | None:
    for media_type, content in (body or {}).get("content", {}).items():
        if "json" in media_type or media_type == "*/*":
            schema: dict[str, Any] = content.get("schema") or {}
            return schema
    return None


def in_full_document(name: str) -> bool | None:
    """Whether the full Orkes document (outside this repository) has operation ``METHOD /template``; None without it."""
    if not FULL_DOCUMENT.exists():
        return None
    method, _, template = name.partition(" ")
    paths: dict[str, Any] = json.loads(FULL_DOCUMENT.read_text())["paths"]
    return method.lower() in paths.get(template, {})
