"""The agent as a library against the sandbox: local credentials, forwarding, and the tasks it hands back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import httpx
import pytest

from orkes_provision.agent.agent import Agent
from orkes_provision.agent.instances import LocalCredential
from tests.agent.conftest import APP, AgentLab
from tests.workers.launch_helpers import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def agent(lab: AgentLab, monkeypatch: pytest.MonkeyPatch) -> Iterator[Agent]:
    monkeypatch.setenv("ORKES_PROVISION_STATE_DIR", str(lab.tmp / "state"))
    running = Agent(lab.make_app(), app=APP).start()
    yield running
    running.close()


def _client(agent: Agent, credential: LocalCredential) -> httpx.Client:
    token = httpx.post(agent.url + "/token", json={"keyId": credential.key_id,
                                                   "keySecret": credential.secret.get_secret_value()},
                       trust_env=False).json()["token"]
    return httpx.Client(base_url=agent.url + "/", headers={"X-Authorization": token}, trust_env=False)


def test_a_local_key_is_worthless_at_the_server_and_a_wrong_one_at_the_agent(lab: AgentLab, agent: Agent) -> None:
    credential = agent.register("w1")
    body = {"keyId": credential.key_id, "keySecret": credential.secret.get_secret_value()}
    assert httpx.post(lab.sandbox.url + "/token", json=body, trust_env=False).status_code == 401
    wrong = httpx.post(agent.url + "/token", json={**body, "keySecret": "guess"}, trust_env=False)
    assert wrong.status_code == 401
    stranger = httpx.get(agent.url + "/metadata/taskdefs", headers={"X-Authorization": "made-up"}, trust_env=False)
    assert stranger.status_code == 401 and stranger.json()["error"] == "INVALID_TOKEN"
    with _client(agent, credential) as worker:
        assert worker.get("tasks/poll/greetings").status_code == 204
    agent.release("w1")
    assert httpx.post(agent.url + "/token", json=body, trust_env=False).status_code == 401


def test_a_released_instance_s_polled_task_goes_back_to_the_queue_and_the_next_poll_gets_it(
        lab: AgentLab, agent: Agent) -> None:
    with lab.admin() as admin:
        workflow_id = admin.start_workflow("greetings", {"name": "held"})
    with _client(agent, agent.register("dies")) as first:
        polled = first.get("tasks/poll/greetings", params={"workerid": "dies"}).json()
    assert polled["workflowInstanceId"] == workflow_id

    assert agent.release("dies") == [polled["taskId"]]

    with lab.admin() as admin:
        assert admin.get_task(polled["taskId"])["status"] == "SCHEDULED"
    with _client(agent, agent.register("next")) as second:
        again = second.get("tasks/poll/greetings").json()
        assert again["taskId"] == polled["taskId"]
        done = second.post("tasks", json={"workflowInstanceId": workflow_id, "taskId": again["taskId"],
                                          "status": "COMPLETED", "outputData": {"greeting": "Hello, held"}})
        assert done.status_code == 200
    assert agent.release("next") == []  # finished: nothing held
    assert lab.wait_workflow(workflow_id)["status"] == "COMPLETED"


def test_with_the_server_down_workers_get_503_with_retry_after_and_health_says_not_ready(
        lab: AgentLab, agent: Agent) -> None:
    credential = agent.register("w")
    with _client(agent, credential) as worker:
        lab.sandbox.stop()
        answer = worker.get("tasks/poll/greetings")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "2"


def _crash_with_system_exit(loop: asyncio.AbstractEventLoop) -> None:
    def fail() -> None:
        raise SystemExit(3)  # what asyncio lets out of run_forever, as a library's sys.exit() would
    loop.call_soon_threadsafe(fail)


def _stop_from_outside(loop: asyncio.AbstractEventLoop) -> None:
    loop.call_soon_threadsafe(loop.stop)


@pytest.mark.parametrize("kill", [_crash_with_system_exit, _stop_from_outside], ids=["SystemExit", "loop.stop"])
def test_an_agent_whose_event_loop_dies_serves_again_on_the_same_port_with_what_it_held(
        lab: AgentLab, agent: Agent, kill: Callable[[asyncio.AbstractEventLoop], None]) -> None:
    with lab.admin() as admin:
        workflow_id = admin.start_workflow("greetings", {"name": "held"})
    credential = agent.register("survivor")
    url, dead = agent.url, agent._loop
    assert dead is not None
    with _client(agent, credential) as worker:
        polled = worker.get("tasks/poll/greetings", params={"workerid": "survivor"}).json()
        assert polled["workflowInstanceId"] == workflow_id

        kill(dead)
        wait_for(lambda: agent._loop is not dead and agent._serving.is_set(), timeout=60,
                 what="the agent serving from a new event loop")

        assert agent.url == url  # the same port: the worker's CONDUCTOR_SERVER_URL still points at it
        # The same local token still works (no new token exchange): the worker only saw a dropped connection.
        again = worker.get("tasks/poll/greetings")
        assert again.status_code == 204
    metrics = httpx.get(url.removesuffix("/api") + "/metrics", trust_env=False).text
    assert "orkes_agent_loop_restarts_total 1" in metrics
    assert 'orkes_agent_tasks_held{instance="survivor"} 1' in metrics
    # The task it held before the crash is still known, and goes back to the queue when the worker stops.
    assert agent.release("survivor") == [polled["taskId"]]
    with lab.admin() as admin:
        assert admin.get_task(polled["taskId"])["status"] == "SCHEDULED"
