"""The README's tour runs as written (issue 13): the README cannot drift from what works.

The tour is the one fenced ```bash block of README.md whose first line is ``# readme-tour: ...``.
Each other line is a command (one per line), a comment, or, starting with ``#>``, a line the
command before it prints (``...`` stands for anything: ids, ports, paths). The test runs every
command in order, in one bash process, in a fresh environment: PATH = the checkout's .venv/bin and
/usr/bin:/bin, HOME, XDG dirs and TMPDIR in the test's temp dir, no CONDUCTOR_* or ORKES_PROVISION_*
of its own, no D-Bus (so no keyring). The first command must be the README's set-up command
(``make demo``), which the test does not run: it uses the .venv that ``make test`` built.

It checks every ``#>`` line against what its command printed, and, whatever the README shows, that
the workflow completed with ``Hello, Orkes``, that the rotation put a new verified key in the env
file while the supervised worker restarted on it and the old key was retired, that a workflow still
completed after the rotation, that no secret was printed, and that nothing the tour started keeps
running (the detached sandbox's and the workers' pids, and every process carrying the run's marker).
Whatever fails, the sandbox is stopped and every process of the run is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scripts.demo import processes_with_marker

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
VENV_BIN = REPO / ".venv" / "bin"
TOUR_MARKER = "# readme-tour:"
SHOWN = "#> "
TOUR_TIMEOUT = 240  # seconds for the whole tour; about 15 s on an idle machine
MARKER_VAR = "README_TOUR_RUN"  # inherited by every process the tour starts: see leftovers()
STEP = "@@readme-tour step {}@@"
DONE = "@@readme-tour done {} rc={}@@"
END = "@@readme-tour pwd={}@@"


@dataclass
class Step:
    line: int  # in README.md
    command: str
    shown: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    rc: int | None = None

    @property
    def text(self) -> str:
        return "\n".join(self.output)


def tour_steps(readme: str) -> list[Step]:
    blocks = [(m.start(), m.group(1)) for m in re.finditer(r"^```bash\n(.*?)^```$", readme, flags=re.S | re.M)]
    tours = [(at, body) for at, body in blocks if body.startswith(TOUR_MARKER)]
    assert len(tours) == 1, f"README.md needs exactly one ```bash block starting with {TOUR_MARKER!r}"
    at, body = tours[0]
    first_line = readme.count("\n", 0, at) + 2
    steps: list[Step] = []
    for number, line in enumerate(body.splitlines()[1:], start=first_line + 1):
        if line.startswith(SHOWN):
            assert steps, f"README.md:{number}: output shown before any command"
            steps[-1].shown.append(line[len(SHOWN):])
        elif line.strip() and not line.lstrip().startswith("#"):
            assert not line.rstrip().endswith("\\"), f"README.md:{number}: one command per line, please"
            steps.append(Step(number, line))
    return steps


def setup_command(readme: str) -> str:
    block = readme.split("## Set up on a fresh machine", 1)[1].split("```", 2)[1]
    return next(line.split("#")[0].strip() for line in block.splitlines() if line.strip())


def bare(command: str) -> str:
    """The command without its trailing comment (the tour's commands quote no '#')."""
    return command.split(" #", 1)[0].strip()


def find_shown(shown: list[str], output: list[str]) -> str | None:
    """The first shown line not found, in order, as a whole line of ``output``; None when all are."""
    lines = iter(line.rstrip() for line in output)
    for expected in shown:
        pattern = re.compile(".*?".join(re.escape(part) for part in expected.split("...")))
        if not any(pattern.fullmatch(line) for line in lines):
            return expected
    return None


def tour_script(steps: list[Step]) -> str:
    lines = ["exec 2>&1  # one stream, in order"]
    for index, step in enumerate(steps):
        lines += [f"printf '%s\\n' {shlex.quote(STEP.format(index))}",
                  step.command,
                  f"__rc=$?; printf '\\n%s\\n' \"{DONE.format(index, '$__rc')}\"; "
                  "[ \"$__rc\" -eq 0 ] || exit \"$__rc\""]
    lines.append(f"printf '%s\\n' \"{END.format('$PWD')}\"")
    return "\n".join(lines) + "\n"


def split_output(stdout: str, steps: list[Step]) -> Path | None:
    current: Step | None = None
    end: Path | None = None
    for line in stdout.splitlines():
        if match := re.fullmatch(r"@@readme-tour step (\d+)@@", line):
            current = steps[int(match.group(1))]
        elif match := re.fullmatch(r"@@readme-tour done (\d+) rc=(\d+)@@", line):
            steps[int(match.group(1))].rc = int(match.group(2))
            current = None
        elif match := re.fullmatch(r"@@readme-tour pwd=(.*)@@", line):
            end = Path(match.group(1))
        elif current is not None:
            current.output.append(line)
    for step in steps:
        while step.output and not step.output[-1].strip():
            step.output.pop()  # the newline the done marker starts with
    return end


def transcript(steps: list[Step]) -> str:
    out = []
    for step in steps:
        if step.rc is None and not step.output:
            out.append(f"$ {step.command}\n(not run)")
            continue
        out.append(f"$ {step.command}")
        out += step.output
        if step.rc:
            out.append(f"(exit {step.rc})")
    return "\n".join(out)


def fresh_env(tmp: Path, marker: str) -> dict[str, str]:
    dirs = {name: tmp / name.lower() for name in
            ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "TMPDIR")}
    for path in dirs.values():
        path.mkdir(mode=0o700)
    return {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "LANG": "C.UTF-8", MARKER_VAR: marker,
            **{name: str(path) for name, path in dirs.items()}}


