"""Roles: ``/api/roles`` (filled in with custom roles later in issue 23)."""

from __future__ import annotations

from starlette.routing import Route

ROUTES: list[Route] = []
