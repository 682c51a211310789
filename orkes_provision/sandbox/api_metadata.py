"""Placeholder: filled in by the next commit."""

from __future__ import annotations

from starlette.routing import Route

ROUTES: list[Route] = []
