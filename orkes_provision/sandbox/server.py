"""Run the sandbox: hold the data dir, bind the socket, bootstrap the admin application, serve with uvicorn.

The data dir is held first (``control.hold_data_dir``): a second sandbox on it is refused before
it changes anything. The socket is bound here, before uvicorn starts, so that ``--port 0`` works
and ``admin.env`` carries the real port. When the server accepts requests it writes
``server.json`` (pid, port, URL) to the data dir and calls ``on_ready``; SIGINT and SIGTERM stop
it cleanly (in-flight requests get two seconds), after which ``server.json`` is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, cast

from orkes_provision.errors import ConfigError, UsageError
from orkes_provision.sandbox.config import SERVER_INFO, SandboxConfig
from orkes_provision.sandbox.control import hold_data_dir


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is already in use",
                             hint="pick another with --port, or --port 0 for any free port") from err
        raise UsageError(f"cannot listen on {host}:{port}: {err.strerror}", hint="check --host and --port") from err
    # Accepted connections inherit TCP_NODELAY. Without it, a response written as headers then body
    # waits for the client's delayed ACK: about 40 ms per request on Linux loopback.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def serve(config: SandboxConfig, on_ready: Callable[[str], None] | None = None) -> int | None:
    """Run until SIGINT or SIGTERM; return the signal that stopped it.

    Raises ConfigError when the sandbox extra is missing, LockHeld when another sandbox runs on
    the data dir.
    """
    try:
        import uvicorn

        from orkes_provision.sandbox.app import create_app
        from orkes_provision.sandbox.bootstrap import ensure_admin
        from orkes_provision.sandbox.state import SandboxState
    except ImportError as err:
        raise ConfigError(f"the sandbox needs the 'sandbox' extra ({err.name} is missing)",
                          hint="pip install 'orkes-provision[sandbox]'") from err

    with hold_data_dir(config.data_dir):
        sock = bind_socket(config.host, config.port)
        port = int(sock.getsockname()[1])
        state = SandboxState.open(config)
        info_path = config.data_dir / SERVER_INFO
        try:
            ensure_admin(state, config.api_url(port))
            uv_config = uvicorn.Config(create_app(state), log_level="warning", access_log=False, lifespan="off",
                                       proxy_headers=False, timeout_graceful_shutdown=2, server_header=False)
            server = _make_server(uv_config)

            async def main() -> None:
                watcher = asyncio.create_task(_announce(server, config, port, on_ready))
                try:
                    await server.serve(sockets=[sock])
                finally:
                    watcher.cancel()

            asyncio.run(main())
            return cast(int | None, server.stop_signal)
        finally:
            with contextlib.suppress(FileNotFoundError):
                info_path.unlink()
            state.close()
            sock.close()


async def _announce(server: Any, config: SandboxConfig, port: int, on_ready: Callable[[str], None] | None) -> None:
    for _ in range(6000):  # bounded: uvicorn starts in milliseconds
        if server.started:
            break
        await asyncio.sleep(0.01)
    else:
        return
    url = config.api_url(port)
    info = {"pid": os.getpid(), "port": port, "url": url, "rootUrl": config.root_url(port),
            "dataDir": str(config.data_dir)}
    path = config.data_dir / SERVER_INFO
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(info, handle)
    os.replace(tmp, path)
    if on_ready is not None:
        on_ready(url)


def _make_server(uv_config: Any) -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server with our own signal handling: stop cleanly, never re-raise the signal."""

        stop_signal: int | None = None

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return

            def stop(signum: int, frame: FrameType | None) -> None:
                if self.should_exit and signum == signal.SIGINT:
                    self.force_exit = True
                self.should_exit = True
                self.stop_signal = self.stop_signal or signum

            previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server(uv_config)
