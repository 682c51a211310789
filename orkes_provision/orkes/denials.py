"""What a 403 says is missing: the access and the definition it was refused on.

Orkes words a refused permission as ``You don't have permissions to <verb> <kind>: <name>``
(reference/orkes-api.md, the 403 ``ErrorResponse``: "You don't have permissions to execute task:
book_ride"), and the sandbox words its refusals the same way. Only refusals on a task or workflow
definition, named by its name, become a ``Denial``: "read workflow: <id>" names an execution, which
no grant names, and a refusal to create a definition wants a role, not a grant.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_MESSAGE = re.compile(r"you don't have permissions? to (execute|read|update|delete) "
                      r"(task definition|workflow definition|task|workflow): (\S.*)$", re.IGNORECASE)
_KINDS = {"task": "TASK_DEF", "task definition": "TASK_DEF", "workflow definition": "WORKFLOW_DEF",
          "workflow": "WORKFLOW_DEF"}
MAX_NAME = 256


@dataclass(frozen=True)
class Denial:
    """``access`` (EXECUTE, READ, ...) refused on the definition ``target_type`` (TASK_DEF or WORKFLOW_DEF) ``name``."""

    access: str
    target_type: str
    name: str

    @property
    def resource(self) -> str:
        return f"{'task' if self.target_type == 'TASK_DEF' else 'workflow'} {self.name}"


def denial_in(message: str) -> Denial | None:
    """The ``Denial`` a 403 message describes, or ``None`` when it names no definition."""
    match = _MESSAGE.search(message.strip())
    if match is None:
        return None
    verb, kind, name = match.group(1).lower(), match.group(2).lower(), match.group(3).strip()
    if kind == "workflow" and verb != "execute":
        return None  # reading or changing "workflow: <id>" is about one execution, not a definition
    if len(name) > MAX_NAME or any(not c.isprintable() for c in name):
        return None
    return Denial(verb.upper(), _KINDS[kind], name)


def denial_in_body(body: bytes | None) -> Denial | None:
    """The ``Denial`` in a 403 answer's JSON body (``{"status": 403, "message": ...}``)."""
    if not body:
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None
    message = data.get("message") if isinstance(data, dict) else None
    return denial_in(message) if isinstance(message, str) else None
