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
    ("get", "/api/metadata/workflow/{name}"), ("delete", "/api/metadata/workflow/{name}/{version}"),
    ("post", "/api/workflow"), ("post", "/api/workflow/{name}"), ("get", "/api/workflow/{workflowId}"),
    ("get", "/api/tasks/poll/batch/{tasktype}"), ("get", "/api/tasks/poll/{tasktype}"),
    ("post", "/api/tasks"), ("post", "/api/tasks/update-v2"),
    ("get", "/api/tasks/search"), ("get", "/api/tasks/{taskId}"),
    ("get", "/api/users"), ("put", "/api/users/{id}"), ("delete", "/api/users/{id}"),
    ("get", "/api/groups"), ("get", "/api/groups/{id}"), ("put", "/api/groups/{id}"), ("delete", "/api/groups/{id}"),
    ("get", "/api/groups/{id}/users"), ("post", "/api/groups/{groupId}/users"),
    ("delete", "/api/groups/{groupId}/users"), ("post", "/api/groups/{groupId}/users/{userId}"),
    ("delete", "/api/groups/{groupId}/users/{userId}"), ("get", "/api/groups/{groupId}/permissions"),
    ("get", "/api/users/{userId}/checkPermissions"),
    ("get", "/api/tasks/queue/polldata"), ("get", "/api/tasks/queue/polldata/all"),
]

# Bodies the sandbox binds into typed objects before the endpoint runs, as Orkes (Spring + Jackson) does:
# a wrong type, an unknown enum value or an integer past its type is a 400 and nothing is stored.
BOUND_BODIES = [
    ("post", "/api/metadata/taskdefs"), ("put", "/api/metadata/taskdefs"),
    ("post", "/api/metadata/workflow"), ("put", "/api/metadata/workflow"), ("post", "/api/workflow"),
    ("put", "/api/users/{id}"), ("put", "/api/groups/{id}"),
    ("post", "/api/groups/{groupId}/users"), ("delete", "/api/groups/{groupId}/users"),
]
SANDBOX_FILE = Path(__file__).resolve().parents[3] / "orkes_provision" / "sandbox" / "orkes_api.json"

# Corrections to the published document, each for a reason stated here.
MODIFICATIONS = [
    "TargetRef.id: dropped the 'enum' whose only member is a description string (a generator slip); "
    "any string is a valid target id.",
    "GET /api/applications/{id}/accessKeys: the document types the answer as an object, but the Orkes docs "
    "(get-application-access-keys) and every SDK read a list of {id, createdAt, status}; the subset says so.",
    "GET /api/groups/{id}/users: the document types the answer as an object, but the Orkes docs "
    "(get-all-users-in-group) and the SDKs read a list of users (ConductorUser); the subset says so.",
    "UpsertUserRequest.roles, UpsertGroupRequest.roles: dropped the 'enum' on the array itself (a generator slip "
    "that no array can match) and the items' enum: users and groups also hold custom roles (custom-roles.mdx), "
    "any name created through /api/roles; the server checks that the role exists (the sandbox: 400).",
    "/api/roles...: added (the document lacks them) as conductor-python's RoleResourceApi calls them, with the "
    "document's Role schema and the SDK's CreateOrUpdateRoleRequest.",
]
# Operations the document lacks that an official SDK calls: conductor-python's RoleResourceApi
# (``http/api/role_resource_api.py``; ``http/models/role.py``, ``create_or_update_role_request.py``), with the
# response types it declares. Added to both files, so that requests to them are checked like the others.
_ROLE = {"$ref": "#/components/schemas/Role"}
_ROLE_BODY = {"required": True, "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/CreateOrUpdateRoleRequest"}}}}
_NAME = [{"in": "path", "name": "name", "required": True, "schema": {"type": "string"}}]


def _answer(schema: dict[str, Any]) -> dict[str, Any]:
    return {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}}


SDK_PATHS: dict[str, dict[str, Any]] = {
    "/api/roles": {
        "get": {"operationId": "listAllRoles", "responses": _answer({"type": "array", "items": _ROLE})},
        "post": {"operationId": "createRole", "requestBody": _ROLE_BODY, "responses": _answer({"type": "object"})}},
    "/api/roles/system": {"get": {"operationId": "listSystemRoles", "responses": _answer(
        {"type": "object", "additionalProperties": _ROLE})}},
    "/api/roles/custom": {"get": {"operationId": "listCustomRoles",
                                  "responses": _answer({"type": "array", "items": _ROLE})}},
    "/api/roles/permissions": {"get": {"operationId": "listAvailablePermissions",
                                       "responses": _answer({"type": "object"})}},
    "/api/roles/{name}": {
        "get": {"operationId": "getRole", "parameters": _NAME, "responses": _answer({"type": "object"})},
        "put": {"operationId": "updateRole", "parameters": _NAME, "requestBody": _ROLE_BODY,
                "responses": _answer({"type": "object"})},
        "delete": {"operationId": "deleteRole", "parameters": _NAME, "responses": _answer({"type": "object"})}},
}
SDK_SCHEMAS = {"CreateOrUpdateRoleRequest": {"type": "object", "properties": {
    "name": {"type": "string"}, "permissions": {"type": "array", "items": {"type": "string"}}}}}

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


