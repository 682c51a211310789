"""The hint test's log: every command the tool printed as a next step or fix, and how running it went.

The root conftest prints ``render()`` at the end of the run.
"""

from __future__ import annotations

from dataclasses import dataclass

RUN: list[HintRun] = []


@dataclass
class HintRun:
    scenario: str
    printed_by: str
    command: str
    exit_code: int
    effect: str = "FAILED"  # until the scenario checked what the command did


def render() -> str:
    lines = ["| scenario | printed by | command (run verbatim: PATH and HOME only) | exit | effect checked |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r.scenario} | {r.printed_by} | `{r.command}` | {r.exit_code} | {r.effect} |" for r in RUN]
    failed = sum(1 for r in RUN if r.effect == "FAILED")
    lines += ["", f"{len(RUN)} commands run, {failed} failed."]
    return "\n".join(lines)
