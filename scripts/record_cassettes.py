#!/usr/bin/env python3
"""Re-record the wire cassettes (``cassettes/*.yaml``) that the test suite replays offline.

Against a real Orkes server (the cassettes then become the checked wire contract)::

    CONDUCTOR_SERVER_URL=https://HOST/api CONDUCTOR_AUTH_KEY=KEY_ID CONDUCTOR_AUTH_SECRET=SECRET \\
        .venv/bin/python scripts/record_cassettes.py

The key must belong to an application with the ADMIN role. Only the portable scenarios run (the
others use the sandbox's fault plan); each creates ``orkes-provision-cassette-*`` applications
and task definitions and deletes them again. Without those variables the script starts a
sandbox and records every scenario against it (that is how the committed cassettes are made).

Secrets are scrubbed before anything is written; afterwards the script reads every file back
for the tokens and secrets this run saw, and fails (exit 1, cassettes kept for inspection but
named in the output) if one is found. Run ``make test`` after recording: the replay tests then
check the client against what was recorded.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pydantic import SecretStr  # noqa: E402

from orkes_provision.orkes.models import Credentials  # noqa: E402
from orkes_provision.orkes.urls import normalize_server_url  # noqa: E402
from tests.orkes.wire.recorder import Recording, record  # noqa: E402
from tests.orkes.wire.recording import CASSETTES  # noqa: E402
from tests.orkes.wire.scenarios import SCENARIOS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=CASSETTES, help=f"where to write (default {CASSETTES})")
    parser.add_argument("--only", action="append", metavar="SCENARIO",
                        help=f"record only these ({', '.join(s.name for s in SCENARIOS)})")
    args = parser.parse_args()
    scenarios = tuple(s for s in SCENARIOS if not args.only or s.name in args.only)
    url, key, secret = (os.environ.get(n, "").strip() for n in
                        ("CONDUCTOR_SERVER_URL", "CONDUCTOR_AUTH_KEY", "CONDUCTOR_AUTH_SECRET"))
    if url or key or secret:
        if not (url and key and secret):
            print("error: set all of CONDUCTOR_SERVER_URL, CONDUCTOR_AUTH_KEY and CONDUCTOR_AUTH_SECRET "
                  "(or none, to record against a sandbox)", file=sys.stderr)
            return 2
        admin = Credentials(server=normalize_server_url(url), key_id=key, secret=SecretStr(secret))
        print(f"recording the portable scenarios against {admin.server} as key {key}", file=sys.stderr)
        return report(record(admin, args.out, against="orkes", scenarios=scenarios))
    from orkes_provision.sandbox.harness import SandboxProcess

    with SandboxProcess() as sandbox:
        admin = Credentials(server=sandbox.url, key_id=sandbox.admin_key_id, secret=sandbox.admin_secret)
        print(f"recording every scenario against a sandbox at {sandbox.url}", file=sys.stderr)
        return report(record(admin, args.out, against="sandbox", scenarios=scenarios))


def report(result: Recording) -> int:
    for path in result.files:
        print(f"wrote {path}")
    for name, error in result.failed.items():
        print(f"scenario {name} FAILED: {error}", file=sys.stderr)
    for leak in result.leaks:
        print(f"LEAK: {leak}", file=sys.stderr)
    print(f"{len(result.files)} cassettes, {len(result.exchanges)} requests; checked the files for "
          f"{result.secrets_checked} secrets and tokens of this run: {len(result.leaks)} found", file=sys.stderr)
    return 1 if result.failed or result.leaks else 0


if __name__ == "__main__":
    sys.exit(main())
