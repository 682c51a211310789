"""Fixtures for the Kubernetes tests: a recording stand-in ``kubectl`` on PATH, and strict validation.

No cluster is needed: ``kubectl`` is ``fake_kubectl.py`` copied into ``<tmp>/bin`` with this
interpreter in its ``#!`` line, first on PATH. ``Kubectl.calls`` reads back what it was given.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
yaml = pytest.importorskip("yaml")

KUBERNETES_VERSION = "1.30"
FAKE_SOURCE = Path(__file__).with_name("fake_kubectl.py")


@dataclass
class Call:
    argv: list[str]
    stdin: str
    leaked_env: list[str]

    @property
    def documents(self) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(self.stdin) if d] if self.stdin else []


class Kubectl:
    """The stand-in's recorded calls and its object state."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.state_path = bin_dir / "state.json"
        self.calls_path = bin_dir / "calls.jsonl"

    def calls(self) -> list[Call]:
        if not self.calls_path.exists():
            return []
        return [Call(**json.loads(line)) for line in self.calls_path.read_text().splitlines() if line]

    def verbs(self) -> list[str]:
        return [c.argv[0] for c in self.calls()]

    def applied(self) -> list[dict[str, Any]]:
        """Every document piped to ``kubectl apply``, in order."""
        return [d for c in self.calls() if c.argv[:1] == ["apply"] for d in c.documents]

    def state(self) -> dict[str, Any]:
        return dict(json.loads(self.state_path.read_text())) if self.state_path.exists() else {}

    def set(self, **values: Any) -> None:
        state = self.state()
        state.update(values)
        self.state_path.write_text(json.dumps(state))

    def object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.state().get("objects", {}).get(f"{kind}/{namespace}/{name}")
        return dict(found) if found is not None else None

    def put(self, obj: dict[str, Any]) -> None:
        """Create an object directly, as someone else (kubectl by hand) would have."""
        state = self.state()
        meta = obj["metadata"]
        meta.setdefault("generation", 1)
        state.setdefault("objects", {})[f"{obj['kind']}/{meta['namespace']}/{meta['name']}"] = obj
        self.state_path.write_text(json.dumps(state))

    def clear_calls(self) -> None:
        self.calls_path.unlink(missing_ok=True)

    def argv_text(self) -> str:
        return "\n".join(" ".join(c.argv) for c in self.calls())


@pytest.fixture
def kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Kubectl:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "kubectl"
    script.write_text(f"#!{sys.executable}\n" + FAKE_SOURCE.read_text())
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return Kubectl(bin_dir)


def validate_strict(document: dict[str, Any]) -> None:
    """Validate one object against the Kubernetes 1.30 schemas, strictly (no unknown fields)."""
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def load_documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]
