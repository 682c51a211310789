"""A 403's message names the access and the definition refused, in the words Orkes and the sandbox use."""

from __future__ import annotations

import pytest

from orkes_provision.orkes.denials import Denial, denial_in, denial_in_body


@pytest.mark.parametrize(("message", "denial"), [
    # Verbatim from an Orkes server (reference/orkes-api.md, the saga example's issue).
    ("You don't have permissions to execute task: book_ride", Denial("EXECUTE", "TASK_DEF", "book_ride")),
    ("You don't have permissions to execute workflow: greetings", Denial("EXECUTE", "WORKFLOW_DEF", "greetings")),
    ("You don't have permissions to read task definition: ship", Denial("READ", "TASK_DEF", "ship")),
    ("You don't have permissions to update workflow definition: order flow",
     Denial("UPDATE", "WORKFLOW_DEF", "order flow")),
])
def test_a_refusal_on_a_definition_names_its_access_and_name(message: str, denial: Denial) -> None:
    assert denial_in(message) == denial


@pytest.mark.parametrize("message", [
    # An execution id is no definition a grant could name; creating wants a role, not a grant.
    "You don't have permissions to read workflow: 6f1c0b2e-0000-4000-8000-000000000000",
    "You don't have permissions to terminate workflow: 6f1c0b2e-0000-4000-8000-000000000000",
    "You don't have permissions to create workflow definition: greetings",
    "You don't have permissions to read user: app:1234",
    "Only an ADMIN can list the grants of another subject",
    "You don't have permissions to execute task: evil\x1b[2Jname",
    "",
])
def test_anything_else_is_no_denial(message: str) -> None:
    assert denial_in(message) is None


def test_the_body_of_a_403_is_read_defensively() -> None:
    body = b'{"status":403,"message":"You don\'t have permissions to execute task: greetings","retryable":false}'
    assert denial_in_body(body) == Denial("EXECUTE", "TASK_DEF", "greetings")
    for junk in (None, b"", b"not json", b"[1]", b'{"message": 3}', b"{" * 100_000):
        assert denial_in_body(junk) is None
