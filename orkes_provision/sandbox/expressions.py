"""``${...}`` references in task inputs and workflow outputs, resolved as Conductor does.

Supported: ``${workflow.input.<path>}``, ``${workflow.output.<path>}``, ``${workflow.workflowId}``,
``${workflow.correlationId}``, ``${<taskRef>.output.<path>}`` and ``${<taskRef>.input.<path>}``,
where ``<path>`` is dot-separated (list indexes as numbers). A string that is exactly one reference
takes the referenced value with its type; references inside a longer string are replaced by their
text. Unknown references resolve to null, as on Conductor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_REF = re.compile(r"\$\{([^}]+)\}")


def resolve(template: Any, context: Mapping[str, Any]) -> Any:
    """Resolve every reference in ``template`` (dicts and lists recursively).

    ``context`` maps ``"workflow"`` to ``{input, output, workflowId, correlationId}`` and each task
    reference name to ``{input, output}``.
    """
    if isinstance(template, str):
        return _resolve_string(template, context)
    if isinstance(template, dict):
        return {key: resolve(value, context) for key, value in template.items()}
    if isinstance(template, list):
        return [resolve(value, context) for value in template]
    return template


def _resolve_string(text: str, context: Mapping[str, Any]) -> Any:
    whole = _REF.fullmatch(text)
    if whole is not None:
        return lookup(whole.group(1), context)

    def substitute(match: re.Match[str]) -> str:
        value = lookup(match.group(1), context)
        if value is None:
            return ""
        return value if isinstance(value, str) else json.dumps(value)

    return _REF.sub(substitute, text)


def lookup(expression: str, context: Mapping[str, Any]) -> Any:
    value: Any = context
    for part in expression.strip().split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
        if value is None:
            return None
    return value
