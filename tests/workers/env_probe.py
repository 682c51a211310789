"""A stand-in worker for 'provision run' tests: reports what it received, then waits to be released.

Writes JSON to argv[1]: its pid, the CONDUCTOR_* variables it got, its cwd and its argv. Then
waits (at most 30 s) until argv[1] + ".release" exists, and exits with PROBE_EXIT (default 0).
"""

from __future__ import annotations

import json
import os
import sys
import time

out = sys.argv[1]
names = ("CONDUCTOR_SERVER_URL", "CONDUCTOR_AUTH_KEY", "CONDUCTOR_AUTH_SECRET", "CONDUCTOR_SERVER_AUTH_KEY",
         "CONDUCTOR_AUTH_TOKEN", "ORKES_PROVISION_REPLICA", "PROBE_EXTRA")
report = {"pid": os.getpid(), "cwd": os.getcwd(), "argv": sys.argv, "env": {n: os.environ.get(n) for n in names}}
tmp = out + ".tmp"
with open(tmp, "w") as handle:
    json.dump(report, handle)
os.replace(tmp, out)
deadline = time.monotonic() + 30
while not os.path.exists(out + ".release") and time.monotonic() < deadline:
    time.sleep(0.05)
sys.exit(int(os.environ.get("PROBE_EXIT", "0")))