def _corrected(spec: dict[str, Any]) -> dict[str, Any]:
    """The component schemas with the corrections of ``MODIFICATIONS`` (on a copy)."""
    schemas: dict[str, Any] = json.loads(json.dumps(spec["components"]["schemas"])) | SDK_SCHEMAS
    schemas["TargetRef"]["properties"]["id"].pop("enum", None)
    for name in ("UpsertUserRequest", "UpsertGroupRequest"):
        roles = schemas[name]["properties"]["roles"]
        roles.pop("enum", None)
        roles["items"].pop("enum", None)
    return schemas


def build(spec: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path in OPERATIONS:
        op = spec["paths"][path][method]
        kept = {k: op[k] for k in ("operationId", "parameters", "requestBody") if k in op}
        kept["responses"] = {code: r for code, r in op["responses"].items() if code.startswith("2")}
        paths.setdefault(path, {})[method] = kept
    schemas = _corrected(spec)
    paths.update(json.loads(json.dumps(SDK_PATHS)))
    keys = paths["/api/applications/{id}/accessKeys"]["get"]["responses"]["200"]["content"]["application/json"]
    keys["schema"] = ACCESS_KEY_LIST
    members = paths["/api/groups/{id}/users"]["get"]["responses"]["200"]["content"]
    members[next(iter(members))]["schema"] = {"type": "array", "items": {"$ref": "#/components/schemas/ConductorUser"}}
    subset_schemas = {name: schemas[name] for name in sorted(_closure(paths, schemas))}
    return {
        "_source": "Orkes Conductor API Server OpenAPI v2 (conductor-oss/javascript-sdk src/open-api/spec/spec.json),"
                   " via ../shared/reference/orkes-openapi.json;"
                   " trimmed by tests/sandbox/conformance/make_openapi_subset.py",
        "_modifications": MODIFICATIONS,
        "openapi": spec["openapi"], "info": spec["info"], "paths": paths, "components": {"schemas": subset_schemas},
    }


def _closure(node: Any, schemas: dict[str, Any]) -> set[str]:
    """The names of every component schema ``node`` references, transitively."""
    wanted: set[str] = set()
    _refs(node, wanted)
    pending = list(wanted)
    while pending:
        name = pending.pop()
        found: set[str] = set()
        _refs(schemas[name], found)
        for ref in found - wanted:
            wanted.add(ref)
            pending.append(ref)
    return wanted


_BINDING_KEYS = ("type", "format", "enum", "items", "$ref", "additionalProperties", "properties")


def _binding_schema(node: Any) -> Any:
    """A schema cut down to what binding looks at (types, formats, enums, structure)."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key in _BINDING_KEYS:
        if key not in node:
            continue
        value = node[key]
        if key == "properties":
            out[key] = {name: _binding_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _binding_schema(value)
        else:
            out[key] = value
    return out


def build_sandbox(spec: dict[str, Any]) -> dict[str, Any]:
    schemas = _corrected(spec)
    operations = []
    for path, ops in sorted((spec["paths"] | SDK_PATHS).items()):
        for method, op in sorted(ops.items()):
            integers = {p["name"]: p["schema"].get("format", "int64") for p in op.get("parameters", [])
                        if p.get("in") == "query" and p.get("schema", {}).get("type") == "integer"}
            booleans = sorted(p["name"] for p in op.get("parameters", [])
                              if p.get("in") == "query" and p.get("schema", {}).get("type") == "boolean")
            operations.append({"method": method.upper(), "path": path, "operationId": op.get("operationId", ""),
                               **({"integerQuery": integers} if integers else {}),
                               **({"booleanQuery": booleans} if booleans else {})})
    bodies = {}
    for method, path in BOUND_BODIES:
        content = spec["paths"][path][method]["requestBody"]["content"]
        bodies[f"{method.upper()} {path}"] = _binding_schema(content["application/json"]["schema"])
    return {
        "_source": "generated from the Orkes OpenAPI document (../shared/reference/orkes-openapi.json) by "
                   "tests/sandbox/conformance/make_openapi_subset.py; do not edit",
        "_modifications": MODIFICATIONS,
        "operations": operations, "bodies": bodies,
        "schemas": {name: _binding_schema(schemas[name]) for name in sorted(_closure(bodies, schemas))},
    }


def main() -> None:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/reference/orkes-openapi.json")
    spec = json.loads(source.read_text())
    subset = build(spec)
    target = Path(__file__).with_name("openapi_subset.json")
    target.write_text(json.dumps(subset, indent=1, sort_keys=True) + "\n")
    print(f"wrote {target}: {len(subset['paths'])} paths, {len(subset['components']['schemas'])} schemas")
    facts = build_sandbox(spec)
    SANDBOX_FILE.write_text(json.dumps(facts, indent=None, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"wrote {SANDBOX_FILE}: {len(facts['operations'])} operations, {len(facts['bodies'])} bound bodies")


if __name__ == "__main__":
    main()
