"""A stand-in worker for the secret-leak suite: says what it received, never the secret itself.

Writes JSON to argv[1]: its pid, its own and its parent's command line (from /proc), the
CONDUCTOR_AUTH_KEY and server it got, the SHA-256 of the CONDUCTOR_AUTH_SECRET it got, and the
pids of every process on this machine whose command line contains that secret. Then exits 0.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys


def cmdline(pid: int | str) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def pids_with_in_cmdline(needle: bytes) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if needle in handle.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def main() -> None:
    out = sys.argv[1]
    secret = os.environ.get("CONDUCTOR_AUTH_SECRET", "")
    report = {
        "pid": os.getpid(), "cmdline": cmdline("self"), "parentCmdline": cmdline(os.getppid()),
        "keyId": os.environ.get("CONDUCTOR_AUTH_KEY"), "server": os.environ.get("CONDUCTOR_SERVER_URL"),
        "secretSha256": hashlib.sha256(secret.encode()).hexdigest() if secret else None,
        "cmdlineHits": pids_with_in_cmdline(secret.encode()) if secret else [],
    }
    tmp = out + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(report, handle)
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
