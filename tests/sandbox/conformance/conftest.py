"""Conformance tests: the official conductor-python 2.0.0 clients and worker against the sandbox."""

from __future__ import annotations

import pytest

from tests.sandbox_fixtures import sandbox, sandbox_factory

pytest.importorskip("conductor.client", reason="conductor-python (dev extra) is not installed")

__all__ = ["sandbox", "sandbox_factory"]
