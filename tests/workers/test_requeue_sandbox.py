"""``requeue_held_tasks`` against a sandbox: it hands back exactly the IN_PROGRESS tasks held under the
given worker ids, as the worker application itself, and nothing another worker holds.

The Orkes docs refuse task search to a WORKER key, and so does the default sandbox: there, the hand-back
works only from task ids learnt otherwise (the credential agent's), and without them it says in one line
that it cannot. The search path is tested on a sandbox that allows it, as some servers may (``probe``).

Tasks are polled with conductor-python's own task client (an independent client), under chosen ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from conductor.client.http.models.task_result import TaskResult
from conductor.client.orkes_clients import OrkesClients

from orkes_provision.errors import PermissionDenied
from orkes_provision.orkes import serverfacts
from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials, Target, TaskDef, app_subject
from orkes_provision.sandbox.harness import SandboxProcess
from orkes_provision.workers import requeue
from orkes_provision.workers.requeue import RequeueImpossible, held_query, requeue_held_tasks, requeue_with_key
from tests.sandbox.conformance.sdk_support import sdk_clients
from tests.sandbox_fixtures import SandboxFactory
from tests.workers.launch_helpers import FakeKey

pytestmark = pytest.mark.slow


@dataclass
class World:
    admin: OrkesClient
    worker: OrkesClient  # the application's own key: WORKER + EXECUTE on the tasks
    key: FakeKey
    sdk: OrkesClients  # conductor-python, as the worker application

    def start(self, workflow: str, n: int = 1) -> list[str]:
        return [self.admin.start_workflow(workflow, {}) for _ in range(n)]

    def poll(self, task: str, worker_id: str, count: int) -> list[str]:
        polled = self.sdk.get_task_client().batch_poll_tasks(task, worker_id=worker_id, count=count,
                                                            timeout_in_millisecond=100)
        return [t.task_id for t in polled]

    def status(self, task_id: str) -> tuple[str, str | None]:
        task = self.admin.get_task(task_id)
        return str(task["status"]), task.get("workerId")


@pytest.fixture
def world(sandbox_factory: SandboxFactory) -> Iterator[World]:
    yield from _world(sandbox_factory(worker_search=True))


@pytest.fixture
def strict_world(sandbox_factory: SandboxFactory) -> Iterator[World]:
    yield from _world(sandbox_factory())


def _world(sandbox: SandboxProcess) -> Iterator[World]:
    admin = OrkesClient(Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret))
    names = ("crunch", "report", "odd name")
    admin.register_task_defs([TaskDef(name=n) for n in names])
    for name in names:
        admin.register_workflow_def({"name": f"flow-{name.replace(' ', '-')}", "version": 1, "timeoutSeconds": 3600,
                                     "tasks": [{"name": name, "taskReferenceName": "t", "type": "SIMPLE"}]})
    app = admin.create_application("crunchers")
    admin.add_role(app.id, "WORKER")
    for name in names:
        admin.grant(app_subject(app.id), Target(type="TASK_DEF", id=name), ["EXECUTE"])
    created = admin.create_key(app.id)
    key = FakeKey(sandbox.url, "crunchers", created.id, created.secret)
    worker = OrkesClient(Credentials(server=sandbox.url, key_id=created.id, secret=created.secret))
    sdk = sdk_clients(sandbox.url, created.id, created.secret.get_secret_value())
    yield World(admin, worker, key, sdk)
    worker.close()
    admin.close()


def test_only_the_tasks_held_under_the_stopped_ids_go_back_to_the_queue(world: World) -> None:
    world.start("flow-crunch", 4)
    world.start("flow-report", 1)
    mine = world.poll("crunch", "host-aa-r0-1", 2)
    theirs = world.poll("crunch", "host-aa-r1-2", 1)
    other_type = world.poll("report", "host-aa-r0-1", 1)

    report = requeue_held_tasks(world.worker, ["host-aa-r0-1"], ["crunch"])

    assert sorted(report.requeued) == sorted(mine)
    assert [world.status(t) for t in mine] == [("SCHEDULED", None)] * 2
    assert world.status(theirs[0]) == ("IN_PROGRESS", "host-aa-r1-2")  # a running worker keeps its task
    assert world.status(other_type[0]) == ("IN_PROGRESS", "host-aa-r0-1")  # not one of the worker's types
    # The next poll gets them, and the one task never polled: nothing else.
    assert len(set(world.poll("crunch", "host-aa-r0-2", 5)) & set(mine)) == 2


def test_without_task_types_every_visible_type_is_searched(world: World) -> None:
    world.start("flow-crunch")
    world.start("flow-odd-name")
    held = [*world.poll("crunch", "gone", 1), *world.poll("odd name", "gone", 1)]

    report = requeue_with_key(world.key, ["gone"])

    assert sorted(report.requeued) == sorted(held)
    assert report.examined == 2


def test_a_task_name_the_query_cannot_hold_is_matched_on_the_answers(world: World) -> None:
    assert held_query(["odd name", "crunch"]) == "status IN (IN_PROGRESS)"
    assert held_query(["report", "crunch"]) == "status IN (IN_PROGRESS) AND taskType IN (crunch, report)"
    world.start("flow-odd-name")
    world.start("flow-crunch")
    odd = world.poll("odd name", "gone", 1)
    crunch = world.poll("crunch", "gone", 1)

    report = requeue_held_tasks(world.worker, ["gone"], ["odd name"])

    assert report.requeued == odd
    assert world.status(crunch[0]) == ("IN_PROGRESS", "gone")


def test_pages_of_candidates_are_all_read(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(requeue, "PAGE_SIZE", 2)
    world.start("flow-crunch", 5)
    held = world.poll("crunch", "gone", 5)

    report = requeue_held_tasks(world.worker, ["gone"], ["crunch"])

    assert sorted(report.requeued) == sorted(held)
    assert not report.more


def test_a_task_the_worker_finished_meanwhile_is_left_alone(world: World) -> None:
    [workflow_id] = world.start("flow-crunch")
    [task_id] = world.poll("crunch", "gone", 1)
    world.sdk.get_task_client().update_task(TaskResult(workflow_instance_id=workflow_id, task_id=task_id,
                                                       status="COMPLETED", worker_id="gone"))

    assert requeue_held_tasks(world.worker, ["gone"], ["crunch"]).requeued == []
    assert world.admin.get_workflow(workflow_id)["status"] == "COMPLETED"


def test_a_key_without_access_to_the_tasks_finds_nothing_to_hand_back(world: World) -> None:
    world.start("flow-crunch")
    [task_id] = world.poll("crunch", "gone", 1)
    stranger = world.admin.create_application("strangers")
    world.admin.add_role(stranger.id, "WORKER")
    created = world.admin.create_key(stranger.id)
    with OrkesClient(Credentials(server=world.key.server, key_id=created.id, secret=created.secret)) as client:
        assert requeue_held_tasks(client, ["gone"], ["crunch"]).requeued == []
        with pytest.raises(PermissionDenied):
            client.return_task_to_queue(world.admin.get_task(task_id)["workflowInstanceId"], task_id)
    assert world.status(task_id) == ("IN_PROGRESS", "gone")


def test_where_search_is_refused_a_worker_key_hands_back_the_tasks_whose_ids_are_known(strict_world: World) -> None:
    world = strict_world
    world.start("flow-crunch", 2)
    mine = world.poll("crunch", "gone", 1)
    theirs = world.poll("crunch", "running", 1)

    report = requeue_held_tasks(world.worker, ["gone"], ["crunch"], task_ids=[*mine, *theirs], worker_key=True)

    assert report.requeued == mine
    assert world.status(mine[0]) == ("SCHEDULED", None)
    assert world.status(theirs[0]) == ("IN_PROGRESS", "running")


def test_where_search_is_refused_and_no_id_is_known_requeue_says_so_once_and_remembers(strict_world: World) -> None:
    world = strict_world
    world.start("flow-crunch")
    [task_id] = world.poll("crunch", "gone", 1)

    with pytest.raises(RequeueImpossible) as refused:
        requeue_with_key(world.key, ["gone"], ["crunch"])

    assert refused.value.message == ("this server does not let a WORKER key search tasks, so the tasks a stopped "
                                     "worker held wait for their response timeout")
    assert "credential agent" in refused.value.hint
    assert serverfacts.lookup(world.key.server, serverfacts.WORKER_TASK_SEARCH) == "refused"
    with OrkesClient(Credentials(server=world.key.server, key_id=world.key.key_id, secret=world.key.secret)) as client:
        with pytest.raises(RequeueImpossible):
            requeue_held_tasks(client, ["gone"], ["crunch"], worker_key=True)
        assert client.request_count == 0  # the fact answered: no token, no search
    assert world.status(task_id) == ("IN_PROGRESS", "gone")
