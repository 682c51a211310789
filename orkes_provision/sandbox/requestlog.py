"""``requests.log``: one JSON line per request, for tests ("zero writes") and for people.

Fields: ``time`` (UTC ISO 8601), ``method``, ``path`` (never the query string, which could carry
secrets), ``status`` (null when the connection was dropped), ``caller`` (the token's ``sub``, or
null), ``durationMs``, and ``fault`` when the fault plan acted. Never bodies, tokens or secrets.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class RequestLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, *, method: str, path: str, status: int | None, caller: str | None,
               duration_ms: float, fault: str | None = None) -> None:
        record: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "method": method, "path": path, "status": status, "caller": caller,
            "durationMs": round(duration_ms, 1),
        }
        if fault is not None:
            record["fault"] = fault
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        # O_APPEND: each line lands whole even if another process appends too.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
