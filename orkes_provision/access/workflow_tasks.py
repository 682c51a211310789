"""The worker tasks a workflow uses: what an application running its workers must be able to EXECUTE.

A workflow definition nests its tasks: FORK_JOIN (``forkTasks``, lists of lists), DECISION and
SWITCH (``decisionCases`` and ``defaultCase``), DO_WHILE (``loopOver``), and SUB_WORKFLOW
(``subWorkflowParam``: a name and version to fetch, or an inline ``workflowDefinition``). The walk
collects every SIMPLE task (a task without ``type`` is SIMPLE, as Conductor reads it) through all of
them. A sub-workflow already on the path is not entered again (a cycle); one that cannot be found is
reported, not guessed. DYNAMIC tasks and FORK_JOIN_DYNAMIC forks choose their tasks at run time: they
are noted, since no definition says which tasks they will be.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

# (name, version or None for the latest) -> the definition, or None when there is none.
Fetch = Callable[[str, int | None], Mapping[str, Any] | None]

_DYNAMIC = {"DYNAMIC": "its task is chosen at run time (dynamicTaskNameParam)",
            "FORK_JOIN_DYNAMIC": "its forked tasks are chosen at run time (dynamicForkTasksParam)"}


@dataclass
class WorkflowTasks:
    """What the walk of one workflow found."""

    workflow: str
    tasks: set[str] = field(default_factory=set)
    sub_workflows: set[str] = field(default_factory=set)
    dynamic: list[str] = field(default_factory=list)   # "WORKFLOW: REF (TYPE) ..." notes
    missing: list[str] = field(default_factory=list)   # sub-workflows not found
    cycles: list[str] = field(default_factory=list)    # "A -> B -> A"

    def to_dict(self) -> dict[str, Any]:
        return {"workflow": self.workflow, "tasks": sorted(self.tasks), "subWorkflows": sorted(self.sub_workflows),
                "dynamic": self.dynamic, "missing": self.missing, "cycles": self.cycles}


def workflow_tasks(name: str, fetch: Fetch, version: int | None = None) -> WorkflowTasks | None:
    """Every SIMPLE task workflow ``name`` uses, through nesting and sub-workflows; ``None`` when it is not found."""
    top = fetch(name, version)
    if top is None:
        return None
    found = WorkflowTasks(workflow=name)
    _walk_definition(top, name, fetch, found, (name,))
    return found


def _walk_definition(definition: Mapping[str, Any], name: str, fetch: Fetch, found: WorkflowTasks,
                     path: tuple[str, ...]) -> None:
    for task in _tasks(definition.get("tasks")):
        kind = str(task.get("type") or "SIMPLE").upper()
        ref = str(task.get("taskReferenceName") or task.get("name") or "?")
        if kind == "SIMPLE" and isinstance(task.get("name"), str):
            found.tasks.add(task["name"])
        elif kind in _DYNAMIC:
            found.dynamic.append(f"{name}: {ref} ({kind}): {_DYNAMIC[kind]}")
        elif kind == "SUB_WORKFLOW":
            _walk_sub_workflow(task, name, fetch, found, path)
        for nested in _nested(task):
            _walk_definition({"tasks": nested}, name, fetch, found, path)


def _walk_sub_workflow(task: Mapping[str, Any], name: str, fetch: Fetch, found: WorkflowTasks,
                       path: tuple[str, ...]) -> None:
    param = task.get("subWorkflowParam")
    if not isinstance(param, Mapping):
        return
    inline = param.get("workflowDefinition")
    sub = param.get("name") or (inline.get("name") if isinstance(inline, Mapping) else None)
    if not isinstance(sub, str) or not sub:
        found.dynamic.append(f"{name}: {task.get('taskReferenceName', '?')} (SUB_WORKFLOW): no workflow name")
        return
    found.sub_workflows.add(sub)
    if sub in path:
        found.cycles.append(" -> ".join((*path[path.index(sub):], sub)))
        return
    if isinstance(inline, Mapping):
        definition: Mapping[str, Any] | None = inline
    else:
        version = param.get("version")
        definition = fetch(sub, version if isinstance(version, int) and not isinstance(version, bool) else None)
    if definition is None:
        found.missing.append(sub)
        return
    _walk_definition(definition, sub, fetch, found, (*path, sub))


def _tasks(value: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(value, list):
        yield from (t for t in value if isinstance(t, Mapping))


def _nested(task: Mapping[str, Any]) -> Iterator[list[Any]]:
    """The task lists inside a FORK_JOIN, DECISION/SWITCH or DO_WHILE (any type: they only appear there)."""
    forks = task.get("forkTasks")
    if isinstance(forks, list):
        yield from (branch for branch in forks if isinstance(branch, list))
    cases = task.get("decisionCases")
    if isinstance(cases, Mapping):
        yield from (case for case in cases.values() if isinstance(case, list))
    for key in ("defaultCase", "loopOver"):
        if isinstance(task.get(key), list):
            yield task[key]


def server_fetch(get: Callable[[str, int | None], dict[str, Any]]) -> Fetch:
    """A ``Fetch`` over ``OrkesClient.get_workflow_def`` (``NotFound`` is ``None``), remembering each answer."""
    from orkes_provision.errors import NotFound

    cache: dict[tuple[str, int | None], Mapping[str, Any] | None] = {}

    def fetch(name: str, version: int | None) -> Mapping[str, Any] | None:
        if (name, version) not in cache:
            try:
                cache[(name, version)] = get(name, version)
            except NotFound:
                cache[(name, version)] = None
        return cache[(name, version)]

    return fetch


def local_first(definitions: list[dict[str, Any]], fallback: Fetch | None) -> Fetch:
    """Definitions at hand (an environment file's ``[[workflows]]``) first, then ``fallback`` (the server)."""
    def fetch(name: str, version: int | None) -> Mapping[str, Any] | None:
        mine = [d for d in definitions if d.get("name") == name and (version is None or d.get("version", 1) == version)]
        if mine:
            return max(mine, key=lambda d: int(d.get("version", 1)))
        return fallback(name, version) if fallback is not None else None

    return fetch
