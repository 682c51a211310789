"""``python -m orkes_provision.sandbox``: the sandbox without the CLI (used by the test harness).

Same options as ``provision sandbox``; prints one line with the API URL when ready.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orkes_provision.errors import ProvisionError
from orkes_provision.sandbox import default_data_dir
from orkes_provision.sandbox.config import DEFAULT_MAX_KEYS, DEFAULT_TOKEN_TTL_SECONDS, SandboxConfig


def parse_args(argv: list[str] | None = None) -> SandboxConfig:
    parser = argparse.ArgumentParser(prog="python -m orkes_provision.sandbox",
                                     description="Run the local Orkes-compatible sandbox server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--token-ttl", type=int, default=DEFAULT_TOKEN_TTL_SECONDS, metavar="SECONDS")
    parser.add_argument("--max-keys", type=int, default=DEFAULT_MAX_KEYS, metavar="N")
    parser.add_argument("--allow-worker-search", action="store_true")
    args = parser.parse_args(argv)
    if args.port < 0 or args.port > 65535 or args.latency_ms < 0 or args.token_ttl < 1 or args.max_keys < 1:
        parser.error("--port must be 0-65535, --latency-ms >= 0, --token-ttl >= 1 and --max-keys >= 1")
    return SandboxConfig(data_dir=(args.data_dir or default_data_dir()).absolute(), host=args.host, port=args.port,
                         latency_ms=args.latency_ms, token_ttl_seconds=args.token_ttl, max_keys=args.max_keys,
                         worker_search=args.allow_worker_search)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    from orkes_provision.sandbox.server import serve

    try:
        serve(config, on_ready=lambda url: print(f"sandbox ready at {url} (data dir {config.data_dir})", flush=True))
    except ProvisionError as err:
        print(f"error: {err.message}\nhint: {err.hint}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
