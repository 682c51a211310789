"""The audit log is hash-chained: ``provision audit verify`` names the first edited, deleted, inserted or
moved record (exit 1), says where a chain starts in a log older than the chain, and concurrent writers
extend one chain. Records are made by the real CLI against the shared sandbox."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orkes_provision import audit
from orkes_provision.audit import GENESIS, audit_path, record_hash
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision


def _make_records(sandbox: SandboxProcess, tmp_path: Path, app: str, env: dict[str, str] | None = None,
                  ) -> list[bytes]:
    env = sandbox.admin_env | (env or {})
    made = provision(["app", app, "--worker", "--grant", f"{app}-task", "--register-tasks", "--store",
                      f"env-file:{tmp_path / 'w.env'}"], env=env, cwd=tmp_path)
    assert made.returncode == 0, output(made)
    for access in ("READ", "UPDATE"):
        granted = provision(["grant", app, f"{app}-task", "--access", access], env=env, cwd=tmp_path)
        assert granted.returncode == 0, output(granted)
    state = Path(env["XDG_STATE_HOME"]) if "XDG_STATE_HOME" in env else None
    lines = (state / "orkes-provision" / "audit.log" if state else audit_path()).read_bytes().splitlines()
    assert len(lines) >= 7
    return lines


@pytest.fixture(scope="module")
def cli_records(rel_sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """A log written by the CLI (an app, its role, key, grant, task, two more grants), made once for the module."""
    root = tmp_path_factory.mktemp("chain")
    return _make_records(rel_sandbox, root, "chain-app", {"XDG_STATE_HOME": str(root / "state"),
                                                          "XDG_CONFIG_HOME": str(root / "config")})


def _verify(tmp_path: Path) -> tuple[int, dict[str, Any], str]:
    result = provision(["audit", "verify", "--json"], cwd=tmp_path)
    return result.returncode, json.loads(result.stdout), result.stderr


def _forged(after: bytes, action: str) -> bytes:
    """A record written as the tool would, chained to ``after``: what a careful forger inserts."""
    entry: dict[str, Any] = dict(json.loads(after)) | {"action": action}
    entry["prev"] = json.loads(after)["hash"]
    entry["hash"] = record_hash(entry)
    return json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()


def _edit(lines: list[bytes]) -> list[bytes]:
    changed = list(lines)
    changed[2] = changed[2].replace(b'"result":"ok"', b'"result":"failed"')
    assert changed[2] != lines[2]
    return changed


TAMPERS: dict[str, tuple[Callable[[list[bytes]], list[bytes]], int, str]] = {
    "edit": (_edit, 3, "edited"),
    "delete": (lambda ls: ls[:2] + ls[3:], 3, "missing"),
    "delete-first": (lambda ls: ls[1:], 1, "missing"),
    "insert-by-hand": (lambda ls: [*ls[:2], b'{"action":"grant","result":"ok"}', *ls[2:]], 3, "no hash chain"),
    "insert-forged": (lambda ls: [*ls[:2], _forged(ls[1], "revoke"), *ls[2:]], 3, "inserted"),
    "swap": (lambda ls: [*ls[:2], ls[3], ls[2], *ls[4:]], 3, "out of order"),
    "move-to-end": (lambda ls: ls[:2] + ls[3:] + [ls[2]], 3, "out of order"),
    "torn": (lambda ls: [*ls[:4], ls[4][:20], *ls[5:]], 5, "not a JSON record"),
}


def test_verify_passes_on_an_untouched_log_and_prints_the_head(cli_records: list[bytes], tmp_path: Path) -> None:
    lines = cli_records
    audit_path().parent.mkdir(parents=True, exist_ok=True)
    audit_path().write_bytes(b"\n".join(lines) + b"\n")
    assert json.loads(lines[0])["prev"] == GENESIS
    code, doc, _ = _verify(tmp_path)
    assert code == 0
    assert doc == {"path": str(audit_path()), "ok": True, "lines": len(lines), "chainStart": 1,
                   "head": json.loads(lines[-1])["hash"], "badLine": None, "problem": None}


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_verify_names_the_first_bad_line(cli_records: list[bytes], tmp_path: Path, tamper: str) -> None:
    change, bad_line, why = TAMPERS[tamper]
    lines = cli_records
    audit_path().parent.mkdir(parents=True, exist_ok=True)
    audit_path().write_bytes(b"\n".join(change(lines)) + b"\n")
    code, doc, stderr = _verify(tmp_path)
    assert code == 1, stderr
    assert (doc["ok"], doc["badLine"]) == (False, bad_line)
    assert why in doc["problem"]
    assert json.loads(stderr)["message"].startswith(f"{audit_path()}:{bad_line}: ")


def test_a_log_older_than_the_chain_says_where_the_chain_starts(rel_sandbox: SandboxProcess, tmp_path: Path) -> None:
    old = [json.dumps({"time": "2026-01-01T00:00:00.000+00:00", "actor": "k", "server": "s", "action": a,
                       "target": "t", "result": "ok"}, sort_keys=True).encode() for a in ("create_app", "grant")]
    audit_path().parent.mkdir(parents=True, exist_ok=True)
    audit_path().write_bytes(b"\n".join(old) + b"\n")
    lines = _make_records(rel_sandbox, tmp_path, "chain-old")
    result = provision(["audit", "verify"], cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert f"chain intact, {len(lines) - 2} record(s) from line 3; lines 1-2 predate the chain" in result.stdout
    audit_path().write_bytes(b"\n".join([old[0], old[1].replace(b"grant", b"revoke"), *lines[2:]]) + b"\n")
    code, doc, _ = _verify(tmp_path)
    assert (code, doc["chainStart"], doc["badLine"]) == (1, 3, 3)
    human = provision(["audit", "verify"], cwd=tmp_path)
    assert human.stderr.startswith(f"error: {audit_path()}:3: ")


def test_export_since_carries_the_chain_fields(rel_sandbox: SandboxProcess, tmp_path: Path) -> None:
    lines = _make_records(rel_sandbox, tmp_path, "chain-export")
    result = provision(["audit", "--json", "--since", "1h"], cwd=tmp_path)
    assert result.returncode == 0, output(result)
    exported = json.loads(result.stdout)
    assert [e["hash"] for e in exported] == [json.loads(line)["hash"] for line in lines]
    later = provision(["audit", "--json", "--since", "2999-01-01T00:00:00+00:00"], cwd=tmp_path)
    assert json.loads(later.stdout) == []


def test_concurrent_writers_extend_one_chain(tmp_path: Path) -> None:
    def write(n: int) -> None:
        for i in range(40):
            audit.record(action="grant", target=f"t{n}-{i}", result="ok", server="s", actor="k")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = audit.verify()
    assert (result.ok, result.lines, result.chain_start) == (True, 320, 1), result.render()


def test_concurrent_processes_extend_one_chain(tmp_path: Path) -> None:
    script = ("from orkes_provision import audit\n"
              "for i in range(60):\n"
              "    audit.record(action='grant', target=f't{i}', result='ok', server='s', actor='k')\n")
    procs = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 4
    result = audit.verify()
    assert (result.ok, result.lines) == (True, 240), result.render()
