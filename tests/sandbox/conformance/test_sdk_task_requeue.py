"""conductor-python 2.0.0's task client drives the operations that return a stopped worker's
tasks to the queue: task search, get task, and an ``IN_PROGRESS`` update with
``callbackAfterSeconds`` 0. Requests and answers are validated against the Orkes OpenAPI schemas."""

from __future__ import annotations

from conductor.client.http.models.task_def import TaskDef
from conductor.client.http.models.task_result import TaskResult
from conductor.client.http.models.workflow_def import WorkflowDef
from conductor.client.http.models.workflow_task import WorkflowTask

from orkes_provision.sandbox.harness import SandboxProcess
from tests.sandbox.conformance.schemas import validate
from tests.sandbox.conformance.sdk_support import Recorder, sdk_clients


def test_sdk_finds_a_held_task_and_hands_it_back_to_the_queue(sandbox: SandboxProcess) -> None:
    recorder = Recorder()
    admin = sdk_clients(sandbox.url, sandbox.admin_key_id, sandbox.admin_secret.get_secret_value(), recorder)
    admin.get_metadata_client().register_task_def(TaskDef(name="crunch", timeout_seconds=3600,
                                                          total_timeout_seconds=0))
    admin.get_metadata_client().register_workflow_def(WorkflowDef(
        name="crunching", version=1, timeout_seconds=3600,
        tasks=[WorkflowTask(name="crunch", task_reference_name="c", type="SIMPLE")]),
        overwrite=True)
    workflow_id = admin.get_workflow_client().start_workflow_by_name("crunching", {}, version=1)
    tasks = admin.get_task_client()
    [held] = tasks.batch_poll_tasks("crunch", worker_id="host-sup1-r0-1", count=1, timeout_in_millisecond=100)

    page = tasks.taskResourceApi.search1(query="status IN (IN_PROGRESS) AND taskType IN (crunch)", size=10)
    assert page.total_hits == 1
    assert page.results[0].task_id == held.task_id
    assert tasks.get_task(held.task_id).worker_id == "host-sup1-r0-1"
    tasks.update_task(TaskResult(workflow_instance_id=workflow_id, task_id=held.task_id, status="IN_PROGRESS",
                                 callback_after_seconds=0))

    [again] = tasks.batch_poll_tasks("crunch", worker_id="host-sup1-r0-2", count=1, timeout_in_millisecond=100)
    assert (again.task_id, again.worker_id, again.poll_count, again.retry_count) == (
        held.task_id, "host-sup1-r0-2", 2, 0)
    checked = {validate(exchange) for exchange in recorder.exchanges}
    assert {"search_2", "getTask", "updateTask", "batchPoll"} <= checked
