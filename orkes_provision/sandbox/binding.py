"""Binding requests as Orkes does, from its OpenAPI document (``orkes_api.json``, generated).

Orkes is a Spring application: a JSON body becomes a typed Java object before the controller
runs, and a query parameter becomes an ``int`` or a ``long``. A value that does not fit (a string
where a number goes, a number past its 32- or 64-bit type, an enum value the type does not know)
is a 400 and the controller never runs, so nothing is stored. The sandbox does the same for the
bodies named in the generated file and for every integer query parameter of the document.

It is stricter than Jackson in one way: it does not coerce (``"60"`` for a number, ``5`` for a
string, ``"true"`` for a boolean are refused). Unknown fields are ignored, as on Orkes.

The same file lists every operation of the document, so that one the sandbox does not implement
answers 501 instead of 404 (``unimplemented``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from orkes_provision.sandbox.http import ApiError

API_FILE = Path(__file__).with_name("orkes_api.json")
BOOLEAN_WORDS = ("true", "on", "yes", "1", "false", "off", "no", "0")
_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_TYPE_NAMES = {"int32": "int (32-bit)", "int64": "long (64-bit)"}
# Validation Orkes applies right after binding (Conductor's @Min/@Max on StartWorkflowRequest.priority
# and on the priority parameter of POST /api/workflow/{name}).
PRIORITY_RANGE = (0, 99)
_PRIORITY_CHECKED = {("POST", "/api/workflow"): "body", ("POST", "/api/workflow/{name}"): "query"}


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    operation_id: str
    regex: re.Pattern[str]
    integer_query: tuple[tuple[str, str], ...]
    body: dict[str, Any] | None
    boolean_query: tuple[str, ...] = ()


class BindingError(Exception):
    def __init__(self, path: str, message: str, value: Any) -> None:
        super().__init__(message)
        self.path, self.message, self.value = path, message, value

    def api_error(self) -> ApiError:
        return ApiError(400, self.message, validation_errors=[
            {"path": self.path, "message": self.message, "invalidValue": _shown(self.value)}])


@cache
def _document() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(API_FILE.read_text())
    return data


@cache
def _operations() -> dict[str, list[Operation]]:
    """Operations by method; literal templates first, so ``/api/workflow/bulk/pause`` beats ``{name}``."""
    doc = _document()
    by_method: dict[str, list[Operation]] = {}
    for op in doc["operations"]:
        key = f"{op['method']} {op['path']}"
        regex = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(op["path"])) + "$")
        by_method.setdefault(op["method"], []).append(Operation(
            method=op["method"], template=op["path"], operation_id=op["operationId"], regex=regex,
            integer_query=tuple(sorted((op.get("integerQuery") or {}).items())), body=doc["bodies"].get(key),
            boolean_query=tuple(op.get("booleanQuery") or ())))
    for ops in by_method.values():
        ops.sort(key=lambda o: o.template.count("{"))
    return by_method


@cache
def _bound() -> dict[tuple[str, int], list[Operation]]:
    """Only the operations binding looks at (a bound body or integer query parameters), by method and
    number of path segments: every request asks, so it must not try each template of the document."""
    out: dict[tuple[str, int], list[Operation]] = {}
    for method, ops in _operations().items():
        for op in ops:
            if op.body is not None or op.integer_query or op.boolean_query:
                out.setdefault((method, op.template.count("/")), []).append(op)
    return out


def operation(method: str, path: str) -> Operation | None:
    """The document's operation for this request, or None."""
    return next((o for o in _operations().get(method, []) if o.regex.match(path)), None)


def unimplemented(method: str, path: str) -> ApiError | None:
    """501 for an operation of the document that no sandbox route serves (called on a 404 or 405)."""
    found = operation(method, path)
    if found is None:
        return None
    return ApiError(501, f"The sandbox does not implement {method} {found.template} ({found.operation_id})")


def shadowed_operations(served: list[tuple[str, str]]) -> list[Operation]:
    """Operations of the document the sandbox lacks whose literal path a served template would take.

    ``served`` lists (method, template) of the sandbox's routes. ``POST /api/workflow/test`` is not
    ``POST /api/workflow/{name}`` with name "test": routed first, such an operation answers 501 by
    its own route. One whose own pattern would take a served literal path is left out (it would
    shadow that route instead).
    """
    def shape(template: str) -> str:
        return re.sub(r"\{[^}]+\}", "{}", template)

    served_shapes = {(m, shape(t)) for m, t in served}
    out: list[Operation] = []
    for method, ops in _operations().items():
        templates = [t for m, t in served if m == method]
        for op in ops:
            if (method, shape(op.template)) in served_shapes:
                continue
            sample = re.sub(r"\{[^}]+\}", "x", op.template)
            catches = any(_route_regex(t).match(sample) for t in templates)
            shadows = any(op.regex.match(t) for t in templates)
            if catches and not shadows:
                out.append(op)
    return out


def _route_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


def needs_binding(method: str, path: str) -> Operation | None:
    return next((o for o in _bound().get((method, path.count("/")), []) if o.regex.match(path)), None)


