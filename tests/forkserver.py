"""Start ``provision`` and sandbox processes by forking one that has already imported the package.

A ``provision`` process spends about 0.3 s of CPU importing pydantic, httpx and click before it does
anything, and a sandbox about 0.4 s; the suite starts over a thousand of them, and on two cores that
import time was most of its run. Each pytest process keeps one *fork server*: a Python started once,
with the package imported and no threads, that forks a child per request. The child gets its own
standard streams, working directory, environment, arguments and (if asked) session, then runs the
console script's ``main`` or a module's ``__main__`` and exits through the interpreter's own exit path
(atexit handlers, thread joins, stream flushes), as a fresh process would.

What a fork cannot give is a fresh interpreter start-up: ``PYTHONPATH``, ``PYTHONWARNINGS``, the locale
and the like were read once, by the server. A request whose environment differs from the server's in
any of those is run with ``subprocess`` instead (``can_fork``), as is everything when
``ORKES_PROVISION_TESTS_EXEC=1``. Tests that run what the tool prints, verbatim in a shell, still
start real processes.

Wire protocol, one Unix-socket connection per child: the client sends one JSON request with the
child's stdin, stdout and stderr as ``SCM_RIGHTS`` descriptors; a waiter process (the child's parent)
answers ``{"pid": N}`` once the child runs and ``{"status": WAIT_STATUS}`` when it has ended.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from orkes_provision.sandbox.harness import SandboxProcess

# Read by the interpreter when it starts: a child forked from a server started with other values
# would not behave as a fresh process with these would.
_START_UP_PREFIX = "PYTHON"
# Read at run time, by the code under test: a forked child sees them as a fresh process would.
# PYTHONUNBUFFERED is read at start-up, but a child builds its stdout and stderr again from its own.
_RUN_TIME_NAMES = frozenset({"PYTHON_KEYRING_BACKEND", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"})

# Not preloaded: ``python -m`` runs them, and importing one runs it.
_NOT_PRELOADED = ("__main__",)
# Imported by the sandbox as it starts, not when its modules are imported.
_PRELOAD_ALSO = ("uvicorn", "uvicorn.protocols.http.httptools_impl", "uvicorn.protocols.http.h11_impl",
                 "uvicorn.lifespan.on", "uvicorn.loops.auto")


def _start_up_variables(env: Mapping[str, str]) -> dict[str, Any]:
    variables: dict[str, Any] = {name: value for name, value in env.items()
                                 if name.startswith(_START_UP_PREFIX) and name not in _RUN_TIME_NAMES}
    # The locale decides the interpreter's encodings. No locale, C and POSIX get UTF-8 as well (PEP 538
    # and 540), so those and any UTF-8 locale start alike; the child's os.environ holds the real values.
    locale = env.get("LC_ALL") or env.get("LC_CTYPE") or env.get("LANG") or "C"
    utf8 = locale in ("C", "POSIX") or locale.lower().replace("-", "").endswith(".utf8")
    variables["(locale)"] = "UTF-8" if utf8 else locale
    return variables


# --- the server side (runs in the fork server and its children) -----------------------------------


def _serve(listener: socket.socket) -> Callable[[], object] | None:
    """Fork a waiter per connection until standard input closes; return the job in a child."""
    while True:
        ready, _, _ = select.select([listener.fileno(), 0], [], [], 5.0)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        if 0 in ready and not os.read(0, 4096):
            return None
        if listener.fileno() in ready:
            conn, _ = listener.accept()
            if os.fork() == 0:
                listener.close()
                return _wait_for_child(conn)
            conn.close()


def _wait_for_child(conn: socket.socket) -> Callable[[], object]:
    """In the waiter: fork the child, report its pid and, once it ends, its wait status."""
    message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    request = json.loads(message)
    pid = os.fork()
    if pid == 0:
        conn.close()
        return _prepare_child(request, fds)
    for fd in fds:
        os.close(fd)
    try:
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        _, status = os.waitpid(pid, 0)
        conn.sendall(json.dumps({"status": status}).encode() + b"\n")
    finally:
        os._exit(0)


def _prepare_child(request: dict[str, Any], fds: list[int]) -> Callable[[], object]:
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    if request["new_session"]:
        os.setsid()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    _output_streams(unbuffered=bool(os.environ.get("PYTHONUNBUFFERED")))
    sys.argv = list(request["argv"])
    if request["module"]:
        import runpy

        module = request["module"]
        return lambda: runpy.run_module(module, run_name="__main__", alter_sys=True)
    from orkes_provision.cli import main

    return main  # the console script's sys.exit(main()): main returns None, or raises SystemExit


def _preload() -> None:
    """Import the whole package, and check that doing so left nothing a fresh process would not have."""
    import importlib
    import logging
    import pkgutil
    import signal

    import orkes_provision

    handlers = {sig: signal.getsignal(sig) for sig in signal.valid_signals()
                if sig not in (signal.SIGKILL, signal.SIGSTOP)}
    root_handlers = list(logging.getLogger().handlers)
    names = [info.name for info in pkgutil.walk_packages(orkes_provision.__path__, "orkes_provision.")
             if not info.name.endswith(_NOT_PRELOADED)]
    for name in [*names, *_PRELOAD_ALSO]:
        importlib.import_module(name)
    changed = [sig for sig, handler in handlers.items() if signal.getsignal(sig) != handler]
    if changed or threading.active_count() != 1 or logging.getLogger().handlers != root_handlers:
        raise RuntimeError(f"importing the package changed the process: signals {changed}, "
                           f"{threading.active_count()} threads, root log handlers {logging.getLogger().handlers}")


def _output_streams(*, unbuffered: bool) -> None:
    """stdout and stderr as the interpreter makes them at start-up, buffered as the child's environment says."""
    import io

    for fd, name in ((1, "stdout"), (2, "stderr")):
        old = getattr(sys, name)
        raw = io.FileIO(fd, "w", closefd=False)
        line_buffering = not unbuffered and (raw.isatty() or fd == 2)
        stream = io.TextIOWrapper(raw if unbuffered else io.BufferedWriter(raw), encoding=old.encoding,
                                  errors=old.errors, newline="\n", line_buffering=line_buffering,
                                  write_through=unbuffered)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _server_main(socket_path: str) -> None:
    if sys.path and sys.path[0] in ("", os.getcwd()):
        sys.path.pop(0)  # as for the console script: the working directory is not on the path
    _preload()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(64)
    print("ready", flush=True)
    job = _serve(listener)
    if job is not None:
        _exit_as_a_process_would(job)


