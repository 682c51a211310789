"""``OrkesClient``: one method per Orkes endpoint, over httpx.

This module is the one place where HTTP becomes ``ProvisionError``: every status and transport
failure is translated in ``_error_for``/``_unreachable`` below, and nothing above it ever sees an
httpx exception. Tokens come from ``OrkesTokenAuth``; retries follow ``RetryPolicy`` (safe calls
on connection errors, timeouts, 429 and 502/503/504; non-idempotent POSTs only when the server
provably did not act). With a ``deadline`` a call ends by then, retries and waits included;
answers are capped in size and the proxy is chosen per server (``transport``). Error messages and
logs carry methods, paths, statuses and key ids, never secrets, tokens, headers or the bodies of
``/token`` and key creation; what a server says in an error is redacted of secrets and tokens.

The client is safe to share between threads: its transport's connection pool is, and token refresh is locked.
"""

from __future__ import annotations

import functools
import json as _json
import logging
import re
import shlex
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError

from orkes_provision import __version__, progress
from orkes_provision.errors import (
    AuthenticationError,
    ConfigError,
    Conflict,
    NotFound,
    PermissionDenied,
    ProvisionError,
    RateLimited,
    ServerError,
    ServerUnavailable,
    UsageError,
    redact_tokens,
)
from orkes_provision.orkes.auth import OrkesTokenAuth
from orkes_provision.orkes.denials import denial_in
from orkes_provision.orkes.models import (
    AccessKey,
    Application,
    AppUser,
    CreatedKey,
    Credentials,
    GrantedAccess,
    Group,
    PollData,
    Role,
    Subject,
    Tag,
    Target,
    TaskDef,
    User,
    app_user_id,
)
from orkes_provision.orkes.retry import NOT_SENT_ERRORS, RetryPolicy, retry_after_seconds
from orkes_provision.orkes.transport import (
    ACCEPT_ENCODING,
    AnswerTooLarge,
    RequestClock,
    deadline_scope,
    describe_proxy,
    json_body,
    server_transport,
)
from orkes_provision.orkes.urls import normalize_server_url

log = logging.getLogger("orkes_provision.http")

USER_AGENT = f"orkes-provision/{__version__}"
M = TypeVar("M", bound=BaseModel)
_TIMEOUTS = ("connect", "read", "write", "pool")
_MAX_URLS = 4096
_MAX_MESSAGE = 300
# Short back-offs pass unnoticed; once a call has waited this long, each retry says why.
_TELL_AFTER_SECONDS = 1.0
_MAYBE_APPLIED_HINT = ("the request may have been applied anyway; rerun the command, "
                       "which reads the current state before changing anything")


def _error_text(response: httpx.Response) -> tuple[str, list[str]]:
    """The message of an error answer and its validation errors, when its body is Orkes' JSON error."""
    try:
        body = json_body(response) if response.content else None
    except ValueError:
        return "", []
    if not isinstance(body, dict):
        return "", []
    # invalidValue is left out on purpose: it may be a secret the user sent.
    details = [f"{item.get('path', '?')}: {item.get('message', 'invalid')}"
               for item in body.get("validationErrors") or [] if isinstance(item, dict)]
    return str(body.get("message") or body.get("error") or ""), details


def _seg(value: str) -> str:
    """A path parameter, percent-encoded with nothing safe (``app:x`` -> ``app%3Ax``), as the SDKs do."""
    return urllib.parse.quote(str(value), safe="")


@dataclass
class _Tries:
    """Where one call's retries stand."""

    attempt: int = 0
    waited: float = 0.0  # seconds slept between attempts
    maybe_applied: bool = False  # an earlier attempt may have reached the server and been carried out