def bind(op: Operation, query: list[tuple[str, str]], raw_body: bytes) -> None:
    """Raise ``BindingError`` when the request does not bind to ``op``'s parameter and body types.

    A body that is not JSON at all is left to the endpoint, which answers its own 400.
    """
    formats = dict(op.integer_query)
    for name, value in query:
        fmt = formats.get(name)
        if fmt is not None and value.strip() != "":
            _query_integer(name, value, fmt)
        elif name in op.boolean_query and value.strip().lower() not in (*BOOLEAN_WORDS, ""):
            # Spring's StringToBooleanConverter: ``?short=null`` fails conversion, a 400.
            raise BindingError(name, f"query parameter '{name}' must be true or false", value)
    priority_from = _PRIORITY_CHECKED.get((op.method, op.template))
    if priority_from == "query":
        for name, value in query:
            if name == "priority" and value.strip():
                _priority(int(value), "priority")
    if op.body is None or not raw_body.strip():
        return
    try:
        body = json.loads(raw_body)
    except ValueError:
        return
    _bind(body, op.body, "")
    if priority_from == "body" and isinstance(body, dict) and body.get("priority") is not None:
        _priority(body["priority"], "priority")


def _query_integer(name: str, value: str, fmt: str) -> None:
    try:
        number = int(value.strip())
    except ValueError:
        raise BindingError(name, f"{name}: {_shown(value)} is not a whole number", value) from None
    low, high = _RANGES.get(fmt, _RANGES["int64"])
    if not low <= number <= high:
        raise BindingError(name, f"{name}: {value} is out of range of {_TYPE_NAMES.get(fmt, fmt)}", value)


def _priority(value: Any, path: str) -> None:
    low, high = PRIORITY_RANGE
    if value < low:
        raise BindingError(path, f"priority: {value} should be minimum {low}", value)
    if value > high:
        raise BindingError(path, f"priority: {value} should be maximum {high}", value)


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        resolved: dict[str, Any] = _document()["schemas"][ref.rsplit("/", 1)[1]]
        return resolved
    return schema


def _bind(value: Any, schema: dict[str, Any], path: str) -> None:
    if value is None:
        return  # null binds to everything (a primitive becomes its zero value)
    schema = _resolve(schema)
    kind = schema.get("type")
    if kind is None and "properties" in schema:
        kind = "object"
    binder = _BINDERS.get(kind) if isinstance(kind, str) else None
    if binder is not None:
        binder(value, schema, path, path or "body")


def _bind_integer(value: Any, schema: dict[str, Any], path: str, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BindingError(where, f"{where}: {_shown(value)} is not a whole number", value)
    fmt = schema.get("format", "int64")
    low, high = _RANGES.get(fmt, _RANGES["int64"])
    if not low <= value <= high:
        raise BindingError(where, f"{where}: {value} is out of range of {_TYPE_NAMES.get(fmt, fmt)}", value)


def _bind_number(value: Any, schema: dict[str, Any], path: str, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BindingError(where, f"{where}: {_shown(value)} is not a number", value)


def _bind_boolean(value: Any, schema: dict[str, Any], path: str, where: str) -> None:
    if not isinstance(value, bool):
        raise BindingError(where, f"{where}: {_shown(value)} is not true or false", value)


def _bind_string(value: Any, schema: dict[str, Any], path: str, where: str) -> None:
    if not isinstance(value, str):
        raise BindingError(where, f"{where}: {_shown(value)} is not a string", value)
    allowed = schema.get("enum")
    if allowed and value not in allowed:
        raise BindingError(where, f"{where}: {_shown(value)} is not one of {', '.join(allowed)}", value)


def _bind_array(value: Any, schema: dict[str, Any], path: str, where: str) -> None:
    if not isinstance(value, list | dict):
        # Jackson's ACCEPT_SINGLE_VALUE_AS_ARRAY: one value where a list goes is a list of one
        # (``"roles": "USER"``, as one SDK's generated types send it).
        value = [value]
    if not isinstance(value, list):
        raise BindingError(where, f"{where}: expected a list, got {_shown(value)}", value)
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            _bind(item, items, f"{path}[{index}]")


def _bind_object(value: Any, schema: dict[str, Any], path: str, where: str) -> None:
    if not isinstance(value, dict):
        raise BindingError(where, f"{where}: expected an object, got {_shown(value)}", value)
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        sub = properties.get(key)
        if sub is None and isinstance(extra, dict) and extra:
            sub = extra
        if sub is not None:
            _bind(item, sub, f"{path}.{key}" if path else str(key))


# How a value binds to a schema's type (value, schema, path, path as messages name it); other types bind to anything.
_BINDERS: dict[str, Callable[[Any, dict[str, Any], str, str], None]] = {
    "integer": _bind_integer, "number": _bind_number, "boolean": _bind_boolean, "string": _bind_string,
    "array": _bind_array, "object": _bind_object,
}


def _shown(value: Any) -> Any:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
