"""A plan's changes as jobs, one request each, and the order between them.

A job is one change, the batch of every task definition (one call), or a bundle of changes one
request carries out (a user's or a group's upsert, the members a group gains or loses). A job
waits for the jobs that provide a fact one of its changes needs (``Change.needs``/``provides``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from orkes_provision.access.changes import TASKS, Change, Fact


@dataclass(eq=False)
class Job:
    """One request; hashed by identity, so it can key the graph."""

    changes: list[Change]
    # Where its first change is in the plan: jobs equally urgent start in plan order.
    position: int
    batch: bool = False
    bundled: bool = False
    needs: set[Job] = field(default_factory=set)

    @property
    def priority(self) -> tuple[int, int]:
        return (min(c.priority for c in self.changes), self.position)


def job_graph(changes: Sequence[Change]) -> list[Job]:
    """The jobs in start order (among those ready, the first listed starts first), each with what it waits for."""
    jobs = _jobs(changes)
    providers: dict[Fact, list[Job]] = {}
    for job in jobs:
        for fact in {fact for change in job.changes for fact in change.provides()}:
            providers.setdefault(fact, []).append(job)
    for job in jobs:
        job.needs = {provider for change in job.changes for fact in change.needs()
                     for provider in providers.get(fact, ()) if provider is not job}
    return jobs


def _jobs(changes: Sequence[Change]) -> list[Job]:
    batch = Job([c for c in changes if c.stage == TASKS], position=-1, batch=True)
    jobs: list[Job] = []
    bundles: dict[tuple[str, str], Job] = {}
    for position, change in enumerate(changes):
        key = change.bundle()
        if change.stage == TASKS:
            continue
        if key is None:
            jobs.append(Job([change], position))
        elif key in bundles:
            bundles[key].changes.append(change)
        else:
            bundles[key] = Job([change], position, bundled=True)
            jobs.append(bundles[key])
    jobs.sort(key=lambda job: job.priority)
    return ([batch] if batch.changes else []) + jobs
