"""Invisible characters cannot make two things look like one (issue 20).

A zero-width space made ``w1`` and ``w1<U+200B>`` two applications that print alike; a NUL in an
env-file value passed ``doctor`` and killed ``run`` with a traceback. Names refuse Unicode's
default-ignorable code points, ``apps list`` warns about names that look alike, and the env-file
reader refuses what its writer refuses, in one line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orkes_provision.orkes.client import OrkesClient
from orkes_provision.orkes.models import Credentials
from orkes_provision.sandbox.harness import SandboxProcess
from tests.cli import output, provision


@pytest.mark.parametrize("ch", ["\u200b", "\u200c", "\u200d", "\u00ad", "\u2060", "\ufe0f", "\u3164", "\U000e0041",
                                "\u180e", "\u034f"])
def test_a_default_ignorable_code_point_in_a_name_is_refused_before_any_request(sandbox: SandboxProcess,
                                                                               ch: str) -> None:
    mark = sandbox.mark()
    result = provision(["app", f"w1{ch}", "--worker"], env=sandbox.admin_env)
    assert result.returncode == 2, output(result)
    assert f"U+{ord(ch):04X}" in result.stderr and "invisible" in result.stderr, result.stderr
    assert sandbox.requests()[mark:] == []


def test_names_that_look_alike_share_a_skeleton() -> None:
    from orkes_provision.names import confusable_groups, forbidden_character, skeleton

    assert skeleton("w1\u200b") == skeleton("\uff571") == "w1"
    assert confusable_groups(["w1", "W1", "x", "\uff571"]) == [["w1", "\uff571"]]
    assert forbidden_character("caf\u00e9") is None


def test_apps_list_warns_about_two_applications_that_look_alike(sandbox: SandboxProcess) -> None:
    with OrkesClient(Credentials(server=sandbox.url, key_id=sandbox.admin_key_id,
                                 secret=sandbox.admin_secret)) as client:
        client.create_application("lookalike")
        client.create_application("\uff4cookalike")  # fullwidth l
    result = provision(["apps", "list"], env=sandbox.admin_env)
    assert result.returncode == 0, output(result)
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warning == ["warning: applications 'lookalike' and '\\uff4cookalike' look alike (the same letters once "
                       "normalised, invisible characters dropped); rename one, or pick by id (--app-id)"], result.stderr


@pytest.mark.parametrize("bad", ["\x00", "\x1b", "\x7f", "\t"])
def test_an_env_file_value_with_a_control_character_is_refused_by_doctor_and_run_in_one_line(
        sandbox: SandboxProcess, tmp_path: Path, bad: str) -> None:
    env_file = tmp_path / "w.env"
    made = provision(["app", "ctl-app", "--worker", "--store", f"env-file:{env_file}"], env=sandbox.admin_env)
    assert made.returncode == 0, output(made)
    text = env_file.read_text()
    env_file.write_text(_poison(text, bad))
    for args in (["doctor", "ctl-app", "--store", f"env-file:{env_file}"],
                 ["run", "--app", "ctl-app", "--store", f"env-file:{env_file}", "--", "true"]):
        result = provision(args, env=sandbox.admin_env)
        assert result.returncode == 10, output(result)
        error, hint = result.stderr.splitlines()[-2:]
        assert error.startswith(f"error: cannot use {env_file}: CONDUCTOR_AUTH_SECRET contains"), error
        assert "deliver the key again" in hint, hint
        assert "Traceback" not in result.stderr


def _poison(text: str, bad: str) -> str:
    lines = text.splitlines()
    out = [f"CONDUCTOR_AUTH_SECRET='{line.partition('=')[2]}{bad}x'" if line.startswith("CONDUCTOR_AUTH_SECRET=")
           else line for line in lines]
    return "\n".join(out) + "\n"
