"""Names the user gives are validated once, before any request: no control or line-separator characters.

The sandbox's requests.log counts what reached the server, so "refused before any request" is
checked on the wire, not assumed.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

from orkes_provision.errors import UsageError
from orkes_provision.names import check_name
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision
from tests.sandbox_fixtures import one_sandbox

# Everything str.splitlines() splits on, and other controls.
LINE_BREAKERS = ["\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
OTHER_CONTROLS = ["\x00", "\x1b", "\x07", "\x7f", "\x9b", "\u202e", "\u2066", "\ufeff"]
INJECTION = "evil\u2028LD_PRELOAD=/tmp/evil.so"


def code_point(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def test_every_line_breaking_character_is_covered() -> None:
    # The list above is complete: nothing else makes str.splitlines() split.
    breakers = {chr(c) for c in range(0x110000) if len(f"a{chr(c)}b".splitlines()) > 1}
    assert breakers == set(LINE_BREAKERS)


@pytest.mark.parametrize("ch", LINE_BREAKERS + OTHER_CONTROLS, ids=code_point)
def test_the_validator_names_the_code_point(ch: str) -> None:
    with pytest.raises(UsageError) as caught:
        check_name(f"app{ch}x", "application name")
    assert code_point(ch) in caught.value.message
    assert "application name" in caught.value.message


@pytest.mark.parametrize("name", ["greetings-worker", "payments_v2", "ünïcødé", "名前", "team:payments", "a b"])
def test_ordinary_names_pass(name: str) -> None:
    assert check_name(f"  {name} ", "name") == name


def test_no_other_control_or_format_character_is_accepted() -> None:
    for c in range(0x110000):
        ch = chr(c)
        category = unicodedata.category(ch)
        if category in ("Cc", "Zl", "Zp") or ch in BIDI:
            with pytest.raises(UsageError):
                check_name(f"a{ch}b", "name")


def requests_since(sandbox: SandboxProcess, mark: int) -> list[dict[str, object]]:
    return sandbox.requests()[mark:]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """One sandbox for the module: every test counts its own requests from a mark."""
    yield from one_sandbox(tmp_path_factory.mktemp("names-sandbox"))


@pytest.fixture
def env(sandbox: SandboxProcess) -> dict[str, str]:
    return {"ORKES_PROVISION_SANDBOX_DIR": str(sandbox.data_dir), "ORKES_PROVISION_PROFILE": "sandbox"}


def test_an_injected_env_file_line_never_reaches_the_file_and_no_request_is_sent(
        sandbox: SandboxProcess, env: dict[str, str], tmp_path: Path) -> None:
    store = tmp_path / "worker.env"
    mark = sandbox.mark()
    result = provision(["app", INJECTION, "--worker", "--store", f"env-file:{store}"], env=env)
    assert result.returncode == 2, output(result)
    assert "U+2028" in result.stderr
    assert [line.split(":")[0] for line in result.stderr.splitlines()] == ["error", "hint"]
    assert requests_since(sandbox, mark) == []
    assert not store.exists()


@pytest.mark.parametrize("ch", [*LINE_BREAKERS, "\x1b", "\x7f"], ids=code_point)  # argv cannot hold NUL
def test_provision_app_refuses_before_any_request(sandbox: SandboxProcess, env: dict[str, str], ch: str) -> None:
    mark = sandbox.mark()
    result = provision(["app", f"bad{ch}name", "--worker", "--store", "memory"], env=env)
    assert result.returncode == 2, output(result)
    assert code_point(ch) in result.stderr
    assert requests_since(sandbox, mark) == []


@pytest.mark.parametrize("args", [
    ["app", "ok-app", "--grant", "task\u2028x", "--store", "memory"],
    ["apps", "show", "app\u2028x"],
    ["apps", "delete", "app\u2028x", "--yes"],
    ["keys", "list", "app\u2028x"],
    ["keys", "create", "app\u2028x", "--store", "memory"],
    ["keys", "deactivate", "app\u2028x", "key-id"],
    ["keys", "deactivate", "ok-app", "key\u2028id"],
    ["keys", "rotate", "app\u2028x"],
    ["keys", "rotate", "--all", "--environment", "env\u2028x"],
    ["keys", "prune", "app\u2028x"],
    ["grant", "app\u2028x", "task"],
    ["grant", "ok-app", "task\u2028x"],
    ["grant", "ok-app", "--workflow", "flow\u2028x"],
    ["grant", "ok-app", "--tag", "team:pay\u2028x"],
    ["grant", "ok-app", "--domain", "dom\u2028x"],
    ["revoke", "ok-app", "task\u2028x"],
    ["doctor", "app\u2028x", "--store", "memory"],
    ["doctor", "ok-app", "--task", "task\u2028x", "--store", "memory"],
    ["run", "--app", "app\u2028x", "--store", "memory", "--", "true"],
    ["run", "--app", "ok-app", "--task", "task\u2028x", "--store", "memory", "--", "true"],
    ["worker", "run", "worker\u2028x"],
    ["deploy", "kubernetes", "worker\u2028x", "--image", "x"],
    ["init", "--app", "app\u2028x", "somewhere"],
], ids=lambda args: " ".join(a for a in args if "\u2028" not in a))
def test_every_name_argument_is_checked_before_any_request(sandbox: SandboxProcess, env: dict[str, str],
                                                           tmp_path: Path, args: list[str]) -> None:
    mark = sandbox.mark()
    result = provision(args, env=env, cwd=tmp_path)
    assert result.returncode == 2, output(result)
    assert "U+2028" in result.stderr, result.stderr
    assert requests_since(sandbox, mark) == []
    assert not (tmp_path / "somewhere").exists()


def test_names_in_an_environment_file_are_checked_too(sandbox: SandboxProcess, env: dict[str, str],
                                                      tmp_path: Path) -> None:
    path = tmp_path / "env.toml"
    path.write_text('name = "staging"\n[[applications]]\nname = "evil\\u2028LD_PRELOAD=/tmp/x.so"\n'
                    'store = "env-file:w.env"\n')
    mark = sandbox.mark()
    result = provision(["plan", "-f", str(path)], env=env)
    assert result.returncode == 3, output(result)
    assert "U+2028" in result.stderr
    assert requests_since(sandbox, mark) == []


def test_names_in_a_project_file_are_checked_too(sandbox: SandboxProcess, env: dict[str, str],
                                                 tmp_path: Path) -> None:
    (tmp_path / "orkes-provision.toml").write_text(
        '[application]\nname = "worker-app"\ngrants = ["greet\\u0085LD_PRELOAD=/tmp/x.so"]\n')
    mark = sandbox.mark()
    result = provision(["app", "--worker", "--store", "memory"], env=env, cwd=tmp_path)
    assert result.returncode == 3, output(result)
    assert "U+0085" in result.stderr
    assert requests_since(sandbox, mark) == []
