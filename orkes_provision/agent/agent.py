"""The agent's life: listen on loopback, keep a token, follow the key in its store, hand tasks back.

``Agent.start()`` runs it in a background thread of the calling process (``provision run`` and
``worker run``: the supervisor registers each worker process it starts and releases it when the
process is gone); ``Agent.serve()`` runs it in the foreground until SIGTERM or SIGINT
(``provision agent``). Either way, stopping hands back every task still held.

A 403 from the server that names a definition and the access refused (``orkes.denials``) is said
once per (definition, access), with the ``provision grant`` command that grants it (``hints``), so
that a worker or starter refused by the server is not a mystery buried in its own retries.

Rotation without restart: every ``key_poll`` seconds the agent re-reads the key from its store;
a changed key is verified (a token is minted for it) before anything uses it. A key the server
rejects is refused, said once, and recorded in the registration file (rotation then keeps the
old key ACTIVE and fails with exit 11); the agent goes on with the key it had.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

from orkes_provision.agent.connections import upstream_for
from orkes_provision.agent.instances import Instances, LocalCredential
from orkes_provision.agent.metrics import Metrics
from orkes_provision.agent.proxy import Proxy
from orkes_provision.agent.registry import AgentRecord, record_path, remove_record, write_record
from orkes_provision.agent.upstream import KeyHolder, Unavailable, fingerprint
from orkes_provision.credentials.delivery import Hints
from orkes_provision.credentials.stores.base import HeldKey
from orkes_provision.errors import AuthenticationError, ProvisionError, UsageError
from orkes_provision.orkes.denials import Denial
from orkes_provision.orkes.transport import proxy_for
from orkes_provision.orkes.urls import is_loopback_address, is_loopback_host, normalize_server_url, server_root

START_TIMEOUT = 30.0
RELEASE_TIMEOUT = 30.0


class Agent:
    """A credential agent for application ``app``, starting with ``key``.

    ``key_watch()`` re-reads the key from its store (``None``: not there); without it the key is
    never switched. ``on_event(message)`` receives one line per thing worth saying (no secret).
    ``hints`` renders the grant command a refused permission is told with (``--profile`` and all).
    """

    def __init__(self, key: HeldKey, *, app: str, key_watch: Callable[[], HeldKey | None] | None = None,
                 host: str = "127.0.0.1", port: int = 0, on_event: Callable[[str], None] | None = None,
                 key_poll: float = 1.0, insecure_http: bool = False, register: bool = True,
                 hints: Hints | None = None) -> None:
        if not is_loopback_host(host):
            raise UsageError(f"the agent listens on loopback only, not {host}",
                             "use --listen 127.0.0.1:PORT (workers on other hosts need their own agent)")
        self.app = app
        self.server = normalize_server_url(key.server, insecure_http=True)
        self.host = host
        self.port = port
        self.key_watch = key_watch
        self.key_poll = key_poll
        self.insecure_http = insecure_http
        self.on_event = on_event or (lambda message: None)
        self.hints = replace(hints, app=app) if hints is not None else Hints(app=app)
        self._denials: set[Denial] = set()  # said once each; touched only on the agent's event loop
        self.instances = Instances()
        self.metrics = Metrics()
        self.holder = KeyHolder(key, insecure_http=insecure_http)
        self._register = register
        self._record: Path | None = None
        self._refused: str | None = None  # fingerprint of the key the server rejected
        self._refused_id: str | None = None
        self._missing_said = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._proxy: Proxy | None = None
        self._maintainer: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._serving = threading.Event()  # the background loop runs (start)
        self._closing = False

    @property
    def url(self) -> str:
        """The URL workers get as ``CONDUCTOR_SERVER_URL`` (ends in ``/api``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/api"

    @property
    def key_id(self) -> str:
        return self.holder.key_id

    # ----- in the background (run, worker run) ----------------------------------------------

    def start(self) -> Agent:
        """Listen and mint the first token in a background thread; raises what stops the agent from starting.

        The thread is the agent's supervisor too: should its event loop stop without ``close`` (a
        callback raised ``SystemExit``, or something stopped the loop), it buries that loop and serves
        again on the same port from a new one, keeping the workers' local keys, their tokens and the
        tasks they hold, so a worker sees at most a dropped connection and retries.
        """
        ready: Future[None] = Future()

        def main() -> None:
            restarts_in_a_row = 0
            while not self._closing:
                loop = asyncio.new_event_loop()
                asyncio.set_event_loop(loop)
                self._loop = loop
                started = time.monotonic()
                try:
                    loop.run_until_complete(self._open())
                except BaseException as err:
                    self._bury(loop)
                    if not ready.done():  # handed to the caller's thread
                        ready.set_exception(err)
                        return
                    self.on_event(f"cannot serve again on port {self.port} ({_why(err)}); retrying")
                else:
                    if not ready.done():
                        ready.set_result(None)
                    self._serving.set()
                    why = "it was stopped"
                    try:
                        loop.run_forever()
                    except BaseException as err:  # what asyncio lets through a callback: SystemExit, KeyboardInterrupt
                        why = _why(err)
                    self._serving.clear()
                    self._bury(loop)
                    if self._closing:
                        return
                    with self.metrics.lock:
                        self.metrics.loop_restarts += 1
                    self.on_event(f"the agent's event loop ended ({why}); serving again on port {self.port}")
                restarts_in_a_row = 0 if time.monotonic() - started > 60 else restarts_in_a_row + 1
                time.sleep(min(0.1 * 2 ** restarts_in_a_row, 5.0))  # no busy loop if it dies at once

        self._thread = threading.Thread(target=main, name="orkes-agent", daemon=True)
        self._thread.start()
        ready.result(timeout=START_TIMEOUT)
        return self

    def _bury(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close what a dead (or never started) loop still holds: the listening socket, connections, the pool."""
        with contextlib.suppress(Exception):
            if self._server is not None:
                self._server.close()  # frees the port for the next loop
                self._server = None
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.wait(tasks, timeout=5))
            if self._proxy is not None:
                loop.run_until_complete(self._proxy.upstream.aclose())
        self._connections.clear()
        with contextlib.suppress(Exception):
            loop.close()

    def register(self, label: str, given: LocalCredential | None = None) -> LocalCredential:
        """A local key for one worker process (``given``, or a new one); ``label`` names it in ``/metrics``
        and for ``release``."""
        return self.instances.register(label, given)

    def environment(self, credential: LocalCredential) -> dict[str, str]:
        return {"CONDUCTOR_SERVER_URL": self.url, "CONDUCTOR_AUTH_KEY": credential.key_id,
                "CONDUCTOR_AUTH_SECRET": credential.secret.get_secret_value()}

    def release(self, label: str) -> list[str]:
        """The process of ``label`` has stopped: its credential stops working, its tasks go back to the queue."""
        instance = self.instances.retire(label)
        if instance is None or not instance.held:
            return []
        done: list[str] = self._call(self._hand_back_held(instance.held))
        return done

    def close(self) -> None:
        """Hand back every task still held, stop listening, forget the registration."""
        if self._loop is None or self._thread is None:
            return
        self._closing = True
        with contextlib.suppress(Exception):
            self._call(self._close())
        with contextlib.suppress(RuntimeError):  # already closed by its thread
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop = None

    def _call(self, coroutine: Any) -> Any:
        if not self._serving.wait(timeout=RELEASE_TIMEOUT):  # the loop is being restarted: wait for it
            coroutine.close()
            raise TimeoutError("the agent is not serving")
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=RELEASE_TIMEOUT)

    # ----- in the foreground (provision agent) ------------------------------------------------

    def serve(self, on_ready: Callable[[Agent], None] | None = None) -> int:
        """Run until SIGTERM or SIGINT; returns the exit status (0)."""
        return asyncio.run(self._serve(on_ready))

    async def _serve(self, on_ready: Callable[[Agent], None] | None) -> int:
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(signum, self._stop.set)
        await self._open()
        if on_ready is not None:
            on_ready(self)
        await self._stop.wait()
        await self._close()
        return 0

    # ----- shared -----------------------------------------------------------------------------

    async def _open(self) -> None:
        upstream = upstream_for(server_root(self.server), proxy_for(self.server, insecure_http=self.insecure_http))
        self._proxy = Proxy(self.holder, self.instances, self.metrics, upstream, self.on_event, self._denied)
        self.holder.new_loop()
        try:
            if self.holder.due or self.holder.state != "ready":  # a restarted loop keeps the token it had
                await self.holder.renew()
        except Unavailable as err:
            if self.holder.state == "unauthenticated":
                await upstream.aclose()
                raise AuthenticationError(f"the agent cannot start: the server rejects key {self.key_id} of "
                                          f"{self.app}", f"store a new key: provision app {self.app} --new-key") \
                    from None
            self.on_event(f"{err.message}; workers get 503 until it does")
        self._server = await asyncio.start_server(self._accept, self.host, self.port, limit=64 * 1024)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._write_record()
        self._maintainer = asyncio.get_running_loop().create_task(self._maintain())

    def _denied(self, denial: Denial) -> None:
        if denial in self._denials:
            return
        self._denials.add(denial)
        command = self.hints.grant([denial.name] if denial.target_type == "TASK_DEF" else [],
                                   workflows=[denial.name] if denial.target_type == "WORKFLOW_DEF" else [],
                                   access=denial.access)
        self.on_event(f"403 from the server: {self.app} lacks {denial.access} on {denial.resource}; "
                      f"grant it: {command}")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if not peer or not is_loopback_address(str(peer[0])):
            writer.close()
            return
        assert self._proxy is not None
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await self._proxy.connection(reader, writer)
        except asyncio.CancelledError:
            # The agent is closing; asyncio's stream callback would report a cancelled handler as an error.
            writer.close()
        finally:
            if task is not None:
                self._connections.discard(task)

    async def _close(self) -> None:
        if self._maintainer is not None:
            self._maintainer.cancel()
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        held: dict[str, str] = {}
        for instance in self.instances.all():
            retired = self.instances.retire(instance.label)
            if retired is not None:
                held.update(retired.held)
                retired.held.clear()
        if held:
            await self._hand_back_held(held)
        if self._proxy is not None:
            await self._proxy.upstream.aclose()
        if self._record is not None:
            remove_record(self._record)

    async def _hand_back_held(self, held: dict[str, str]) -> list[str]:
        assert self._proxy is not None
        tasks = dict(held)
        held.clear()
        done = await self._proxy.hand_back(tasks)
        if done:
            self.on_event(f"handed {len(done)} task(s) back to the queue: {', '.join(done)}")
        return done

    async def _maintain(self) -> None:
        """Renew the token before it expires; follow the key in the store."""
        next_watch = time.monotonic() + self.key_poll
        while True:
            await asyncio.sleep(min(self.key_poll, 1.0))
            try:
                next_watch = await self._maintain_once(next_watch)
            except Exception as err:  # a bug here must not end renewal and key following for good
                self.on_event(f"agent: upkeep failed ({type(err).__name__}); trying again")

    async def _maintain_once(self, next_watch: float) -> float:
        if self.holder.due or self.holder.state != "ready":
            before = self.holder.state
            with contextlib.suppress(Unavailable):
                await self.holder.renew()
            if self.holder.state != before:
                self.on_event(f"agent: {self.holder.state}" + (f" ({self.holder.problem})"
                                                                if self.holder.problem else ""))
                self._write_record()
        if self.key_watch is not None and time.monotonic() >= next_watch:
            await self._follow_key()
            next_watch = time.monotonic() + self.key_poll
        return next_watch

    async def _follow_key(self) -> None:
        assert self.key_watch is not None
        loop = asyncio.get_running_loop()
        try:
            key = await loop.run_in_executor(None, self.key_watch)
        except ProvisionError as err:
            self.on_event(f"cannot re-read the key ({err.message}); keeping key {self.key_id}")
            return
        except Exception as err:  # a store backend's own failure must not stop the agent
            self.on_event(f"cannot re-read the key ({type(err).__name__}); keeping key {self.key_id}")
            return
        if key is None:
            if not self._missing_said:
                self._missing_said = True
                self.on_event(f"the key is no longer in the store; keeping key {self.key_id}")
            return
        self._missing_said = False
        mark = fingerprint(key)
        if mark == fingerprint(self.holder.key) or mark == self._refused:
            return
        old = self.key_id
        started = time.monotonic()
        try:
            token = await self.holder.exchange(key)
        except ProvisionError as err:
            self._refused, self._refused_id = mark, key.key_id.strip()
            self.on_event(f"the new key {key.key_id.strip()} does not authenticate ({err.message}); "
                          f"keeping key {old}")
            self._write_record()
            return
        self.holder.switch(key, token, started)
        self._refused = self._refused_id = None
        with self.metrics.lock:
            self.metrics.key_switches += 1
        self.on_event(f"switched from key {old} to key {self.key_id}; workers keep running")
        self._write_record()

    def _write_record(self) -> None:
        if not self._register:
            return
        if self._record is None:
            self._record = record_path(self.port)
        record = AgentRecord(pid=os.getpid(), server=self.server, app=self.app, key_id=self.key_id, url=self.url,
                             state=self.holder.state, refused_key_id=self._refused_id)
        try:
            write_record(self._record, record)
        except OSError as err:
            self.on_event(f"cannot write {self._record}: {err.strerror or err}")


def _why(err: BaseException) -> str:
    message = err.message if isinstance(err, ProvisionError) else ""
    return f"{type(err).__name__}{': ' + message if message else ''}"
