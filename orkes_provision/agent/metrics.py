"""The agent's counters and their Prometheus text form (``GET /metrics``); no secret, no token, no key."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)


@dataclass
class Metrics:
    requests: Counter[int] = field(default_factory=Counter)  # by status answered to workers
    polls: int = 0
    tasks_polled: int = 0
    tasks_handed_back: int = 0
    upstream_auth_failures: Counter[int] = field(default_factory=Counter)  # 401/403 from the server
    upstream_errors: int = 0  # no answer from the server
    key_switches: int = 0
    loop_restarts: int = 0  # the event loop ended without close and was started again on the same port
    latency_count: int = 0
    latency_sum: float = 0.0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe_upstream(self, seconds: float, status: int | None) -> None:
        with self.lock:
            self.latency_count += 1
            self.latency_sum += seconds
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    self.latency_buckets[i] += 1
            if status in (401, 403):
                self.upstream_auth_failures[status] += 1
            elif status is None:
                self.upstream_errors += 1

    def render(self, held: dict[str, int], ready: bool) -> str:
        lines = ["# TYPE orkes_agent_ready gauge", f"orkes_agent_ready {int(ready)}",
                 "# TYPE orkes_agent_requests_total counter"]
        with self.lock:
            lines += [f'orkes_agent_requests_total{{status="{s}"}} {n}' for s, n in sorted(self.requests.items())]
            lines += ["# TYPE orkes_agent_polls_total counter", f"orkes_agent_polls_total {self.polls}",
                      "# TYPE orkes_agent_tasks_polled_total counter",
                      f"orkes_agent_tasks_polled_total {self.tasks_polled}",
                      "# TYPE orkes_agent_tasks_handed_back_total counter",
                      f"orkes_agent_tasks_handed_back_total {self.tasks_handed_back}",
                      "# TYPE orkes_agent_upstream_auth_failures_total counter"]
            lines += [f'orkes_agent_upstream_auth_failures_total{{status="{s}"}} {self.upstream_auth_failures[s]}'
                      for s in (401, 403)]
            lines += ["# TYPE orkes_agent_upstream_errors_total counter",
                      f"orkes_agent_upstream_errors_total {self.upstream_errors}",
                      "# TYPE orkes_agent_key_switches_total counter",
                      f"orkes_agent_key_switches_total {self.key_switches}",
                      "# TYPE orkes_agent_loop_restarts_total counter",
                      f"orkes_agent_loop_restarts_total {self.loop_restarts}",
                      "# TYPE orkes_agent_upstream_latency_seconds histogram"]
            lines += [f'orkes_agent_upstream_latency_seconds_bucket{{le="{b}"}} {n}'
                      for b, n in zip(LATENCY_BUCKETS, self.latency_buckets, strict=True)]
            lines += [f'orkes_agent_upstream_latency_seconds_bucket{{le="+Inf"}} {self.latency_count}',
                      f"orkes_agent_upstream_latency_seconds_sum {self.latency_sum:.6f}",
                      f"orkes_agent_upstream_latency_seconds_count {self.latency_count}"]
        lines.append("# TYPE orkes_agent_tasks_held gauge")
        lines += [f'orkes_agent_tasks_held{{instance="{_label(name)}"}} {n}' for name, n in sorted(held.items())]
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
