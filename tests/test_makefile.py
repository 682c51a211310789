"""``make``'s first run says on stderr what it waits for (the pip install) before it starts waiting."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# A stand-in for python3: '-m venv DIR' makes a venv whose pip and python only say they ran.
FAKE_PYTHON = """#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin"
  printf '#!/bin/sh\\necho "pip ran" >&2\\n' > "$3/bin/pip"
  printf '#!/bin/sh\\necho "python ran: $*" >&2\\n' > "$3/bin/python"
  chmod +x "$3/bin/pip" "$3/bin/python"
fi
"""


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_first_make_demo_says_it_is_installing_before_pip_runs_and_later_runs_do_not(tmp_path: Path) -> None:
    fake = tmp_path / "python3"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    venv = tmp_path / "venv"

    def make_demo() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "demo", f"VENV={venv}",
                               f"PYTHON={fake}"], capture_output=True, text=True, timeout=60, check=False)

    first = make_demo()
    assert first.returncode == 0, first.stderr
    lines = first.stderr.splitlines()
    assert lines[0] == (f"Setting up {venv}: installing orkes-provision and its dependencies with pip "
                        "(a minute or two, once)...")
    assert lines[1:3] == ["pip ran", "pip ran"]
    again = make_demo()
    assert again.returncode == 0, again.stderr
    assert "Setting up" not in again.stderr
    assert again.stderr.splitlines() == ["python ran: scripts/demo.py"]