class OrkesClient:
    """A synchronous Orkes API client. Use as a context manager, or call ``close()``.

    ``credentials`` authenticate every call; without them only ``exchange_token`` and
    unauthenticated endpoints work (``server`` then names the API). ``timeout`` bounds one attempt
    (each connect and read); ``deadline`` (seconds, the CLI's ``--timeout``) bounds a call with all
    its retries and waits. ``insecure_http`` allows plain http through a proxy. ``transport`` is for
    tests (``httpx.MockTransport``) and wrappers of ``server_transport``; ``sleep`` and
    ``retry_policy`` let tests skip the waiting.
    """

    def __init__(self, credentials: Credentials | None = None, *, server: str | None = None,
                 timeout: float = 10.0, max_retries: int = 4, transport: httpx.BaseTransport | None = None,
                 user_agent: str = USER_AGENT, retry_policy: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep, deadline: float | None = None,
                 insecure_http: bool = False) -> None:
        if credentials is not None:
            self.server = credentials.server.rstrip("/")
        elif server is not None:
            # Only the structure is normalised here; the plain-http policy is applied by settings.
            self.server = normalize_server_url(server, insecure_http=True)
        else:
            raise ConfigError("no server to talk to", "pass --server URL or set CONDUCTOR_SERVER_URL")
        self.credentials = credentials
        self.timeout = timeout
        self.deadline = deadline
        self.retry_policy = retry_policy or RetryPolicy(max_retries=max_retries)
        self._sleep = sleep
        self._count_lock = threading.Lock()
        self._request_count = 0
        self._secrets: set[str] = set()
        # The Retry-After (seconds, or None when absent) of every 429 met: what 'provision probe' reports.
        self.rate_limited_answers: list[float | None] = []
        self._secrets_lock = threading.Lock()
        self._auth: OrkesTokenAuth | None = None
        if credentials is not None:
            self._remember_secret(credentials.secret)
            self._auth = OrkesTokenAuth(credentials.key_id, credentials.secret, self._mint)
        # The transport decides the proxy (never for loopback); nothing here reads the environment.
        # Requests go straight to it, without httpx.Client: no redirects are followed, no cookies
        # kept, and a request costs a fraction of the CPU (thousands of them in an apply).
        self._transport = transport or server_transport(self.server, insecure_http=insecure_http)
        self._via = describe_proxy(self._transport)
        self._base = self.server + "/"
        self._headers = httpx.Headers({"Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING,
                                       "Connection": "keep-alive", "User-Agent": user_agent})
        self._json_headers = httpx.Headers({**self._headers, "Content-Type": "application/json"})
        self._urls: dict[str, httpx.URL] = {}

    def __repr__(self) -> str:
        key = self.credentials.key_id if self.credentials else None
        return f"OrkesClient(server={self.server!r}, key_id={key!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    @property
    def request_count(self) -> int:
        """Requests sent on the wire so far, token exchanges and replays included."""
        with self._count_lock:
            return self._request_count

    @property
    def key_id(self) -> str | None:
        return self.credentials.key_id if self.credentials else None

    # ----------------------------------------------------------------------------- tokens and identity

    def exchange_token(self, key_id: str, secret: SecretStr, *, expiration_ms: int | None = None) -> SecretStr:
        """Mint a token for any key (to verify it), independent of this client's own credentials.

        ``expiration_ms`` asks for that lifetime (Orkes's ``expiration``); ``None`` leaves the server's
        default. Raises ``AuthenticationError`` when the server rejects the key, ``ConfigError`` when the
        URL has no ``/token`` (not an Orkes API: ``/api`` missing, or an OSS server).
        """
        self._remember_secret(secret)
        return self._mint(key_id, secret, expiration_ms)

    def _mint(self, key_id: str, secret: SecretStr, expiration_ms: int | None = None) -> SecretStr:
        body: dict[str, object] = {"keyId": key_id.strip(), "keySecret": secret.get_secret_value().strip()}
        if expiration_ms is not None:
            body["expiration"] = expiration_ms
        response = self._send("POST", "/token", json=body, safe=True, authenticated=False, key_id=key_id, check=False)
        status = response.status_code
        # 404/405: this path is not the token endpoint, usually because the URL lacks /api (the SDKs
        # read a 404 the same way). What Orkes answers a wrong key id or secret with is not documented
        # (docs/reliability.md, UNCONFIRMED): any 401/403, whatever its body (an auth-filter
        # INVALID_TOKEN included), is the server refusing the key.
        if status in (404, 405):
            raise self._not_orkes()
        if status in (401, 403):
            raise AuthenticationError(
                f"the server rejected key {key_id}",
                "check the key id and secret, and that the key is ACTIVE ('provision keys list APP')")
        if not response.is_success:
            raise self._error_for(response, "POST", "/token", key_id=key_id)
        try:
            data = json_body(response)
        except ValueError:
            raise self._not_orkes() from None
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise self._not_orkes()
        self._remember_secret(SecretStr(token))
        return SecretStr(token)

    def _not_orkes(self) -> ConfigError:
        return ConfigError(
            f"{self.server}/token is not a token endpoint: this URL is not an Orkes API",
            "the server URL must be the API base, ending in /api (https://HOST/api); "
            "an open-source Conductor server has no access control to provision")

    def user_info(self) -> dict[str, Any]:
        """Who the client's key is: ``id``, ``name``, ``roles``, ``applicationUser``... (``GET /token/userInfo``)."""
        return self._dict(self._get("/token/userInfo"), "GET /token/userInfo")

    # ----------------------------------------------------------------------------- applications

    def list_applications(self) -> list[Application]:
        return self._models(Application, self._get("/applications"), "GET /applications")

    def get_application(self, app_id: str) -> Application:
        path = f"/applications/{_seg(app_id)}"
        return self._model(Application, self._get(path), f"GET {path}")

    def create_application(self, name: str) -> Application:
        """Create an application. Not retried on an ambiguous failure: names are not unique, so a
        blind retry could create a duplicate; the caller re-reads the list instead."""
        data = self._json(self._send("POST", "/applications", json={"name": name}, safe=False), "POST /applications")
        return self._model(Application, data, "POST /applications")

    def update_application(self, app_id: str, name: str) -> Application:
        path = f"/applications/{_seg(app_id)}"
        return self._model(Application, self._json(self._send("PUT", path, json={"name": name}, safe=True), path),
                           f"PUT {path}")

    def delete_application(self, app_id: str) -> None:
        self._send("DELETE", f"/applications/{_seg(app_id)}", safe=True)

    def get_application_by_key(self, key_id: str) -> Application:
        path = f"/applications/key/{_seg(key_id)}"
        return self._model(Application, self._get(path), f"GET {path}")

    def put_application_tags(self, app_id: str, tags: list[Tag]) -> None:
        self._send("PUT", f"/applications/{_seg(app_id)}/tags", json=[t.to_wire() for t in tags], safe=True)

    def get_application_tags(self, app_id: str) -> list[Tag]:
        path = f"/applications/{_seg(app_id)}/tags"
        return self._models(Tag, self._get(path), f"GET {path}")

    def delete_application_tags(self, app_id: str, tags: list[Tag]) -> None:
        self._send("DELETE", f"/applications/{_seg(app_id)}/tags", json=[t.to_wire() for t in tags], safe=True)

    def add_role(self, app_id: str, role: str) -> None:
        self._send("POST", f"/applications/{_seg(app_id)}/roles/{_seg(role)}", safe=True)

    def remove_role(self, app_id: str, role: str) -> None:
        self._send("DELETE", f"/applications/{_seg(app_id)}/roles/{_seg(role)}", safe=True)

    # ----------------------------------------------------------------------------- access keys

    def list_keys(self, app_id: str) -> list[AccessKey]:
        path = f"/applications/{_seg(app_id)}/accessKeys"
        return self._models(AccessKey, self._get(path), f"GET {path}")

    def create_key(self, app_id: str) -> CreatedKey:
        """Create an access key; the answer is the only time the secret is shown. Not retried on an
        ambiguous failure (a second key would be created); the caller compares ``list_keys``."""
        path = f"/applications/{_seg(app_id)}/accessKeys"
        key = self._model(CreatedKey, self._json(self._send("POST", path, safe=False), f"POST {path}"),
                          f"POST {path}")
        self._remember_secret(key.secret)
        return key

    def toggle_key(self, app_id: str, key_id: str) -> AccessKey:
        """Flip a key between ACTIVE and INACTIVE (not idempotent: re-read before retrying)."""
        path = f"/applications/{_seg(app_id)}/accessKeys/{_seg(key_id)}/status"
        return self._model(AccessKey, self._json(self._send("POST", path, safe=False), f"POST {path}"),
                           f"POST {path}")

    def delete_key(self, app_id: str, key_id: str) -> None:
        self._send("DELETE", f"/applications/{_seg(app_id)}/accessKeys/{_seg(key_id)}", safe=True)

    # ----------------------------------------------------------------------------- users, groups and permissions

    def get_user(self, user_id: str) -> AppUser:
        path = f"/users/{_seg(user_id)}"
        return self._model(AppUser, self._get(path), f"GET {path}")

    def get_app_user(self, app_id: str) -> AppUser:
        """The user record ``app:<appId>``, which holds the application's roles."""
        return self.get_user(app_user_id(app_id))

    def get_user_permissions(self, user_id: str) -> list[GrantedAccess]:
        path = f"/users/{_seg(user_id)}/permissions"
        data = self._dict(self._get(path), f"GET {path}")
        return self._models(GrantedAccess, data.get("grantedAccess") or [], f"GET {path}")

    def list_users(self, apps: bool = False) -> list[User]:
        """Every user; with ``apps`` the applications' users ``app:<id>`` too (``GET /api/users``)."""
        data = self._get("/users", params={"apps": "true" if apps else "false"})
        return self._models(User, data, "GET /users")

    def upsert_user(self, user_id: str, name: str, roles: list[str], groups: list[str]) -> User:
        """Create or replace a user: its name, roles and groups are set to exactly these.

        ``groups`` is always sent: whether Orkes keeps or clears the groups of a user upserted
        without them is undocumented, so callers pass the memberships to keep.
        """
        path = f"/users/{_seg(user_id)}"
        body = {"name": name, "roles": list(dict.fromkeys(roles)), "groups": list(dict.fromkeys(groups))}
        return self._model(User, self._json(self._send("PUT", path, json=body, safe=True), f"PUT {path}"),
                           f"PUT {path}")

    def delete_user(self, user_id: str) -> None:
        self._send("DELETE", f"/users/{_seg(user_id)}", safe=True)

    def list_groups(self) -> list[Group]:
        return self._models(Group, self._get("/groups"), "GET /groups")

    def upsert_group(self, group_id: str, description: str, roles: list[str],
                     default_access: Mapping[str, list[str]] | None = None) -> Group:
        """Create or replace a group's description and roles (and ``defaultAccess`` when given)."""
        path = f"/groups/{_seg(group_id)}"
        body: dict[str, Any] = {"description": description, "roles": list(dict.fromkeys(roles))}
        if default_access:
            body["defaultAccess"] = {target: list(access) for target, access in default_access.items()}
        return self._model(Group, self._json(self._send("PUT", path, json=body, safe=True), f"PUT {path}"),
                           f"PUT {path}")

    def delete_group(self, group_id: str) -> None:
        self._send("DELETE", f"/groups/{_seg(group_id)}", safe=True)

    def get_group_users(self, group_id: str) -> list[User]:
        path = f"/groups/{_seg(group_id)}/users"
        return self._models(User, self._get(path), f"GET {path}")

    def add_users_to_group(self, group_id: str, user_ids: list[str]) -> None:
        """Add members (each must exist); adding a member twice is harmless, so it is retried."""
        self._send("POST", f"/groups/{_seg(group_id)}/users", json=list(dict.fromkeys(user_ids)), safe=True)

    def remove_users_from_group(self, group_id: str, user_ids: list[str]) -> None:
        self._send("DELETE", f"/groups/{_seg(group_id)}/users", json=list(dict.fromkeys(user_ids)), safe=True)

    def get_group_permissions(self, group_id: str) -> list[GrantedAccess]:
        """What the group holds (its members inherit it): ``grantedAccess`` of ``GROUP <id>``."""
        path = f"/groups/{_seg(group_id)}/permissions"
        data = self._dict(self._get(path), f"GET {path}")
        return self._models(GrantedAccess, data.get("grantedAccess") or [], f"GET {path}")

    def grant(self, subject: Subject, target: Target, access: list[str]) -> None:
        """Grant ``access`` on ``target`` to ``subject`` (idempotent on the server, so retried)."""
        body = {"subject": subject.to_wire(), "target": target.to_wire(), "access": list(dict.fromkeys(access))}
        self._send("POST", "/auth/authorization", json=body, safe=True)

    def revoke(self, subject: Subject, target: Target, access: list[str]) -> None:
        body = {"subject": subject.to_wire(), "target": target.to_wire(), "access": list(dict.fromkeys(access))}
        self._send("DELETE", "/auth/authorization", json=body, safe=True)

    def get_permissions(self, target: Target) -> dict[str, list[Subject]]:
        """Who holds which access on ``target``: access type -> subjects."""
        path = f"/auth/authorization/{_seg(target.type)}/{_seg(target.id)}"
        data = self._dict(self._get(path), f"GET {path}")
        return {access: self._models(Subject, subjects or [], f"GET {path}") for access, subjects in data.items()}

    # ----------------------------------------------------------------------------- custom roles

    def list_custom_roles(self) -> list[Role]:
        """The custom roles with their permissions (``GET /api/roles/custom``; system roles are not listed)."""
        return self._models(Role, self._get("/roles/custom"), "GET /roles/custom")

    def get_role(self, name: str) -> Role:
        """A role, system or custom; ``NotFound`` when there is none."""
        path = f"/roles/{_seg(name)}"
        return self._model(Role, self._get(path), f"GET {path}")

    def list_role_permissions(self) -> dict[str, list[str]]:
        """What a custom role may hold, by resource: ``{"WORKFLOW_DEF": ["READ_WORKFLOW_DEF", ...]}``.

        Each resource's value is read as a list of names or as ``{"permissions": [...]}``: conductor-python
        types the answer only as ``Dict[str, Dict]``, so the exact shape is unconfirmed.
        """
        data = self._dict(self._get("/roles/permissions"), "GET /roles/permissions")
        out: dict[str, list[str]] = {}
        for resource, value in data.items():
            names = value.get("permissions") if isinstance(value, dict) else value
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ServerError(f"unexpected answer to GET /roles/permissions: {resource!r} is not a list of "
                                  "permission names", "run with -v for details")
            out[str(resource)] = list(names)
        return out

    def create_role(self, name: str, permissions: list[str]) -> Role:
        """Create a custom role. Not retried: a second try after a lost answer would find the name taken."""
        body = {"name": name, "permissions": list(dict.fromkeys(permissions))}
        return self._model(Role, self._json(self._send("POST", "/roles", json=body, safe=False), "POST /roles"),
                           "POST /roles")

    def update_role(self, name: str, permissions: list[str]) -> Role:
        """Set a custom role's permissions to exactly these (a replacement, so retried)."""
        path = f"/roles/{_seg(name)}"
        body = {"name": name, "permissions": list(dict.fromkeys(permissions))}
        return self._model(Role, self._json(self._send("PUT", path, json=body, safe=True), f"PUT {path}"),
                           f"PUT {path}")

    def delete_role(self, name: str) -> None:
        self._send("DELETE", f"/roles/{_seg(name)}", safe=True)

    # ----------------------------------------------------------------------------- metadata

    def get_task_def(self, name: str) -> TaskDef:
        """A task definition; ``NotFound`` when there is none."""
        path = f"/metadata/taskdefs/{_seg(name)}"
        return self._model(TaskDef, self._get(path), f"GET {path}")

    def list_task_defs(self) -> list[TaskDef]:
        return self._models(TaskDef, self._get("/metadata/taskdefs"), "GET /metadata/taskdefs")

    def register_task_defs(self, defs: list[TaskDef]) -> None:
        """Create or update task definitions (the server upserts, so it is safe to retry)."""
        self._send("POST", "/metadata/taskdefs", json=[d.to_wire() for d in defs], safe=True)

    def update_task_def(self, task_def: TaskDef) -> None:
        self._send("PUT", "/metadata/taskdefs", json=task_def.to_wire(), safe=True)

    def delete_task_def(self, name: str) -> None:
        self._send("DELETE", f"/metadata/taskdefs/{_seg(name)}", safe=True)

    def get_workflow_def(self, name: str, version: int | None = None) -> dict[str, Any]:
        path = f"/metadata/workflow/{_seg(name)}"
        params = {"version": version} if version is not None else None
        return self._dict(self._get(path, params=params), f"GET {path}")

    def list_workflow_defs(self) -> list[dict[str, Any]]:
        """Every workflow definition the key may read, every version (``GET /metadata/workflow``)."""
        data = self._get("/metadata/workflow")
        if data is None:
            return []
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise ServerError("unexpected answer to GET /metadata/workflow: expected a list of objects",
                              "run with -v for details")
        return data

    def delete_workflow_def(self, name: str, version: int) -> None:
        self._send("DELETE", f"/metadata/workflow/{_seg(name)}/{version}", safe=True)

    def register_workflow_def(self, definition: Mapping[str, Any], overwrite: bool = True) -> None:
        """Register a workflow definition; with ``overwrite`` it is an upsert, hence safe to retry."""
        self._send("POST", "/metadata/workflow", json=dict(definition),
                   params={"overwrite": "true" if overwrite else "false"}, safe=overwrite)

    # ----------------------------------------------------------------------------- workflows

    def start_workflow(self, name: str, input: Mapping[str, Any], version: int | None = None,
                       correlation_id: str | None = None) -> str:
        """Start a workflow and return its id (not retried on an ambiguous failure)."""
        body: dict[str, Any] = {"name": name, "input": dict(input)}
        if version is not None:
            body["version"] = version
        if correlation_id is not None:
            body["correlationId"] = correlation_id
        response = self._send("POST", "/workflow", json=body, safe=False)
        workflow_id = response.text.strip().strip('"')
        if not workflow_id:
            raise ServerError(f"{self.server}/workflow answered without a workflow id", "run with -v for details")
        return workflow_id

    def get_workflow(self, workflow_id: str, include_tasks: bool = True) -> dict[str, Any]:
        path = f"/workflow/{_seg(workflow_id)}"
        return self._dict(self._get(path, params={"includeTasks": "true" if include_tasks else "false"}),
                          f"GET {path}")

    # ----------------------------------------------------------------------------- tasks

    def search_tasks(self, query: str, *, start: int = 0, size: int = 100) -> tuple[int, list[dict[str, Any]]]:
        """One page of ``GET /api/tasks/search``: (totalHits, the page's TaskSummary objects).

        ``query`` is Conductor's search syntax (``status IN (IN_PROGRESS) AND taskType = t``). A
        summary carries no ``workerId``: read the task (``get_task``) to see who holds it.
        """
        params = {"query": query, "freeText": "*", "start": start, "size": size}
        data = self._dict(self._get("/tasks/search", params=params), "GET /tasks/search")
        results = data.get("results") or []
        total = data.get("totalHits")
        if not isinstance(results, list) or not isinstance(total, int | None):
            raise ServerError(f"unexpected answer to GET {self.server}/tasks/search: no results list")
        return int(total or 0), [r for r in results if isinstance(r, dict)]

    def get_task(self, task_id: str) -> dict[str, Any]:
        path = f"/tasks/{_seg(task_id)}"
        return self._dict(self._get(path), f"GET {path}")

    def return_task_to_queue(self, workflow_id: str, task_id: str) -> None:
        """Hand a polled task to the next poll: ``POST /api/tasks`` with ``IN_PROGRESS`` and ``callbackAfterSeconds`` 0.

        Conductor sets a worker task updated ``IN_PROGRESS`` back to ``SCHEDULED``, held by no
        worker, and makes it visible to polls after ``callbackAfterSeconds``; the attempt is the
        same, so no retry is counted and no retry delay applies. Repeating it changes nothing
        more, hence safe to retry.
        """
        body = {"workflowInstanceId": workflow_id, "taskId": task_id, "status": "IN_PROGRESS",
                "callbackAfterSeconds": 0}
        self._send("POST", "/tasks", json=body, safe=True)
    # ----------------------------------------------------------------------------- workers

    def get_poll_data(self, task_type: str) -> list[PollData]:
        """Which workers last polled ``task_type`` (in any domain), and when; ``[]`` when none did."""
        where = "GET /tasks/queue/polldata"
        return self._models(PollData, self._get("/tasks/queue/polldata", params={"taskType": task_type}), where)

    def poll_tasks(self, task_type: str, worker_id: str, count: int = 1) -> list[dict[str, Any]]:
        """Take up to ``count`` tasks of ``task_type`` as worker ``worker_id``, as an SDK worker does
        (``provision probe`` only: nothing else in this tool takes a task). Not retried: a retry could
        take a second batch."""
        path = f"/tasks/poll/batch/{_seg(task_type)}"
        answer = self._json(self._send("GET", path, params={"workerid": worker_id, "count": count, "timeout": 100},
                                       safe=False), f"GET {path}")
        return [t for t in answer if isinstance(t, dict)] if isinstance(answer, list) else []

    def complete_task(self, workflow_id: str, task_id: str, worker_id: str) -> None:
        """Finish a polled task (``POST /api/tasks`` with ``COMPLETED``): ``provision probe`` ends what it started."""
        body = {"workflowInstanceId": workflow_id, "taskId": task_id, "status": "COMPLETED", "workerId": worker_id,
                "outputData": {}}
        self._send("POST", "/tasks", json=body, safe=True)

    def token_answer(self, key_id: str, secret: SecretStr) -> tuple[int, str | None]:
        """The status of ``POST /api/token`` for this key and the body's ``error`` code, if any: what a
        server says to a wrong key id or secret (``provision probe``). No token is kept."""
        body = {"keyId": key_id.strip(), "keySecret": secret.get_secret_value().strip()}
        self._remember_secret(secret)
        response = self._send("POST", "/token", json=body, safe=True, authenticated=False, key_id=key_id, check=False)
        try:
            data = json_body(response)
        except ValueError:
            data = None
        code = data.get("error") if isinstance(data, dict) and isinstance(data.get("error"), str) else None
        return response.status_code, code

    # ----------------------------------------------------------------------------- plumbing

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._json(self._send("GET", path, params=params, safe=True), f"GET {path}")

    def _send(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
              safe: bool, authenticated: bool = True, key_id: str | None = None, check: bool = True) -> httpx.Response:
        """Send one call, with retries; return a 2xx response or raise a ``ProvisionError``.

        With ``check=False`` the last response is returned whatever its status (transport
        failures still raise), for callers that read error answers themselves. With a
        ``deadline``, every attempt, wait and token exchange of the call fits in it.
        """
        if authenticated and self._auth is None:
            raise ConfigError("no credentials for this call", "set CONDUCTOR_AUTH_KEY and CONDUCTOR_AUTH_SECRET")
        auth: httpx.Auth | None = self._auth if authenticated else None
        tries = _Tries()
        with deadline_scope(self.deadline) as clock:
            while True:
                left = clock.left()
                if left is not None and left <= 0:
                    raise self._timed_out(clock, method, path, safe=safe or not tries.maybe_applied)
                timeout = self.timeout if left is None else min(self.timeout, left)
                try:
                    response = self._attempt(method, path, json=json, params=params, auth=auth, timeout=timeout)
                except AnswerTooLarge as err:
                    raise ServerUnavailable(f"{self.server} answered {method} /api{path} with more than "
                                            f"{err.limit // (1024 * 1024)} MB; stopped reading",
                                            "no Orkes answer is that large: check that --server is the Orkes API "
                                            "you meant") from None
                except (httpx.HTTPError, httpx.InvalidURL) as err:
                    if self._waited_after_failure(err, method, path, safe=safe, clock=clock, tries=tries):
                        continue
                    raise self._unreachable(err, method, path, safe=safe, clock=clock) from None
                if response.is_success:
                    return response
                if method == "DELETE" and response.status_code == 404 and tries.maybe_applied:
                    # The lost answer was to a delete the server did carry out: gone is what was asked for.
                    log.info("%s %s: 404 after a lost answer; treating it as deleted", method, path)
                    return response
                if self._waited_after_answer(response, method, path, safe=safe, check=check, key_id=key_id,
                                             clock=clock, tries=tries):
                    continue
                if not check:
                    return response
                error = self._error_for(response, method, path, key_id=key_id)
                if not safe and response.status_code >= 500:
                    error.hint = _MAYBE_APPLIED_HINT
                raise error

    def _waited_after_failure(self, err: httpx.HTTPError | httpx.InvalidURL, method: str, path: str, *, safe: bool,
                              clock: RequestClock, tries: _Tries) -> bool:
        """After a transport failure: True once it waited for another try, False when there is none."""
        tls = _tls_failure(err)
        if tls is not None:
            raise self._tls_error(tls, method, path) from None
        policy = self.retry_policy
        if tries.attempt >= policy.max_retries or not isinstance(err, httpx.TransportError) \
                or not policy.should_retry_error(err, safe=safe) or _expired(clock):
            return False
        delay = policy.backoff(tries.attempt)
        if not _fits(delay, clock):
            return False
        log.info("%s %s: %s; retrying in %.1fs", method, path, type(err).__name__, delay)
        self._wait(tries, delay, self._unreachable(err, method, path, safe=True).message)
        tries.maybe_applied = tries.maybe_applied or not isinstance(err, NOT_SENT_ERRORS)
        return True

    def _waited_after_answer(self, response: httpx.Response, method: str, path: str, *, safe: bool, check: bool,
                             key_id: str | None, clock: RequestClock, tries: _Tries) -> bool:
        """After an error answer: True once it waited for another try, False when there is none; raises
        when the server asks for a longer wait than allowed, or (``check``) the deadline cuts the wait."""
        policy = self.retry_policy
        status = response.status_code
        if status == 429:
            self.rate_limited_answers.append(retry_after_seconds(response))
        if tries.attempt >= policy.max_retries or not policy.should_retry_status(status, safe=safe):
            return False
        asked = retry_after_seconds(response)
        if asked is not None and asked > policy.max_retry_after:
            raise self._error_for(response, method, path, key_id=key_id)
        delay = policy.backoff(tries.attempt) if asked is None else asked
        if not _fits(delay, clock):
            if check:
                raise self._cut_short(self._error_for(response, method, path, key_id=key_id), clock, waited_for=delay)
            return False
        log.info("%s %s: %d; retrying in %.1fs", method, path, status, delay)
        self._wait(tries, delay, f"{self.server} answered {status} to {method} /api{path}")
        tries.maybe_applied = tries.maybe_applied or status != 429
        return True

    def _wait(self, tries: _Tries, delay: float, what: str) -> None:
        tries.waited += delay
        self._tell_retry(what, tries.waited, delay, tries.attempt)
        self._sleep(delay)
        tries.attempt += 1

    def _timed_out(self, clock: RequestClock, method: str, path: str, *, safe: bool) -> ServerUnavailable:
        hint = f"if the server is only slow, raise --timeout (now {self.deadline:g}s; env ORKES_PROVISION_TIMEOUT)"
        if not safe:
            hint = f"{_MAYBE_APPLIED_HINT}; {hint}"
        return ServerUnavailable(f"cannot reach {self.server}{self._via}: gave up after {clock.elapsed():.1f}s "
                                 f"without a complete answer ({method} /api{path})", hint)

    def _cut_short(self, error: ProvisionError, clock: RequestClock, *, waited_for: float) -> ProvisionError:
        """The last error of a call whose next try would start past the deadline."""
        error.message += (f"; gave up after {clock.elapsed():.1f}s (the next try was due in {waited_for:.1f}s, "
                          f"past --timeout {self.deadline:g}s)")
        error.hint = "retry later, or raise --timeout (env ORKES_PROVISION_TIMEOUT) to wait longer"
        return error

    def _tls_error(self, err: ssl.SSLError, method: str, path: str) -> ServerUnavailable:
        host = urllib.parse.urlsplit(self.server).hostname or self.server
        if isinstance(err, ssl.SSLCertVerificationError):
            reason = err.verify_message or err.reason or "certificate verify failed"
            return ServerUnavailable(
                f"cannot reach {self.server}: the TLS certificate of {host} is not trusted ({reason}) "
                f"({method} /api{path})",
                f"if {host} uses a private CA, point SSL_CERT_FILE at that CA's certificate (PEM) and run it "
                "again; check that --server names the host the certificate is for")
        reason = _one_line(str(err.reason or err)) or type(err).__name__
        return ServerUnavailable(f"cannot reach {self.server}: the TLS handshake with {host} failed ({reason}) "
                                 f"({method} /api{path})",
                                 f"check that {host} serves https at that port (a plain-http server needs "
                                 "http://); for a private CA set SSL_CERT_FILE")

    def _tell_retry(self, what: str, waited: float, delay: float, attempt: int) -> None:
        """Say on the progress channel why the call waits, once its waiting passes a second."""
        if waited >= _TELL_AFTER_SECONDS:
            progress.waiting(f"{what}; retrying in {delay:.1f}s (retry {attempt + 1} of "
                             f"{self.retry_policy.max_retries})", topic="retry")

    def _unreachable(self, err: httpx.HTTPError | httpx.InvalidURL, method: str, path: str, *,
                     safe: bool, clock: RequestClock | None = None) -> ProvisionError:
        if not isinstance(err, httpx.TransportError):
            reason = self._redact(_one_line(str(err))) or type(err).__name__
            return ServerError(f"{method} /api{path} failed: {reason}")
        if isinstance(err, httpx.TimeoutException) and clock is not None and self.deadline is not None:
            return self._timed_out(clock, method, path, safe=safe)
        if isinstance(err, httpx.TimeoutException):
            reason = f"no answer within {self.timeout:g}s"
        elif isinstance(err, httpx.ConnectError):
            text = str(err).lower()
            detail = re.sub(r"^\[Errno [-\d]+\]\s*", "", _one_line(str(err)))
            reason = "connection refused" if "refused" in text else (detail or "cannot connect")
        elif isinstance(err, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
            reason = "the connection closed before an answer"
        else:
            reason = _one_line(str(err)) or type(err).__name__
        message = f"cannot reach {self.server}{self._via}: {self._redact(reason)} ({method} /api{path})"
        return ServerUnavailable(message, None if safe else _MAYBE_APPLIED_HINT)

    def _error_for(self, response: httpx.Response, method: str, path: str, *,
                   key_id: str | None = None) -> ProvisionError:
        """The one translation of an HTTP error answer into a ``ProvisionError``."""
        status = response.status_code
        where = f"{method} /api{path}"
        message, details = _error_text(response)
        message = self._redact(_one_line(message))
        suffix = f": {message}" if message else ""
        if status == 400:
            extra = f" ({'; '.join(self._redact(_one_line(d)) for d in details)})" if details else ""
            return UsageError(f"the server refused {where}{suffix}{extra}", "check the names and values given")
        if status == 401:
            who = key_id or self.key_id
            text = f"the server rejected key {who}" if who else "the server wants credentials"
            return AuthenticationError(f"{text} ({where}{suffix})")
        if status == 403:
            return PermissionDenied(f"{message or 'permission denied'} ({where})", _permission_hint(path, message))
        if status == 404:
            return NotFound(f"{message or 'not found'} ({where})")
        if status == 409:
            return Conflict(f"{message or 'conflict'} ({where})",
                            "the server's state changed; rerun the command to read it again")
        if status == 429:
            return RateLimited(f"the server kept answering 429 Too Many Requests to {where}")
        if 300 <= status < 400:
            location = self._redact(_one_line(response.headers.get("location", "?")))
            return ServerError(f"{where} was redirected ({status}) to {location}",
                               "give --server the URL it redirects to (https:// and ending in /api)")
        if status >= 500:
            return ServerUnavailable(f"{self.server} failed with {status} on {where}{suffix}")
        return ServerError(f"unexpected answer {status} to {where}{suffix}")

    def _json(self, response: httpx.Response, where: str) -> Any:
        if not response.content.strip():
            return None
        try:
            return json_body(response)
        except ValueError:
            raise ServerError(f"{self.server} answered {where} with something that is not JSON",
                              "check that --server points at the Orkes API (it ends in /api)") from None

    def _dict(self, data: Any, where: str) -> dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ServerError(f"unexpected answer to {where}: expected an object", "run with -v for details")
        return data

    def _model(self, model: type[M], data: Any, where: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as err:
            raise ServerError(f"unexpected answer to {where}: {_first_error(err)}", "run with -v for details") from None

    def _models(self, model: type[M], data: Any, where: str) -> list[M]:
        try:
            return _list_adapter(model).validate_python(data if data is not None else [])
        except ValidationError as err:
            raise ServerError(f"unexpected answer to {where}: {_first_error(err)}", "run with -v for details") from None

    def _remember_secret(self, secret: SecretStr) -> None:
        value = secret.get_secret_value().strip()
        if len(value) >= 4:
            with self._secrets_lock:
                self._secrets.add(value)

    def _redact(self, text: str) -> str:
        """``text`` without the secrets and tokens this client knows, nor anything shaped like a token."""
        with self._secrets_lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, "[redacted]")
        return redact_tokens(text)

    def _attempt(self, method: str, path: str, *, json: Any, params: Mapping[str, Any] | None,
                 auth: httpx.Auth | None, timeout: float) -> httpx.Response:
        """One attempt of a call: ``auth`` sets the token (and replays once on a token error)."""
        url = self._urls.get(path)
        if url is None:
            # Parsing a URL is a third of what building a request costs; an apply sends thousands of
            # grants to one path. Bounded: paths with ids are many, and each is used a few times.
            if len(self._urls) >= _MAX_URLS:
                self._urls.clear()
            url = self._urls[path] = httpx.URL(self._base + path.lstrip("/"))
        if params is not None:
            url = url.copy_merge_params(params)
        headers = self._headers
        content = None
        if json is not None:
            # What httpx's json= sends, without its slower path.
            content = _json.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
            headers = self._json_headers
        request = httpx.Request(method, url, content=content, headers=headers,
                                extensions={"timeout": dict.fromkeys(_TIMEOUTS, timeout)})
        if auth is None:
            return self._exchange(request)
        flow = auth.sync_auth_flow(request)
        request = next(flow)
        while True:
            response = self._exchange(request)
            try:
                request = flow.send(response)
            except StopIteration:
                return response
            response.close()

    def _exchange(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and read the whole answer (within the transport's size cap)."""
        with self._count_lock:
            self._request_count += 1
        started = time.monotonic()
        response = self._transport.handle_request(request)
        response.request = request
        try:
            response.read()
        except BaseException:
            response.close()
            raise
        if log.isEnabledFor(logging.INFO):
            log.info("%s %s -> %d (%.0f ms)", request.method, request.url.path, response.status_code,
                     (time.monotonic() - started) * 1000)
        return response


@functools.cache
def _list_adapter(model: type[M]) -> TypeAdapter[list[M]]:
    # Building an adapter compiles a validator (about 0.1 ms): once per model, not once per answer.
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _expired(clock: RequestClock) -> bool:
    left = clock.left()
    return left is not None and left <= 0


def _fits(delay: float, clock: RequestClock) -> bool:
    """Would a retry after ``delay`` seconds still start before the deadline?"""
    left = clock.left()
    return left is None or delay < left


def _tls_failure(err: BaseException) -> ssl.SSLError | None:
    """The TLS error behind a connection failure: not transient, so never retried."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def _permission_hint(path: str, message: str = "") -> str:
    """Name the grant a 403 says is missing, else the role it most likely means is missing."""
    denial = denial_in(message)
    if denial is not None:
        words = [denial.name] if denial.target_type == "TASK_DEF" else ["--workflow", denial.name]
        words += ["--access", denial.access] if denial.access != "EXECUTE" else []
        return (f"the key's application lacks {denial.access} on {denial.resource}: 'provision grant APP "
                f"{shlex.join(words)}' grants it, 'provision explain APP' shows how it holds its access")
    if path.startswith(("/applications", "/users", "/groups", "/auth", "/roles", "/sandbox")):
        return "the provisioning key needs the ADMIN role (its application is missing it)"
    if path.startswith("/metadata"):
        return "the key needs the METADATA_API role (or ADMIN) to manage definitions"
    if path.startswith("/tasks"):
        return "the worker's application needs the WORKER role and EXECUTE on the task: provision doctor APP"
    if path.startswith("/workflow"):
        return "the key needs EXECUTE on the workflow and its tasks: provision grant APP --workflow NAME"
    return PermissionDenied.default_hint