def _exit_as_a_process_would(job: Callable[[], object]) -> None:
    """Run the child's job and exit as the interpreter would, less the teardown of every module.

    That teardown, freeing what the preloads made, costs 0.12 s of CPU a child; what a process
    does on the way out that others can see (its exit code, a traceback, waiting for its threads,
    atexit handlers, flushing its streams) is kept.
    """
    import traceback

    code = 0
    try:
        job()
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            code = exit_.code or 0
        else:
            print(exit_.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        traceback.print_exc()
        code = -signal.SIGINT
    except BaseException:
        traceback.print_exc()
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]  # joins the non-daemon threads, as at exit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120
    if code == -signal.SIGINT:  # an uncaught Ctrl-C ends a process by SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code & 0xFF)


# --- the client side (runs in the pytest process) --------------------------------------------------


class ForkedProcess:
    """The part of ``subprocess.Popen`` the tests and the sandbox harness use, for a forked child."""

    def __init__(self, conn: socket.socket, args: Sequence[str]) -> None:
        self._conn = conn
        self._buffer = b""
        self.args = list(args)
        self.returncode: int | None = None
        self.stdout: IO[Any] | None = None
        self.stderr: IO[Any] | None = None
        self.pid = int(self._read(None)["pid"])

    def _read(self, timeout: float | None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            if deadline is not None:
                ready, _, _ = select.select([self._conn], [], [], max(deadline - time.monotonic(), 0.0))
                if not ready:
                    raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            chunk = self._conn.recv(4096)
            if not chunk:
                raise RuntimeError("the fork server's waiter went away without a status")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        answer: dict[str, Any] = json.loads(line)
        return answer

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            status = int(self._read(timeout)["status"])
            self.returncode = os.waitstatus_to_exitcode(status)
            self._conn.close()
        return self.returncode

    def poll(self) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.wait(0)
        return None

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def communicate(self, timeout: float | None = None) -> tuple[Any, Any]:
        """Read the piped streams to their end, then wait; as ``Popen.communicate`` (no input)."""
        results: dict[str, Any] = {}

        def drain(name: str, stream: IO[Any]) -> None:
            results[name] = stream.read()
            stream.close()

        readers = [threading.Thread(target=drain, args=(name, stream), daemon=True)
                   for name, stream in (("out", self.stdout), ("err", self.stderr)) if stream is not None]
        for reader in readers:
            reader.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        for reader in readers:
            reader.join(None if deadline is None else max(deadline - time.monotonic(), 0.0))
            if reader.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        self.wait(None if deadline is None else max(deadline - time.monotonic(), 0.0))
        return results.get("out"), results.get("err")

    def __enter__(self) -> ForkedProcess:
        return self

    def __exit__(self, *_: object) -> None:
        for stream in (self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        self.wait()


class ForkServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._path = ""
        self._start_up: dict[str, str] = {}

    def _ensure(self) -> str:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                directory = tempfile.mkdtemp(prefix="provision-forkserver-")
                self._path = os.path.join(directory, "socket")
                atexit.register(shutil.rmtree, directory, ignore_errors=True)
                env = dict(os.environ)
                self._start_up = _start_up_variables(env)
                self._proc = subprocess.Popen(
                    [sys.executable, "-c", f"import tests.forkserver as f; f._server_main({self._path!r})"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=Path(__file__).parent.parent)
                assert self._proc.stdout is not None
                if self._proc.stdout.readline() != b"ready\n":
                    raise RuntimeError("the fork server did not start")
            return self._path

    def can_fork(self, env: Mapping[str, str]) -> bool:
        if os.environ.get("ORKES_PROVISION_TESTS_EXEC") == "1":
            return False
        self._ensure()
        return _start_up_variables(env) == self._start_up

    def spawn(self, argv: Sequence[str], *, env: Mapping[str, str], cwd: str | os.PathLike[str] | None,
              stdin: int, stdout: int, stderr: int, module: str | None = None,
              new_session: bool = False) -> ForkedProcess:
        path = self._ensure()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(path)
            request = {"argv": list(argv), "env": dict(env), "cwd": os.path.abspath(cwd or os.getcwd()),
                       "module": module, "new_session": new_session}
            socket.send_fds(conn, [json.dumps(request).encode()], [stdin, stdout, stderr])
            return ForkedProcess(conn, argv)
        except BaseException:
            conn.close()
            raise


SERVER = ForkServer()


@contextlib.contextmanager
def _input_file(text: str | None) -> Iterator[int]:
    if text is None:
        fd = os.open(os.devnull, os.O_RDONLY)
        try:
            yield fd
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryFile() as file:
        file.write(text.encode())
        file.seek(0)
        yield file.fileno()


def _text(file: IO[bytes]) -> str:
    file.seek(0)
    # As subprocess.run(text=True) gives it: the locale's encoding, universal newlines.
    return file.read().decode().replace("\r\n", "\n").replace("\r", "\n")


def run(argv: Sequence[str], *, env: Mapping[str, str], cwd: str | os.PathLike[str] | None, input: str | None,
        timeout: float) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(argv, capture_output=True, text=True)`` for the ``provision`` console script."""
    with _input_file(input) as stdin, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = SERVER.spawn(argv, env=env, cwd=cwd, stdin=stdin, stdout=out.fileno(), stderr=err.fileno())
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise subprocess.TimeoutExpired(list(argv), timeout, output=_text(out), stderr=_text(err)) from None
        return subprocess.CompletedProcess(list(argv), code, _text(out), _text(err))


_Stream = int | IO[Any] | None


def popen(cmd: Sequence[str], *, env: Mapping[str, str], cwd: str | os.PathLike[str] | None = None,
          stdin: _Stream = subprocess.DEVNULL, stdout: _Stream = None, stderr: _Stream = None,
          text: bool = False, start_new_session: bool = False) -> ForkedProcess | subprocess.Popen[Any]:
    """``subprocess.Popen`` of the ``provision`` console script, forked when the environment allows.

    The streams are what Popen takes (``PIPE`` gives ``proc.stdout``/``proc.stderr``), except that
    stdin cannot be a pipe and ``None`` for stdin means /dev/null: the tests' stdin is no terminal.
    """
    if stdin == subprocess.PIPE or not SERVER.can_fork(env):
        return subprocess.Popen(list(cmd), env=dict(env), cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr,
                                text=text, start_new_session=start_new_session)
    opened: list[int] = []   # descriptors made here, closed once the child has its own
    pipes: dict[str, int] = {}

    def fd_of(name: str, stream: _Stream, default: int) -> int:
        if stream is None:
            return default
        if stream == subprocess.DEVNULL:
            fd = os.open(os.devnull, os.O_RDWR)
            opened.append(fd)
            return fd
        if stream == subprocess.PIPE:
            read_end, write_end = os.pipe()
            pipes[name] = read_end
            opened.append(write_end)
            return write_end
        return stream if isinstance(stream, int) else stream.fileno()

    try:
        in_fd = fd_of("stdin", stdin if stdin is not None else subprocess.DEVNULL, 0)
        out_fd = fd_of("stdout", stdout, 1)
        err_fd = out_fd if stderr == subprocess.STDOUT else fd_of("stderr", stderr, 2)
        proc = SERVER.spawn(cmd, env=env, cwd=cwd, stdin=in_fd, stdout=out_fd, stderr=err_fd,
                            new_session=start_new_session)
    except BaseException:
        for fd in pipes.values():
            os.close(fd)
        raise
    finally:
        for fd in opened:
            os.close(fd)
    mode = "r" if text else "rb"
    if "stdout" in pipes:
        proc.stdout = os.fdopen(pipes["stdout"], mode)
    if "stderr" in pipes:
        proc.stderr = os.fdopen(pipes["stderr"], mode)
    return proc


class ForkedSandbox(SandboxProcess):
    """A sandbox started by the fork server when its environment allows it."""

    def _spawn(self, cmd: list[str], env: dict[str, str], log_fd: int) -> Any:
        if cmd[1:3] != ["-m", "orkes_provision.sandbox"] or not SERVER.can_fork(env):
            return super()._spawn(cmd, env, log_fd)
        with _input_file(None) as stdin:
            # As ``python -m`` leaves it: runpy puts the module's path in place of the interpreter's.
            return SERVER.spawn([cmd[0], *cmd[3:]], env=env, cwd=None, stdin=stdin, stdout=log_fd, stderr=log_fd,
                                module="orkes_provision.sandbox", new_session=True)
