"""The layout's rules (CONTRIBUTING.md "Code map"), checked on the imports themselves so a change cannot drift.

Each domain subpackage may import the shared top-level modules and the domains listed for it here;
the shared modules import no domain; only ``cli`` imports click.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "orkes_provision"
SHARED = "shared"

# What each domain may import besides the shared modules: an edge missing here is a layering change
# to make on purpose (and to say in CONTRIBUTING.md's code map), not by accident.
ALLOWED: dict[str, set[str]] = {
    "orkes": set(),
    "kube": set(),
    "toml": set(),
    "sandbox": {"orkes"},
    "credentials": {"orkes", "kube", "sandbox", "toml"},
    "access": {"orkes", "credentials"},
    "environments": {"orkes", "credentials", "access", "toml"},
    "agent": {"orkes", "credentials"},
    "workers": {"orkes", "access", "environments", "credentials", "kube", "toml"},
    "rotation": {"orkes", "access", "environments", "credentials", "workers", "agent"},
    "probe": {"orkes", "sandbox"},
    "cli": {"orkes", "kube", "sandbox", "credentials", "access", "environments", "workers", "rotation", "toml",
            "agent", "probe"},
    SHARED: set(),
}


def _domains() -> set[str]:
    return {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def _owner(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else SHARED


def _edges() -> Iterator[tuple[Path, str, str]]:
    """(module, its domain, the domain or 'shared' it imports) for every import inside the package."""
    domains = _domains()
    for path in sorted(PACKAGE.rglob("*.py")):
        owner = _owner(path)
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "orkes_provision" and len(parts) > 1:
                target = parts[1] if parts[1] in domains else SHARED
                if target != owner:
                    yield path, owner, target
            elif parts[0] == "click":
                yield path, owner, "click"


def test_every_domain_subpackage_has_its_rule() -> None:
    assert _domains() == set(ALLOWED) - {SHARED}


def test_each_domain_imports_only_the_shared_modules_and_the_domains_it_may_use() -> None:
    wrong = [f"{path.relative_to(PACKAGE)}: {owner} imports {target}"
             for path, owner, target in _edges()
             if target not in ({SHARED, "click"} | ALLOWED[owner]) or (owner == SHARED and target != "click")]
    assert wrong == []


def test_only_the_cli_imports_click() -> None:
    assert [str(path.relative_to(PACKAGE)) for path, owner, target in _edges()
            if target == "click" and owner != "cli"] == []


@pytest.mark.parametrize("domain", sorted(set(ALLOWED) - {SHARED}))
def test_the_code_map_names_each_subpackage(domain: str) -> None:
    guide = (PACKAGE.parent / "CONTRIBUTING.md").read_text(encoding="utf-8")
    code_map = guide[guide.index("## Code map"):]
    code_map = code_map[: code_map.find("\n#", 1)]
    assert f"| `orkes_provision/{domain}/` |" in code_map