def marked_processes(marker: str) -> list[tuple[int, str]]:
    """Live processes (not zombies) whose environment carries this run's marker."""
    return processes_with_marker(MARKER_VAR, marker)


def leftovers(marker: str, within: float) -> list[tuple[int, str]]:
    deadline = time.monotonic() + within
    while (found := marked_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@contextlib.contextmanager
def stopped_afterwards(tmp: Path, env: dict[str, str], marker: str) -> Iterator[None]:
    """Whatever happens in the block: stop any sandbox under ``tmp``, then SIGKILL what carries the marker."""
    try:
        yield
    finally:
        for lock in tmp.rglob("sandbox.lock"):
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                subprocess.run([str(VENV_BIN / "provision"), "sandbox", "stop", "--data-dir", str(lock.parent)],
                               env=env, capture_output=True, timeout=30, check=False)
        for pid, _ in marked_processes(marker):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip().strip("'\"") for key, value in pairs}


def completed_greetings(step: Step) -> list[str]:
    found = [json.loads(m.group(1)) for line in step.output
             if (m := re.fullmatch(r"Workflow \S+ COMPLETED: (\{.*\})", line.strip()))]
    return [output.get("greeting") for output in found]


def field_of(step: Step, label: str) -> str:
    match = re.search(rf"^{re.escape(label)}\s+(\S+)", step.text, flags=re.M)
    assert match, f"no '{label}' line in the output of: {step.command}\n{step.text}"
    return match.group(1)


# ----- the block itself ----------------------------------------------------------------------------


def test_the_tour_is_one_marked_block_that_starts_with_the_setup_command_and_shows_each_stage() -> None:
    readme = README.read_text()
    steps = tour_steps(readme)
    commands = [bare(step.command) for step in steps]
    assert commands[0] == setup_command(readme) == "make demo"
    assert commands[1] in ('export PATH="$PWD/.venv/bin:$PATH"', ". .venv/bin/activate")

    def first(prefix: str) -> int:
        return next(i for i, c in enumerate(commands) if c.startswith(prefix))

    order = [first("provision sandbox --detach"), first("provision init"), first("cd greetings"),
             first("provision app"), first("provision worker run greetings"),
             first("provision run -- python3 start.py"), first("provision keys rotate"),
             first("provision sandbox stop")]
    assert order == sorted(order), commands
    assert commands[first("provision worker run greetings")].endswith("&")
    assert commands[-1].startswith("provision sandbox stop")


def test_a_shown_line_must_appear_in_order_as_a_whole_line() -> None:
    output = ["Key:         abc-123 in env file /x/worker.env", "Workflow w1 COMPLETED: {}"]
    assert find_shown(["Key:         ... in env file .../worker.env", "Workflow ... COMPLETED: {}"], output) is None
    assert find_shown(["Workflow ... COMPLETED: {}", "Key: ..."], output) == "Key: ..."  # out of order
    assert find_shown(["COMPLETED"], output) == "COMPLETED"  # part of a line is not the line
    assert find_shown(["Workflow ... FAILED: {}"], output) == "Workflow ... FAILED: {}"


