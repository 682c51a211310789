"""``${...}`` resolution in task inputs and workflow outputs."""

from __future__ import annotations

from typing import Any

from orkes_provision.sandbox.expressions import resolve

CONTEXT: dict[str, Any] = {
    "workflow": {"input": {"name": "Ada", "n": 3, "nested": {"list": [10, 20]}}, "workflowId": "wf-1"},
    "hello": {"output": {"greeting": "Hello, Ada", "obj": {"a": 1}}, "input": {"name": "Ada"}},
}


def test_a_whole_reference_keeps_the_value_type() -> None:
    assert resolve("${workflow.input.n}", CONTEXT) == 3
    assert resolve("${hello.output.obj}", CONTEXT) == {"a": 1}
    assert resolve("${workflow.input.nested.list.1}", CONTEXT) == 20


def test_references_inside_text_are_substituted_as_text() -> None:
    assert resolve("id=${workflow.workflowId} n=${workflow.input.n}", CONTEXT) == "id=wf-1 n=3"
    assert resolve("${hello.output.obj}!", CONTEXT) == '{"a": 1}!'


def test_templates_resolve_recursively_and_unknown_references_are_null() -> None:
    template = {"a": ["${hello.input.name}", {"b": "${missing.output.x}"}], "c": 5, "d": "plain"}
    assert resolve(template, CONTEXT) == {"a": ["Ada", {"b": None}], "c": 5, "d": "plain"}
    assert resolve("x${workflow.input.none}y", CONTEXT) == "xy"
