"""Regenerate ``openapi_subset.json`` from the Orkes OpenAPI document.

Source: the "Orkes Conductor API Server" OpenAPI document (v2) that the JavaScript SDK is generated
from (conductor-oss/javascript-sdk ``src/open-api/spec/spec.json``), as copied to
``../shared/reference/orkes-openapi.json`` for this project. The subset keeps the operations the
sandbox serves and the SDK calls, and every component schema they reference (transitively), so
all ``$ref``s resolve inside the subset. Run from the repository root:

    python tests/sandbox/conformance/make_openapi_subset.py [path/to/orkes-openapi.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OPERATIONS = [
    ("post", "/api/token"), ("get", "/api/token/userInfo"),
    ("post", "/api/applications"), ("get", "/api/applications"), ("get", "/api/applications/{id}"),
    ("put", "/api/applications/{id}"), ("delete", "/api/applications/{id}"),
    ("get", "/api/applications/key/{accessKeyId}"),
    ("post", "/api/applications/{applicationId}/roles/{role}"),
    ("delete", "/api/applications/{applicationId}/roles/{role}"),
    ("put", "/api/applications/{id}/tags"), ("get", "/api/applications/{id}/tags"),
    ("delete", "/api/applications/{id}/tags"),
    ("post", "/api/applications/{id}/accessKeys"), ("get", "/api/applications/{id}/accessKeys"),
    ("post", "/api/applications/{applicationId}/accessKeys/{keyId}/status"),
    ("delete", "/api/applications/{applicationId}/accessKeys/{keyId}"),
    ("get", "/api/users/{id}"), ("get", "/api/users/{userId}/permissions"),
    ("post", "/api/auth/authorization"), ("delete", "/api/auth/authorization"),
    ("get", "/api/auth/authorization/{type}/{id}"),
    ("post", "/api/metadata/taskdefs"), ("put", "/api/metadata/taskdefs"), ("get", "/api/metadata/taskdefs"),
    ("get", "/api/metadata/taskdefs/{tasktype}"), ("delete", "/api/metadata/taskdefs/{tasktype}"),
    ("post", "/api/metadata/workflow"), ("put", "/api/metadata/workflow"), ("get", "/api/metadata/workflow"),
    ("get", "/api/metadata/workflow/{name}"),
    ("post", "/api/workflow"), ("post", "/api/workflow/{name}"), ("get", "/api/workflow/{workflowId}"),
    ("get", "/api/tasks/poll/batch/{tasktype}"), ("get", "/api/tasks/poll/{tasktype}"),
    ("post", "/api/tasks"), ("post", "/api/tasks/update-v2"),
    ("get", "/api/tasks/queue/polldata"), ("get", "/api/tasks/queue/polldata/all"),
]

# Corrections to the published document, each for a reason stated here.
MODIFICATIONS = [
    "TargetRef.id: dropped the 'enum' whose only member is a description string (a generator slip); "
    "any string is a valid target id.",
    "GET /api/applications/{id}/accessKeys: the document types the answer as an object, but the Orkes docs "
    "(get-application-access-keys) and every SDK read a list of {id, createdAt, status}; the subset says so.",
]

ACCESS_KEY_LIST = {"type": "array", "items": {
    "type": "object", "required": ["id", "createdAt", "status"], "properties": {
        "id": {"type": "string"}, "createdAt": {"type": "integer", "format": "int64"},
        "status": {"type": "string", "enum": ["ACTIVE", "INACTIVE"]}}}}


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def build(spec: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path in OPERATIONS:
        op = spec["paths"][path][method]
        kept = {k: op[k] for k in ("operationId", "parameters", "requestBody") if k in op}
        kept["responses"] = {code: r for code, r in op["responses"].items() if code.startswith("2")}
        paths.setdefault(path, {})[method] = kept
    schemas = spec["components"]["schemas"]
    wanted: set[str] = set()
    _refs(paths, wanted)
    pending = list(wanted)
    while pending:
        name = pending.pop()
        found: set[str] = set()
        _refs(schemas[name], found)
        for ref in found - wanted:
            wanted.add(ref)
            pending.append(ref)
    keys = paths["/api/applications/{id}/accessKeys"]["get"]["responses"]["200"]["content"]["application/json"]
    keys["schema"] = ACCESS_KEY_LIST
    subset_schemas = {name: schemas[name] for name in sorted(wanted)}
    subset_schemas["TargetRef"] = json.loads(json.dumps(subset_schemas["TargetRef"]))
    subset_schemas["TargetRef"]["properties"]["id"].pop("enum", None)
    return {
        "_source": "Orkes Conductor API Server OpenAPI v2 (conductor-oss/javascript-sdk src/open-api/spec/spec.json),"
                   " via ../shared/reference/orkes-openapi.json;"
                   " trimmed by tests/sandbox/conformance/make_openapi_subset.py",
        "_modifications": MODIFICATIONS,
        "openapi": spec["openapi"], "info": spec["info"], "paths": paths, "components": {"schemas": subset_schemas},
    }


def main() -> None:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/reference/orkes-openapi.json")
    subset = build(json.loads(source.read_text()))
    target = Path(__file__).with_name("openapi_subset.json")
    target.write_text(json.dumps(subset, indent=1, sort_keys=True) + "\n")
    print(f"wrote {target}: {len(subset['paths'])} paths, {len(subset['components']['schemas'])} schemas")


if __name__ == "__main__":
    main()
