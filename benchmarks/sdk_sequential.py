"""The baseline of benchmark (a): what a user writes by hand with conductor-python's authorization client.

Sequential, one call at a time: for each application, create it, add the WORKER role, create a key
and write it to an env file (0600), then grant EXECUTE on each of its tasks; then upsert each user,
and for each group upsert it, add its members in one call and grant READ on each of its tasks. It
reads the layout (application, task, user and group names, env-file paths) from a JSON file
written by ``apply_vs_sdk.py``, and the admin credentials from CONDUCTOR_SERVER_URL /
CONDUCTOR_AUTH_KEY / CONDUCTOR_AUTH_SECRET.

    .venv/bin/python benchmarks/sdk_sequential.py LAYOUT.json

Prints one JSON line: {"seconds": <time of the work, imports and setup excluded>, "calls": N}.
"""

from __future__ import annotations

import json
import os
import sys
import time

from conductor.client.configuration.configuration import Configuration
from conductor.client.configuration.settings.authentication_settings import AuthenticationSettings
from conductor.client.http.models.create_or_update_application_request import CreateOrUpdateApplicationRequest
from conductor.client.http.models.subject_ref import SubjectRef
from conductor.client.http.models.target_ref import TargetRef
from conductor.client.http.models.upsert_group_request import UpsertGroupRequest
from conductor.client.http.models.upsert_user_request import UpsertUserRequest
from conductor.client.orkes.models.access_type import AccessType
from conductor.client.orkes.orkes_authorization_client import OrkesAuthorizationClient


def write_env_file(path: str, server: str, key_id: str, secret: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"CONDUCTOR_SERVER_URL={server}\nCONDUCTOR_AUTH_KEY={key_id}\nCONDUCTOR_AUTH_SECRET={secret}\n")


def main() -> None:
    with open(sys.argv[1]) as handle:
        layout = json.load(handle)
    server = os.environ["CONDUCTOR_SERVER_URL"]
    config = Configuration(server_api_url=server, authentication_settings=AuthenticationSettings(
        key_id=os.environ["CONDUCTOR_AUTH_KEY"], key_secret=os.environ["CONDUCTOR_AUTH_SECRET"]))
    started = time.monotonic()
    client = OrkesAuthorizationClient(config)
    calls = 0
    for app in layout["applications"]:
        created = client.create_application(CreateOrUpdateApplicationRequest(name=app["name"]))
        client.add_role_to_application_user(created.id, "WORKER")
        key = client.create_access_key(created.id)
        write_env_file(app["envFile"], server, key.id, key.secret)
        calls += 3
        subject = SubjectRef("USER", f"app:{created.id}")
        for task in app["tasks"]:
            client.grant_permissions(subject, TargetRef("TASK_DEF", task), [AccessType.EXECUTE])
            calls += 1
    for user in layout.get("users", []):
        client.upsert_user(UpsertUserRequest(name=user["name"], roles=user["roles"]), user["id"])
        calls += 1
    for group in layout.get("groups", []):
        client.upsert_group(UpsertGroupRequest(description=group["description"], roles=group["roles"]), group["id"])
        calls += 1
        if group["members"]:
            client.add_users_to_group(group["id"], group["members"])
            calls += 1
        for task in group["tasks"]:
            client.grant_permissions(SubjectRef("GROUP", group["id"]), TargetRef("TASK_DEF", task), [AccessType.READ])
            calls += 1
    print(json.dumps({"seconds": time.monotonic() - started, "calls": calls}))


if __name__ == "__main__":
    main()
