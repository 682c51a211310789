"""Validate recorded HTTP exchanges against the Orkes OpenAPI schemas (``openapi_subset.json``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SUBSET = Path(__file__).with_name("openapi_subset.json")


@dataclass
class Exchange:
    method: str
    path: str
    request_body: bytes
    status: int
    response_body: bytes
    content_type: str


@cache
def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(SUBSET.read_text())
    return spec


@cache
def _routes() -> list[tuple[re.Pattern[str], str, str]]:
    """(regex, method, template), literal templates before templated ones."""
    out = []
    for template, ops in _spec()["paths"].items():
        regex = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")
        for method in ops:
            out.append((regex, method, template))
    out.sort(key=lambda r: r[2].count("{"))
    return out


def operation(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    for regex, op_method, template in _routes():
        if op_method == method.lower() and regex.match(path):
            return template, _spec()["paths"][template][op_method]
    return None


def _validate(instance: Any, schema: dict[str, Any], where: str) -> None:
    root = {**schema, "components": _spec()["components"]}
    errors = sorted(jsonschema.Draft4Validator(root).iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        details = "; ".join(f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message[:200]}" for e in errors[:5])
        raise AssertionError(f"{where} does not match the Orkes schema: {details}")


def _json_schema(content: dict[str, Any]) -> dict[str, Any] | None:
    for media_type, body in content.items():
        if "json" in media_type or media_type == "*/*":
            schema: dict[str, Any] | None = body.get("schema")
            return schema
    return None


def validate(exchange: Exchange) -> str | None:
    """Check one exchange; answers the operationId checked, or None when the subset has no such operation."""
    found = operation(exchange.method, exchange.path)
    if found is None:
        return None
    template, op = found
    where = f"{exchange.method} {template}"
    request_schema = _json_schema(op.get("requestBody", {}).get("content", {}))
    if request_schema is not None and exchange.request_body.strip():
        _validate(json.loads(exchange.request_body), request_schema, f"request of {where}")
    if exchange.status == 200:
        content = op.get("responses", {}).get("200", {}).get("content", {})
        if "text/plain" in content:
            assert "text/plain" in exchange.content_type, f"{where} must answer text/plain"
            _validate(exchange.response_body.decode(), content["text/plain"]["schema"], f"response of {where}")
        else:
            response_schema = _json_schema(content)
            if response_schema is not None:
                _validate(json.loads(exchange.response_body), response_schema, f"response of {where}")
    return str(op.get("operationId", template))
