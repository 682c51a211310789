"""docs/json.md, read as the tests read it: the example documents of each command, and a shape check."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[2] / "docs" / "json.md"
_HEADING = re.compile(r"^## (.+)$", flags=re.MULTILINE)
_BLOCK = re.compile(r"```json\n(.*?)```", flags=re.DOTALL)


def documented() -> dict[str, list[Any]]:
    """Section name -> its example documents. Sections are named by the commands in their heading
    (``keys rotate``; ``worker run`` for the lifecycle events), or by the heading (``Errors``)."""
    text = DOC.read_text()
    parts = _HEADING.split(text)
    found: dict[str, list[Any]] = {}
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        names = [re.sub(r" --\S+", "", c).strip() for c in re.findall(r"`provision ([^`]+)`", heading)] or [heading]
        examples = [json.loads(block) for block in _BLOCK.findall(body)]
        for name in names:
            found.setdefault(name, []).extend(examples)
    return found


def mismatch(actual: Any, shape: Any, where: str = "$") -> str | None:
    """Why ``actual`` does not have the documented ``shape``, or ``None`` when it does."""
    if actual is None:
        return None
    if isinstance(shape, dict):
        if not isinstance(actual, dict):
            return f"{where}: expected an object, got {type(actual).__name__}"
        pattern = [k for k in shape if k.startswith("<") and k.endswith(">")]
        if pattern:
            for key, value in actual.items():
                problem = mismatch(value, shape[pattern[0]], f"{where}.{key}")
                if problem:
                    return problem
            return None
        required = {k for k in shape if not k.endswith("?")}
        allowed = {k.rstrip("?") for k in shape}
        if required - set(actual):
            return f"{where}: missing {sorted(required - set(actual))}"
        if set(actual) - allowed:
            return f"{where}: undocumented {sorted(set(actual) - allowed)}"
        for key, value in actual.items():
            spec = shape[key] if key in shape else shape[f"{key}?"]
            problem = mismatch(value, spec, f"{where}.{key}")
            if problem:
                return problem
        return None
    if isinstance(shape, list):
        if not isinstance(actual, list):
            return f"{where}: expected a list, got {type(actual).__name__}"
        for index, item in enumerate(actual):
            problems = [mismatch(item, option, f"{where}[{index}]") for option in shape]
            if shape and all(problems):
                return problems[0]
            if not shape:
                return f"{where}: documented as always empty"
        return None
    if shape is None:
        return None
    kinds = {bool: "boolean", int: "number", float: "number", str: "string"}
    if kinds.get(type(actual)) != kinds.get(type(shape)):
        return f"{where}: expected a {kinds.get(type(shape))}, got {actual!r}"
    return None


def check(section: str, actual: Any) -> str | None:
    """``None`` when ``actual`` has the shape of one of the examples documented for ``section``."""
    examples = documented().get(section)
    if not examples:
        return f"docs/json.md documents no JSON for {section!r}"
    problems = [mismatch(actual, example) for example in examples]
    return None if any(p is None for p in problems) else "; ".join(str(p) for p in problems)
