"""The real CLI against a hostile or broken server of the test's own: it ends, on time, with one line.

Each test points ``provision`` at a listener on loopback (tests/hostile.py) with a throwaway key,
so the key reaching that server is expected; what is checked is that the command ends soon after
``--timeout`` with exit 8 and says how long it waited, that a huge answer is not read into memory,
that a deeply nested answer is a one-line error, and that a TLS failure is not retried.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.cli import output, provision
from tests.hostile import (
    Hostile,
    answer,
    drip_body,
    drip_head,
    endless_body,
    hang,
    routes,
    run_measured,
    self_signed_certificate,
    server_tls_context,
    token_ok,
)

THROWAWAY = {"CONDUCTOR_AUTH_KEY": "throwaway-key", "CONDUCTOR_AUTH_SECRET": "throwaway-secret-0123456789"}
# Generous for a loaded machine: the CLI starts in ~0.5 s idle, several seconds when 7 test runs share 2 cores.
START_SLACK = 12.0


def env_for(url: str, **extra: str) -> dict[str, str]:
    return {"CONDUCTOR_SERVER_URL": url, **THROWAWAY, **extra}


def waited_seconds(text: str) -> float:
    """The number of seconds the error message says the command waited."""
    match = re.search(r"gave up after (\d+(?:\.\d+)?)s", text)
    assert match, text
    return float(match.group(1))


def assert_one_error(stderr: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert [line.split(":")[0] for line in lines] == ["error", "hint"], stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("handler", [drip_body(0.4), drip_head(0.4), hang()], ids=["drip-body", "drip-head", "hang"])
def test_a_dripping_or_silent_server_ends_the_command_soon_after_the_timeout(hostile: Hostile, handler: object) -> None:
    server = hostile.server(handler)  # type: ignore[arg-type]
    started = time.monotonic()
    result = provision(["apps", "list"], env=env_for(server.url, ORKES_PROVISION_TIMEOUT="3"), timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 8, output(result)
    assert_one_error(result.stderr)
    said = waited_seconds(result.stderr)
    assert 3.0 <= said < 3.0 + 2.0, result.stderr  # the deadline, give or take one poll of the socket
    assert elapsed < 3.0 + START_SLACK, f"took {elapsed:.1f}s with --timeout 3"
    assert "--timeout" in result.stderr  # the hint names the knob


def test_the_timeout_flag_bounds_every_retry_and_wait(hostile: Hostile) -> None:
    # 503 with Retry-After 1 is retried; the deadline stops the retries, and the message says so.
    server = hostile.server(routes({"POST /api/token": token_ok()},
                                   default=answer(503, {"message": "busy"}, {"Retry-After": "1"})))
    started = time.monotonic()
    result = provision(["--timeout", "2.5", "apps", "list", "--json"], env=env_for(server.url), timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 8, output(result)
    error = json.loads(result.stdout)  # under --json the error is the outcome, on stdout
    assert error["exitCode"] == 8
    assert "2.5" in error["hint"] or "2.5" in error["message"], error
    assert elapsed < 2.5 + START_SLACK
    assert len([r for r in server.requests if r.path == "/api/applications"]) >= 2  # it did retry meanwhile


def test_the_timeout_comes_from_the_environment_and_a_bad_value_is_one_line(hostile: Hostile) -> None:
    server = hostile.server(hang())
    result = provision(["apps", "list"], env=env_for(server.url, ORKES_PROVISION_TIMEOUT="soon"))
    assert result.returncode == 3, output(result)
    assert_one_error(result.stderr)
    assert "ORKES_PROVISION_TIMEOUT" in result.stderr
    result = provision(["--timeout", "0", "apps", "list"], env=env_for(server.url))
    assert result.returncode == 2, output(result)
    assert server.connections == 0


def test_a_huge_answer_is_refused_without_reading_it_into_memory(hostile: Hostile) -> None:
    size = 256 * 1024 * 1024
    server = hostile.server(routes({"POST /api/token": token_ok(), "GET /api/applications": endless_body(size)}))
    measured = run_measured(["apps", "list"], env=env_for(server.url))
    assert measured.returncode == 8, measured.stderr
    assert_one_error(measured.stderr)
    assert "more than 8 MB" in measured.stderr, measured.stderr
    assert server.sent < 64 * 1024 * 1024, f"the client read {server.sent} bytes of a {size}-byte answer"
    assert measured.peak_rss_mib < 150, f"peak RSS {measured.peak_rss_mib:.0f} MiB"


def test_an_answer_announcing_a_huge_length_is_refused_before_reading(hostile: Hostile) -> None:
    server = hostile.server(routes({"POST /api/token": token_ok(),
                                    "GET /api/applications": endless_body(1024 ** 3, length=True)}))
    result = provision(["apps", "list"], env=env_for(server.url))
    assert result.returncode == 8, output(result)
    assert "more than 8 MB" in result.stderr
    assert server.sent < 64 * 1024 * 1024


@pytest.mark.parametrize(("where", "handler"), [
    ("token", routes({"POST /api/token": answer(200, "[" * 200_000)})),
    ("answer", routes({"POST /api/token": token_ok(), "GET /api/applications": answer(200, "[" * 200_000)})),
    ("error body", routes({"POST /api/token": token_ok(), "GET /api/applications": answer(500, "[" * 200_000)})),
    ("401 body", routes({"POST /api/token": token_ok(), "GET /api/applications": answer(401, "[" * 200_000)})),
    ("token 401 body", routes({"POST /api/token": answer(401, "{\"a\":" * 100_000)})),
])
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_a_deeply_nested_answer_is_a_one_line_error(hostile: Hostile, where: str, handler: object,
                                                    as_json: bool) -> None:
    server = hostile.server(handler)  # type: ignore[arg-type]
    args = ["apps", "list"] + (["--json"] if as_json else [])
    result = provision(args, env=env_for(server.url, ORKES_PROVISION_TIMEOUT="5"))
    assert result.returncode in (3, 4, 8, 13), output(result)
    assert "RecursionError" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    if as_json:
        error = json.loads(result.stdout)  # under --json the error is the outcome, on stdout
        assert error["exitCode"] == result.returncode
    else:
        assert_one_error(result.stderr)


def test_a_tls_verification_failure_is_not_retried_and_names_the_ca_bundle(hostile: Hostile, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server = hostile.server(routes({"POST /api/token": answer(401, {"message": "no"})}),
                            tls=server_tls_context(cert, key))
    result = provision(["apps", "list"], env=env_for(server.url))
    assert result.returncode == 8, output(result)
    assert_one_error(result.stderr)
    assert server.connections == 1, f"{server.connections} TLS handshakes: a verification failure was retried"
    hint = result.stderr.splitlines()[-1]
    assert "SSL_CERT_FILE" in hint and "127.0.0.1" in result.stderr, result.stderr
    assert "retry later" not in result.stderr
    assert server.received == b""  # nothing crossed: the key and secret never left

    # With the CA bundle the user was pointed at, the same server is trusted (and answers 401 here).
    result = provision(["apps", "list"], env=env_for(server.url, SSL_CERT_FILE=str(cert)))
    assert result.returncode == 4, output(result)
    assert server.requests[-1].path == "/api/token"


def _gzip(data_chunks: int, chunk: bytes) -> bytes:
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return b"".join(packer.compress(chunk) for _ in range(data_chunks)) + packer.flush()


def test_a_compressed_bomb_is_refused_by_its_decompressed_size(hostile: Hostile) -> None:
    bomb = _gzip(256, b"[" * (1024 * 1024))  # 256 MB of '[' in a few hundred kB
    assert len(bomb) < 2 * 1024 * 1024
    server = hostile.server(routes({"POST /api/token": token_ok(),
                                    "GET /api/applications": answer(200, bomb, {"Content-Encoding": "gzip"})}))
    measured = run_measured(["apps", "list"], env=env_for(server.url))
    assert measured.returncode == 8, measured.stderr
    assert "more than 8 MB" in measured.stderr
    assert measured.peak_rss_mib < 150, f"peak RSS {measured.peak_rss_mib:.0f} MiB"


def test_an_ordinary_compressed_answer_still_works(hostile: Hostile) -> None:
    body = _gzip(1, json.dumps([{"id": "a1", "name": "zipped-app", "tags": []}]).encode())
    server = hostile.server(routes({"POST /api/token": token_ok(),
                                    "GET /api/applications": answer(200, body, {"Content-Encoding": "gzip"})}))
    result = provision(["apps", "list", "--json"], env=env_for(server.url))
    assert result.returncode == 0, output(result)
    assert json.loads(result.stdout)[0]["name"] == "zipped-app"
    assert server.requests[-1].headers["accept-encoding"] == "gzip, deflate"


def test_an_encoding_that_was_not_asked_for_is_a_one_line_error(hostile: Hostile) -> None:
    server = hostile.server(routes({"POST /api/token": token_ok(),
                                    "GET /api/applications": answer(200, b"\x00\x01", {"Content-Encoding": "br"})}))
    result = provision(["apps", "list"], env=env_for(server.url))
    assert result.returncode == 13, output(result)
    assert_one_error(result.stderr)
    assert "'br'" in result.stderr
