"""Fixtures for the sandbox's own tests: the process fixtures, and an in-process client.

``api`` runs the ASGI app in this process (Starlette's TestClient) on a fresh data dir: fast, for
everything that needs no real socket. ``admin`` is its admin token header.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox_fixtures import sandbox, sandbox_factory

pytest.importorskip("starlette")

with warnings.catch_warnings():
    # Starlette 1.x nudges towards httpx2 for its test client; httpx works and is what we ship.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from orkes_provision.sandbox.app import create_app
from orkes_provision.sandbox.bootstrap import AdminCredentials, ensure_admin
from orkes_provision.sandbox.config import SandboxConfig
from orkes_provision.sandbox.state import SandboxState

__all__ = ["sandbox", "sandbox_factory"]


class Api:
    """An in-process sandbox with helpers that speak its wire format."""

    def __init__(self, data_dir: Path, token_ttl: int = 3600, **options: Any) -> None:
        self.config = SandboxConfig(data_dir=data_dir, port=8080, token_ttl_seconds=token_ttl, **options)
        self.state = SandboxState.open(self.config)
        self.creds: AdminCredentials = ensure_admin(self.state, self.config.api_url(8080))
        self.client = TestClient(create_app(self.state), base_url="http://testserver")
        self.admin = self.headers(self.creds.key_id, self.creds.secret.get_secret_value())

    def token(self, key_id: str, secret: str) -> str:
        response = self.client.post("/api/token", json={"keyId": key_id, "keySecret": secret})
        assert response.status_code == 200, response.text
        return str(response.json()["token"])

    def headers(self, key_id: str, secret: str) -> dict[str, str]:
        return {"X-Authorization": self.token(key_id, secret)}

    def new_app(self, name: str, *roles: str, as_: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
        """Create an application with roles and a key; return its id and its auth headers."""
        headers = as_ or self.admin
        response = self.client.post("/api/applications", json={"name": name}, headers=headers)
        assert response.status_code == 200, response.text
        app_id = str(response.json()["id"])
        for role in roles:
            added = self.client.post(f"/api/applications/{app_id}/roles/{role}", json={}, headers=self.admin)
            assert added.status_code == 200, added.text
        key = self.client.post(f"/api/applications/{app_id}/accessKeys", json={}, headers=headers).json()
        return app_id, self.headers(key["id"], key["secret"])

    def grant(self, app_id: str, target_type: str, target_id: str, *access: str) -> None:
        response = self.client.post("/api/auth/authorization", headers=self.admin, json={
            "subject": {"type": "USER", "id": f"app:{app_id}"},
            "target": {"type": target_type, "id": target_id}, "access": list(access or ["EXECUTE"])})
        assert response.status_code == 200, response.text

    def close(self) -> None:
        self.client.close()
        self.state.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    instance = Api(tmp_path / "data")
    yield instance
    instance.close()
