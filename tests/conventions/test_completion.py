"""Completion: ``provision completion bash|zsh|fish`` prints a script that completes for real."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli import PROVISION, provision

REPO = Path(__file__).resolve().parents[2]
MARKERS = {"bash": "complete -o nosort -F _provision_completion provision",
           "zsh": "compdef _provision_completion provision",
           "fish": "complete --no-files --command provision"}


@pytest.mark.parametrize("shell", sorted(MARKERS))
def test_completion_prints_the_script_for_each_shell(shell: str) -> None:
    result = provision(["completion", shell])
    assert result.returncode == 0, result.stderr
    assert "_PROVISION_COMPLETE" in result.stdout
    assert MARKERS[shell] in result.stdout
    assert result.stderr == ""


def test_an_unknown_shell_is_a_usage_error() -> None:
    result = provision(["completion", "tcsh"])
    assert result.returncode == 2
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish'" in result.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash here")
@pytest.mark.parametrize(("words", "expected"), [
    ("provision ke", {"keys"}),
    ("provision keys ro", {"rotate"}),
    ("provision keys rotate x --sw", {"--switch-wait"}),
    ("provision completion z", {"zsh"}),
])
def test_the_bash_script_completes_commands_subcommands_and_options(words: str, expected: set[str]) -> None:
    script = provision(["completion", "bash"]).stdout
    words_array = " ".join(f"'{w}'" for w in words.split())
    cword = len(words.split()) - 1
    program = f'{script}\nCOMP_WORDS=({words_array}); COMP_CWORD={cword}; _provision_completion provision; ' \
              'printf "%s\\n" "${COMPREPLY[@]}"'
    env = {**os.environ, "PATH": f"{Path(PROVISION).parent}:{os.environ.get('PATH', '')}"}
    result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == expected


def test_the_readme_documents_completion() -> None:
    readme = (REPO / "README.md").read_text()
    for shell in MARKERS:
        assert f"provision completion {shell}" in readme
