"""Client CPU per request: ``OrkesClient``'s own request path against ``httpx.Client`` on the same transport.

    .venv/bin/python benchmarks/client_transport.py [--requests 2000] [--rounds 5] [--json]

``OrkesClient`` builds each ``httpx.Request`` itself and hands it to its transport
(``orkes.transport.OrkesTransport``), without ``httpx.Client``. The question (issue 21): what
would ``httpx.Client(transport=...)`` cost instead? Three ways of sending the same authenticated
``GET /api/applications`` to one sandbox on loopback (started here in its own process, so its CPU is
not counted), each reading the whole answer and decoding its JSON:

- ``orkes_client``: ``OrkesClient.list_applications()``, the whole call as the tool makes it
  (deadline scope, retry loop, token auth flow, pydantic models);
- ``raw_transport``: the request path ``OrkesClient`` uses (``httpx.Request`` -> auth flow ->
  ``transport.handle_request``), without its models;
- ``httpx_client``: ``httpx.Client(transport=OrkesTransport, auth=the same token auth)``, ``client.get``.

The figure is this process's CPU time (user + system, ``time.process_time``) per request, the
median of ``--rounds`` rounds of ``--requests`` requests per way, the ways interleaved round by
round. The loop is bounded; the sandbox is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.orkes.transport import ACCEPT_ENCODING, server_transport
from orkes_provision.sandbox.harness import SandboxProcess


def ways(client: OrkesClient, credentials: Credentials) -> tuple[dict[str, Callable[[], Any]], httpx.Client]:
    auth = client._auth  # the same token flow for all three: one token, minted once
    assert auth is not None
    url = httpx.URL(credentials.server + "/applications")
    headers = httpx.Headers({"Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING})
    transport = server_transport(credentials.server)

    def raw_transport() -> Any:
        flow = auth.sync_auth_flow(httpx.Request("GET", url, headers=headers))
        request = next(flow)
        response = transport.handle_request(request)
        response.read()
        return response.json()

    http = httpx.Client(transport=server_transport(credentials.server), auth=auth, headers=headers,
                        follow_redirects=False, trust_env=False)

    def httpx_client() -> Any:
        return http.get(url).json()

    return {"orkes_client": client.list_applications, "raw_transport": raw_transport,
            "httpx_client": httpx_client}, http


def cpu_per_request(call: Callable[[], Any], requests: int) -> float:
    started = time.process_time()
    for _ in range(requests):
        call()
    return (time.process_time() - started) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with SandboxProcess() as sandbox:
        credentials = Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret)
        with OrkesClient(credentials) as client:
            calls, http = ways(client, credentials)
            with http:
                for call in calls.values():  # warm up: token, connections, caches; not counted
                    cpu_per_request(call, 50)
                samples: dict[str, list[float]] = {name: [] for name in calls}
                for _ in range(args.rounds):
                    for name, call in calls.items():
                        samples[name].append(cpu_per_request(call, args.requests))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["raw_transport"]
    result = {name: {"cpuMicrosecondsPerRequest": round(m * 1e6, 1), "vsRawTransport": round(m / base, 2),
                     "rounds": [round(v * 1e6, 1) for v in samples[name]]} for name, m in medians.items()}
    if args.json:
        print(json.dumps({"requests": args.requests, "rounds": args.rounds, "results": result}, indent=2))
        return
    print(f"client CPU per request, median of {args.rounds} rounds of {args.requests} (GET /api/applications)")
    for name, row in result.items():
        print(f"  {name:14s} {row['cpuMicrosecondsPerRequest']:8.1f} us  {row['vsRawTransport']:4.2f} x")


if __name__ == "__main__":
    main()
