"""Poll data: every poll that gets through is recorded per queue, domain and worker id, as Orkes shows it."""

from __future__ import annotations

from typing import Any

from orkes_provision.sandbox.http import now_ms
from orkes_provision.sandbox.polldata import PollDataBook
from tests.sandbox.conftest import Api

WORKFLOW = {"name": "greet", "version": 1, "timeoutSeconds": 60,
            "tasks": [{"name": "greetings", "taskReferenceName": "hello", "type": "SIMPLE"}]}


def _setup(api: Api) -> None:
    defs = [{"name": n, "timeoutSeconds": 60} for n in ("greetings", "shout")]
    assert api.client.post("/api/metadata/taskdefs", json=defs, headers=api.admin).status_code == 200
    assert api.client.post("/api/metadata/workflow", json=WORKFLOW, headers=api.admin).status_code == 200


def _worker(api: Api, *tasks: str) -> dict[str, str]:
    app_id, headers = api.new_app("worker", "WORKER")
    for task in tasks:
        api.grant(app_id, "TASK_DEF", task, "EXECUTE")
    return headers


def _poll_data(api: Api, task: str, headers: dict[str, str] | None = None) -> Any:
    response = api.client.get("/api/tasks/queue/polldata", params={"taskType": task}, headers=headers or api.admin)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_task_nobody_polled_has_no_poll_data(api: Api) -> None:
    _setup(api)
    assert _poll_data(api, "greetings") == []
    assert _poll_data(api, "no-such-task") == []


def test_batch_and_single_polls_record_the_worker_id_domain_and_time(api: Api) -> None:
    _setup(api)
    worker = _worker(api, "greetings")
    before = now_ms()
    api.client.get("/api/tasks/poll/batch/greetings?workerid=host-a&count=1&timeout=0", headers=worker)
    api.client.get("/api/tasks/poll/greetings?workerid=host-b&domain=blue", headers=worker)
    api.client.get("/api/tasks/poll/batch/greetings?count=1&timeout=0", headers=worker)  # names no worker
    after = now_ms()

    data = _poll_data(api, "greetings")

    assert [(p["queueName"], p.get("domain"), p.get("workerId")) for p in data] == [
        ("greetings", None, None), ("greetings", "blue", "host-b"), ("greetings", None, "host-a")]
    assert all(before <= p["lastPollTime"] <= after for p in data)
    assert [p["lastPollTime"] for p in data] == sorted((p["lastPollTime"] for p in data), reverse=True)
    assert "domain" not in data[0] and "workerId" not in data[0]  # absent, as Conductor leaves nulls out
    assert _poll_data(api, "shout") == []


def test_a_second_poll_by_the_same_worker_updates_its_record(api: Api) -> None:
    _setup(api)
    worker = _worker(api, "greetings")
    api.client.get("/api/tasks/poll/batch/greetings?workerid=host-a&timeout=0", headers=worker)
    first = _poll_data(api, "greetings")[0]["lastPollTime"]
    api.client.get("/api/tasks/poll/batch/greetings?workerid=host-a&timeout=0", headers=worker)
    data = _poll_data(api, "greetings")
    assert len(data) == 1
    assert data[0]["lastPollTime"] >= first


def test_a_refused_poll_is_not_recorded_and_strangers_may_not_read_poll_data(api: Api) -> None:
    _setup(api)
    _, stranger = api.new_app("stranger", "WORKER")
    refused = api.client.get("/api/tasks/poll/batch/greetings?workerid=intruder", headers=stranger)
    assert refused.status_code == 403
    assert _poll_data(api, "greetings") == []
    denied = api.client.get("/api/tasks/queue/polldata", params={"taskType": "greetings"}, headers=stranger)
    assert denied.status_code == 403
    assert denied.json()["message"] == "You don't have permissions to read task definition: greetings"
    worker = _worker(api, "greetings")  # EXECUTE on the task: may see who else polls it
    assert _poll_data(api, "greetings", worker) == []


def test_poll_data_needs_a_task_type(api: Api) -> None:
    response = api.client.get("/api/tasks/queue/polldata", headers=api.admin)
    assert response.status_code == 400
    assert "taskType" in response.json()["message"]


def test_all_poll_data_has_queue_sizes_and_poll_records_with_the_documented_filters(api: Api) -> None:
    _setup(api)
    worker = _worker(api, "greetings", "shout")
    for _ in range(3):
        assert api.client.post("/api/workflow", json={"name": "greet"}, headers=api.admin).status_code == 200
    api.client.get("/api/tasks/poll/batch/shout?workerid=host-a&timeout=0", headers=worker)
    api.client.get("/api/tasks/poll/batch/shout?workerid=host-b&timeout=0", headers=worker)
    api.client.get("/api/tasks/poll/batch/greetings?workerid=host-a&domain=blue&timeout=0", headers=worker)

    def everything(**filters: str) -> Any:
        response = api.client.get("/api/tasks/queue/polldata/all", params=filters, headers=api.admin)
        assert response.status_code == 200, response.text
        return response.json()

    full = everything()
    assert full["queueData"] == {"greetings": {"size": 3}, "blue:greetings": {"size": 0, "pollerCount": 1},
                                 "shout": {"size": 0, "pollerCount": 2}}
    assert sorted((p["queueName"], p.get("domain"), p["workerId"]) for p in full["pollData"]) == [
        ("greetings", "blue", "host-a"), ("shout", None, "host-a"), ("shout", None, "host-b")]
    assert set(everything(workerSize="1", workerOpt="GT")["queueData"]) == {"shout"}
    assert set(everything(queueSize="2", queueOpt="GT")["queueData"]) == {"greetings"}
    filtered = everything(lastPollTimeSize="1", lastPollTimeOpt="LT")
    assert set(filtered["queueData"]) == {"greetings"}
    assert filtered["pollData"] == []
    bad = api.client.get("/api/tasks/queue/polldata/all", params={"queueSize": "2"}, headers=api.admin)
    assert bad.status_code == 400


def test_the_book_keeps_a_bounded_number_of_records_dropping_the_least_recent() -> None:
    book = PollDataBook(max_records=3)
    for i in range(5):
        book.record("t", None, f"w{i}", 1000 + i)
    book.record("t", None, "w2", 2000)  # polled again: now the most recent
    book.record("t", None, "w5", 2500)
    assert [p["workerId"] for p in book.for_task("t")] == ["w5", "w2", "w4"]