# ----- running it ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(TOUR_TIMEOUT + 60)
def test_the_readme_tour_runs_as_written_in_a_fresh_shell(tmp_path: Path) -> None:
    assert (VENV_BIN / "provision").is_file(), "the tour test uses the checkout's .venv: run 'make test'"
    readme = README.read_text()
    steps = tour_steps(readme)
    assert bare(steps[0].command) == setup_command(readme)
    steps = steps[1:]  # the set-up built the .venv this test runs from; the test does not run make
    marker = uuid.uuid4().hex
    env = fresh_env(tmp_path, marker)
    script = tmp_path / "tour.sh"
    script.write_text(tour_script(steps))

    with stopped_afterwards(tmp_path, env, marker):
        proc = subprocess.Popen(["bash", str(script)], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            stdout, _ = proc.communicate(timeout=TOUR_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, _ = proc.communicate(timeout=30)
            stdout += f"\n(the tour did not finish within {TOUR_TIMEOUT}s)"
        project = split_output(stdout, steps)
        record = transcript(steps)
        (tmp_path / "transcript.txt").write_text(record)
        print(f"\n----- README tour, run as written -----\n{record}")
        left = leftovers(marker, within=10)

        failed = next((s for s in steps if s.rc != 0), None)
        if failed is not None:
            how = "did not finish" if failed.rc is None else f"exited {failed.rc}"
            pytest.fail(f"README.md:{failed.line}: '{failed.command}' {how}\n\n{record}\n\n{stdout[-3000:]}")
        for step in steps:
            missing = find_shown(step.shown, step.output)
            assert missing is None, f"README.md:{step.line}: '{step.command}' did not print '#> {missing}'\n\n{record}"

        # The workflow, before and after the rotation.
        starts = [i for i, s in enumerate(steps) if "start.py" in bare(s.command)]
        rotation = next(i for i, s in enumerate(steps) if "keys rotate" in bare(s.command))
        assert completed_greetings(steps[starts[0]]) == ["Hello, Orkes"], record
        assert starts[0] < rotation < starts[-1]
        assert len(completed_greetings(steps[starts[-1]])) == 1, record

        # The rotation: a new verified key, in the env file, run by the supervised worker; the old one retired.
        assert project is not None and (project / "orkes-provision.toml").is_file(), record
        app = next(s for s in steps if bare(s.command).startswith("provision app"))
        old_key = field_of(app, "Key:")
        new_key = field_of(steps[rotation], "New key:")
        assert new_key != old_key
        assert re.search(rf"^New key:\s+{new_key} \(verified\)$", steps[rotation].text, flags=re.M)
        assert re.search(rf"^Deactivated:\s+{old_key}$", steps[rotation].text, flags=re.M)
        stored = env_file(project / "worker.env")
        assert stored["CONDUCTOR_AUTH_KEY"] == new_key
        worker_log = (project / "worker.log").read_text()
        # The credential agent took the new key; the worker kept running (one start, no restart).
        assert re.search(rf"agent: switched from key {old_key} to key {new_key}; workers keep running", worker_log), \
            worker_log
        assert f"key {new_key} ACTIVE" in steps[starts[-1]].text  # the workflow after it ran on the new key
        admin = env_file(next(tmp_path.rglob("admin.env")))
        secrets = [stored["CONDUCTOR_AUTH_SECRET"], admin["CONDUCTOR_AUTH_SECRET"]]
        assert not [s for s in secrets if s in stdout or s in worker_log], "a secret was printed"

        # Nothing keeps running: the sandbox, the supervisor and every worker process have exited.
        detached = re.search(r"\(pid (\d+)\)", next(s for s in steps if "--detach" in bare(s.command)).text)
        assert detached, record
        sandbox_pid = int(detached.group(1))
        assert f"(pid {sandbox_pid}," in steps[-1].text
        worker_pids = [int(pid) for pid in re.findall(r"started pid (\d+)", worker_log)]
        assert len(worker_pids) == 1  # the one worker, never restarted for the new key
        running = [pid for pid in [sandbox_pid, *worker_pids] if alive(pid)]
        assert running == [], f"the sandbox (pid {sandbox_pid}) or a worker {worker_pids} is still running: {running}"
        assert left == [], f"still running after the tour: {left}"
