"""Keep worker processes running: restart on crash, stop whole process groups, follow key rotation.

Each replica runs in its own session, hence its own process group: the Python SDK forks one
process per task plus a logger, and stopping only the process we started would orphan them.
Stopping a replica signals its whole group, waits a grace period (``stop_grace`` of the project
file: long enough for the SDK to finish the task at hand), then kills the group.

SDK workers read their key once at start, so a rotated key means a new process. When the key in
the store changes, the supervisor starts the replacement first and stops the old one only once
the new one has proved it works: the server's poll data shows a poll under the new process's
worker id (``has_polled``). A new worker that cannot authenticate (no SDK exits on a bad key) never
polls, so it is stopped and the old one keeps running on the old key; rotation sees that worker
still on the old key and leaves the old key ACTIVE. There is always a worker polling.

No task waits for a stopped worker. Each process gets a worker id of its own (``identity``); once
a process has stopped, for a switch, a crash or a shutdown, the tasks still ``IN_PROGRESS`` under
its id go back to the queue (``requeue``, through the ``requeue`` callable), and a second pass a
few seconds later catches what a lagging search index did not show yet. Without it such a task
would sit until its ``responseTimeoutSeconds`` (600 s by default) and then wait a retry delay.

The supervisor is single-threaded: signal handlers only set flags that the main loop reads
every ``tick``, so no lock is needed and a signal never interrupts a half-done restart.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import SecretStr

from orkes_provision.errors import ConfigError, ProvisionError, UsageError
from orkes_provision.workers.identity import assign_worker_id, new_worker_id, supervisor_prefix
from orkes_provision.workers.launch import CommandNotExecutable, CommandNotFound
from orkes_provision.workers.lifeline import Lifeline, die_with_parent_of
from orkes_provision.workers.project import RestartPolicy
from orkes_provision.workers.requeue import RequeueImpossible

REPLICA_VARIABLE = "ORKES_PROVISION_REPLICA"

EventKind = Literal["started", "exited", "restarting", "key-changed", "rotated", "stopping", "stopped",
                    "requeued", "warning", "error"]


class SupervisedKey(Protocol):
    """What the supervisor needs of a stored key to notice a rotation."""

    @property
    def key_id(self) -> str: ...

    @property
    def secret(self) -> SecretStr: ...


K = TypeVar("K", bound=SupervisedKey)
# Returns the ids of the tasks it handed back to the queue; raises ProvisionError when it cannot.
Requeue = Callable[[K, list[str]], Sequence[str]]
# With a credential agent: the whole environment of the process labelled with this worker id, holding
# a local key of its own; the agent then knows what the process holds and ``requeue`` asks it.
InstanceEnv = Callable[[str], Mapping[str, str]]
# Whether the server's poll data shows a poll under this worker id (made with this key).
HasPolled = Callable[[K, str], bool]


@dataclass(frozen=True)
class Timing:
    """How patient the supervisor is; tests shorten these."""

    grace: float = 15.0  # after SIGTERM, before SIGKILL: lets the Java SDK drain (project.DEFAULT_STOP_GRACE)
    settle: float = 2.0  # without has_polled: a rotated-in worker must stay up this long before the old one stops
    poll_wait: float = 120.0  # with has_polled: longest wait for a rotated-in worker's first poll (a busy JVM)
    poll_check: float = 0.5  # how often the poll data is read meanwhile
    key_poll: float = 2.0  # how often the credential store is re-read
    backoff_initial: float = 1.0  # first restart delay; doubles per consecutive crash
    backoff_max: float = 30.0
    backoff_reset_after: float = 60.0  # up this long: the crash counter starts again from zero
    give_up_after: int = 5  # failures in a row (each within give_up_window of the first) before giving up
    give_up_window: float = 120.0
    tick: float = 0.1  # main-loop period: bounds how late a signal or a crash is noticed
    requeue_recheck: float = 5.0  # second search for a stopped worker's tasks (a search index may lag)


@dataclass(frozen=True)
class SupervisorEvent:
    """One lifecycle line: what happened to which replica."""

    kind: EventKind
    worker: str
    replica: int | None
    pid: int | None
    message: str
    key_id: str | None = None
    exit_code: int | None = None
    worker_id: str | None = None  # the process's Conductor worker id (started), or the stopped ones' (requeued)
    task_ids: tuple[str, ...] = ()  # requeued: the tasks handed back to the queue

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind, "worker": self.worker, "replica": self.replica, "pid": self.pid,
                "message": self.message, "keyId": self.key_id, "exitCode": self.exit_code,
                "workerId": self.worker_id, "taskIds": list(self.task_ids)}


@dataclass
class _Replica:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    key_id: str | None = None
    started_at: float = 0.0
    crashes: int = 0
    next_start: float | None = 0.0  # None: finished for good
    last_code: int = 0
    failures: list[float] = field(default_factory=list)  # when each failure of the current run of them happened


@dataclass
class _Flags:
    stop_signal: int | None = None
    force: bool = False
    pending: list[int] = field(default_factory=list)


def exit_status(returncode: int) -> int:
    """A ``Popen.returncode`` as a shell reports it: ``-N`` (killed by signal N) becomes ``128+N``."""
    return 128 - returncode if returncode < 0 else returncode


class Supervisor(Generic[K]):
    """Run ``replicas`` copies of ``command`` and keep them running until a signal says stop.

    ``env_factory(key)`` builds a replica's environment from the current key (``launch.
    worker_environment``); the supervisor adds ``ORKES_PROVISION_REPLICA`` and the process's worker id
    (``identity``). ``key_watch()`` re-reads the key from the store (``None``: no longer there);
    without it, rotation is not followed. ``requeue(key, worker_ids)`` hands the tasks still held
    under the ids of stopped processes back to the queue (``requeue.requeue_with_key``); without
    it they wait for their response timeout. ``has_polled(key, worker_id)`` tells whether the server
    saw a poll under that id; with it a rotated-in worker replaces the old one only after its first
    poll (else after ``Timing.settle`` alive). ``run()`` returns the exit status: 130 after Ctrl-C
    (SIGINT), as a shell reports an interrupt; 0 after a stop by SIGTERM or SIGHUP (a requested stop);
    else that of the last worker to finish (when the restart policy lets every replica finish).
    """

    def __init__(self, command: Sequence[str], env_factory: Callable[[K], Mapping[str, str]],
                 replicas: int = 1, restart_policy: RestartPolicy = "on-failure",
                 key_watch: Callable[[], K | None] | None = None, *,
                 initial_key: K, name: str = "worker", cwd: Path | None = None,
                 timing: Timing | None = None, on_event: Callable[[SupervisorEvent], None] | None = None,
                 requeue: Requeue[K] | None = None, has_polled: HasPolled[K] | None = None,
                 instance_env: InstanceEnv | None = None) -> None:
        if not command:
            raise CommandNotFound("no command to run", "give it after '--': provision run -- python3 main.py")
        if replicas < 1:
            raise UsageError(f"replicas must be at least 1, not {replicas}", "pass --replicas 1 or more")
        self.command = list(command)
        self.env_factory = env_factory
        self.restart_policy = restart_policy
        self.key_watch = key_watch
        self.name = name
        self.cwd = cwd
        self.timing = timing or Timing()
        self.on_event = on_event or (lambda event: None)
        self._key = initial_key
        self._replicas = [_Replica(index=i) for i in range(replicas)]
        self._flags = _Flags()
        self._next_key_poll = 0.0
        self._missing_key_reported = False
        self._failed_key_id: str | None = None
        self.requeue = requeue
        self.has_polled = has_polled
        self.instance_env = instance_env
        self._id_prefix = supervisor_prefix()
        self._spawned = 0
        self._worker_ids: dict[int, str | None] = {}  # pid -> its own worker id (None: the environment pins one)
        self._pinned_reported = False
        self._requeue_impossible = False  # the server refused this key's task search: no hand-back
        self._rechecks: list[tuple[float, list[str]]] = []  # (when, worker ids): second requeue passes
        self._lifeline: Lifeline | None = None  # while running: kills the workers' groups if we are killed
        self._watched: dict[int, subprocess.Popen[bytes]] = {}  # process group -> its leader, told to the lifeline

    # ----- public --------------------------------------------------------------------------

    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """Ask the main loop to stop every replica with ``signum``; a second request kills at once."""
        if self._flags.stop_signal is None:
            self._flags.stop_signal = signum
        else:
            self._flags.force = True

    def pids(self) -> list[int]:
        """Process ids of the replicas now running (group leaders)."""
        return [r.proc.pid for r in self._replicas if r.proc is not None and r.proc.poll() is None]

    def run(self) -> int:
        previous = self._install_signal_handlers()
        lifeline = self._lifeline = Lifeline()
        try:
            for replica in self._replicas:
                self._start(replica, initial=True)
            self._next_key_poll = time.monotonic() + self.timing.key_poll
            return self._loop()
        finally:
            # Whatever happened (an exception, a bug), no worker outlives its supervisor.
            leftover = [r.proc for r in self._replicas if r.proc is not None]
            if leftover:
                self._stop_groups(leftover, signal.SIGTERM)
                for replica in self._replicas:
                    replica.proc = None
            self._forget_ended()
            lifeline.close()
            self._lifeline = None
            self._restore_signal_handlers(previous)

    # ----- main loop -----------------------------------------------------------------------

    def _loop(self) -> int:
        while True:
            if self._flags.stop_signal is not None:
                return self._shutdown(self._flags.stop_signal)
            now = time.monotonic()
            for replica in self._replicas:
                self._check(replica, now)
            if all(r.next_start is None and r.proc is None for r in self._replicas):
                codes = [r.last_code for r in self._replicas if r.last_code]
                return codes[-1] if codes else 0
            if self.key_watch is not None and now >= self._next_key_poll:
                self._poll_key()
                self._next_key_poll = time.monotonic() + self.timing.key_poll
            self._run_due_rechecks(time.monotonic())
            time.sleep(self.timing.tick)

    def _check(self, replica: _Replica, now: float) -> None:
        proc = replica.proc
        if proc is not None:
            code = proc.poll()
            if code is None:
                if replica.crashes and now - replica.started_at >= self.timing.backoff_reset_after:
                    replica.crashes = 0
                return
            self._on_exit(replica, proc, code, now)
            return
        if replica.next_start is not None and now >= replica.next_start:
            self._start(replica, initial=False)

    def _on_exit(self, replica: _Replica, proc: subprocess.Popen[bytes], code: int, now: float) -> None:
        status = exit_status(code)
        uptime = now - replica.started_at
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        self._emit("exited", replica, proc.pid, f"{self._label(replica)} (pid {proc.pid}) {how}", exit_code=status)
        # The SDK's child processes may outlive the one we started: clear the group.
        self._stop_groups([proc], signal.SIGTERM)
        self._release([proc], replica)
        replica.proc = None
        replica.last_code = status
        if not self._should_restart(code):
            replica.next_start = None
            return
        if uptime < self.timing.backoff_reset_after:
            replica.crashes += 1
        else:
            replica.crashes = 1
            replica.failures.clear()
        if code != 0 and self._gives_up(replica, now, how):
            return
        delay = self._backoff(replica.crashes)
        replica.next_start = now + delay
        self._emit("restarting", replica, None, f"restarting {self._label(replica)} in {delay:.1f}s")

    def _gives_up(self, replica: _Replica, now: float, how: str) -> bool:
        """Count a failure; after ``give_up_after`` in a row inside the window, the replica is finished.

        A worker that cannot start (a missing toolchain, a build error, a bad configuration) fails
        the same way every time: restarting it for ever only hides that behind a log of restarts.
        """
        replica.failures = [t for t in replica.failures if now - t <= self.timing.give_up_window] + [now]
        if self.timing.give_up_after <= 0 or len(replica.failures) < self.timing.give_up_after:
            return False
        replica.next_start = None
        self._emit("error", replica, None,
                   f"{self._label(replica)} failed {len(replica.failures)} times in a row within "
                   f"{self.timing.give_up_window:g}s (last: {how}); not restarting it: fix what its output "
                   "says, then start it again", exit_code=replica.last_code)
        return True

    def _should_restart(self, code: int) -> bool:
        if self.restart_policy == "always":
            return True
        if self.restart_policy == "on-failure":
            return code != 0
        return False

    def _backoff(self, crashes: int) -> float:
        exponent = min(max(crashes - 1, 0), 16)  # bounded: 2**16 already exceeds any sane maximum
        return float(min(self.timing.backoff_initial * (2 ** exponent), self.timing.backoff_max))

    # ----- starting and stopping -------------------------------------------------------------

    def _start(self, replica: _Replica, *, initial: bool) -> None:
        try:
            proc = self._spawn(replica.index)
        except ProvisionError as err:
            if initial:
                raise
            # A restart that cannot even exec (the program was removed?) backs off like a crash.
            replica.crashes += 1
            replica.last_code = err.exit_code
            if self._gives_up(replica, time.monotonic(), err.message):
                return
            delay = self._backoff(replica.crashes)
            replica.next_start = time.monotonic() + delay
            self._emit("error", replica, None, f"{err.message}; retrying in {delay:.1f}s")
            return
        replica.proc = proc
        replica.key_id = self._key.key_id
        replica.started_at = time.monotonic()
        replica.next_start = 0.0
        self._emit("started", replica, proc.pid, f"{self._label(replica)} started pid {proc.pid}",
                   key_id=self._key.key_id, worker_id=self._worker_ids.get(proc.pid))

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        self._spawned += 1
        label = new_worker_id(self._id_prefix, index, self._spawned)
        env = dict(self.instance_env(label) if self.instance_env is not None else self.env_factory(self._key))
        env[REPLICA_VARIABLE] = str(index)
        identity = assign_worker_id(env, label)
        if self.instance_env is not None:
            identity = label  # the agent tells processes apart by their local keys, whatever their worker ids
        elif identity is None and not self._pinned_reported:
            self._pinned_reported = True
            self._emit("warning", None, None, "the worker's environment sets its Conductor worker id: tasks a "
                       "stopped worker held are not handed back to the queue (they wait for their response timeout)")
        program = self.command[0]
        try:
            # Its own process group (stopped as one); SIGKILLed by the kernel if this thread ends without
            # stopping it, and its group by the lifeline if this process does (lifeline.py).
            proc = subprocess.Popen(self.command, env=env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                    start_new_session=True, close_fds=True,
                                    preexec_fn=functools.partial(die_with_parent_of, os.getpid()))
        except FileNotFoundError as err:
            if self.cwd is not None and err.filename is not None and Path(str(err.filename)) == self.cwd:
                raise ConfigError(f"the worker directory {self.cwd} does not exist",
                                     "check 'cwd' in the project file") from None
            raise CommandNotFound(f"command not found: {program}") from None
        except PermissionError:
            raise CommandNotExecutable(f"cannot execute {program}: permission denied") from None
        except OSError as err:
            raise CommandNotExecutable(f"cannot execute {program}: {err.strerror}") from None
        self._worker_ids[proc.pid] = identity
        self._forget_ended()
        if self._lifeline is not None:
            self._lifeline.add(proc.pid)
            self._watched[proc.pid] = proc
        return proc

    def _forget_ended(self) -> None:
        """Tell the lifeline which groups ended, before their numbers can be given to someone else's."""
        for group, leader in list(self._watched.items()):
            if leader.returncode is not None or leader.poll() is not None:
                del self._watched[group]
                if self._lifeline is not None:
                    self._lifeline.remove(group)

    def _shutdown(self, signum: int) -> int:
        procs = [r.proc for r in self._replicas if r.proc is not None]
        name = signal.Signals(signum).name
        self._emit("stopping", None, None, f"stopping {self.name}: sending {name} to {len(procs)} process group(s)")
        # A hang-up means the terminal is gone, not that the worker should see a SIGHUP.
        self._stop_groups(procs, signal.SIGTERM if signum == signal.SIGHUP else signum)
        if not self._flags.force:
            # One last pass, for these and for the second passes not yet due: other workers (other
            # hosts, or this one's successor) get the tasks now rather than after their response timeout.
            pending = [wid for _, ids in self._rechecks for wid in ids]
            self._rechecks.clear()
            self._release(procs, None, extra=pending, recheck=False)
        for replica in self._replicas:
            replica.proc = None
            replica.next_start = None
        self._emit("stopped", None, None, f"{self.name} stopped")
        return 128 + signal.SIGINT if signum == signal.SIGINT else 0

    def _stop_groups(self, procs: Sequence[subprocess.Popen[bytes]], signum: int) -> None:
        """Signal each process group, wait up to the grace period, then kill what is left."""
        for proc in procs:
            _signal_group(proc.pid, signum)
        deadline = time.monotonic() + self.timing.grace
        while time.monotonic() < deadline and not self._flags.force:
            if not any(_group_alive(p) for p in procs):
                return
            time.sleep(min(self.timing.tick, 0.05))
        survivors = [p for p in procs if _group_alive(p)]
        for proc in survivors:
            self._emit("warning", None, proc.pid, f"process group {proc.pid} still running; killing it")
            _signal_group(proc.pid, signal.SIGKILL)
        end = time.monotonic() + 5.0
        for proc in survivors:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, end - time.monotonic()))
        while time.monotonic() < end and any(_group_alive(p) for p in survivors):
            time.sleep(0.05)

    # ----- tasks of stopped workers ---------------------------------------------------------

    def _release(self, procs: Sequence[subprocess.Popen[bytes]], replica: _Replica | None, *,
                 extra: Sequence[str] = (), recheck: bool = True) -> None:
        """``procs`` have stopped (their groups are gone): hand the tasks held under their ids to the queue."""
        ids = [wid for p in procs if (wid := self._worker_ids.pop(p.pid, None)) is not None]
        ids.extend(wid for wid in extra if wid not in ids)
        self._requeue(ids, replica)
        # The second pass is for a lagging search index; an agent saw the polls, it needs none.
        if ids and recheck and self.requeue is not None and self.instance_env is None \
                and self.timing.requeue_recheck > 0:
            self._rechecks.append((time.monotonic() + self.timing.requeue_recheck, ids))

    def _run_due_rechecks(self, now: float) -> None:
        due = [ids for when, ids in self._rechecks if when <= now]
        if not due:
            return
        self._rechecks = [(when, ids) for when, ids in self._rechecks if when > now]
        self._requeue([wid for ids in due for wid in ids], None)

    def _requeue(self, ids: list[str], replica: _Replica | None) -> None:
        if self.requeue is None or not ids:
            return
        whose = ", ".join(ids)
        if self._requeue_impossible:
            return
        try:
            requeued = list(self.requeue(self._key, ids))
        except RequeueImpossible as err:
            # Said once: every later stop would meet the same refusal.
            self._requeue_impossible = True
            self._emit("warning", replica, None, f"{err.message}; {err.hint}", worker_id=whose)
            return
        except ProvisionError as err:
            self._emit("warning", replica, None, f"cannot hand the tasks of stopped worker {whose} back to the queue "
                       f"({err.message}); they wait for their response timeout", worker_id=whose)
            return
        except Exception as err:  # a failure here must not end the supervision
            self._emit("warning", replica, None, f"cannot hand the tasks of stopped worker {whose} back to the queue "
                       f"({type(err).__name__}); they wait for their response timeout", worker_id=whose)
            return
        if requeued:
            self._emit("requeued", replica, None, f"handed {len(requeued)} task(s) of stopped worker {whose} back "
                       f"to the queue: {', '.join(requeued)}", worker_id=whose, task_ids=tuple(requeued))

    # ----- key rotation ----------------------------------------------------------------------

    # complexity: a rotation is one sequence (re-read, start the new workers, settle, then switch or keep
    # each replica) over the old and new processes together; split, that state would travel half-updated.
    def _poll_key(self) -> None:
        assert self.key_watch is not None
        try:
            key = self.key_watch()
        except ProvisionError as err:
            self._emit("warning", None, None, f"cannot re-read the key ({err.message}); keeping the running workers")
            return
        except Exception as err:  # a store backend's own failure must not end the supervision
            self._emit("warning", None, None,
                       f"cannot re-read the key ({type(err).__name__}); keeping the running workers")
            return
        if key is None:
            if not self._missing_key_reported:
                self._emit("warning", None, None, "the key is no longer in the store; keeping the running workers")
                self._missing_key_reported = True
            return
        self._missing_key_reported = False
        if _same_key(key, self._key) or key.key_id == self._failed_key_id:
            return
        old_id, previous = self._key.key_id, self._key
        self._key = key
        running = [r for r in self._replicas if r.proc is not None and r.proc.poll() is None]
        self._emit("key-changed", None, None,
                   f"key changed ({old_id} -> {key.key_id}): starting new worker before stopping old",
                   key_id=key.key_id)
        fresh: dict[int, subprocess.Popen[bytes]] = {}
        for replica in running:
            try:
                proc = self._spawn(replica.index)
            except ProvisionError as err:
                self._emit("error", replica, None, f"{err.message}; keeping the old worker")
                continue
            fresh[replica.index] = proc
            self._emit("started", replica, proc.pid, f"{self._label(replica)} started pid {proc.pid} with the new key",
                       key_id=key.key_id, worker_id=self._worker_ids.get(proc.pid))
        proven = self._settle(list(fresh.values()))
        if self._flags.stop_signal is not None:
            # Stopping anyway: the fresh ones go now, the old ones with everything else.
            self._stop_groups(list(fresh.values()), signal.SIGTERM)
            self._release(list(fresh.values()), None)
            return
        switched = 0
        for replica in running:
            new = fresh.get(replica.index)
            if new is None:
                continue
            code = new.poll()
            if code is not None or new.pid not in proven:
                self._stop_groups([new], signal.SIGTERM)
                self._release([new], replica)
                self._failed_key_id = key.key_id
                why = (f"exited with code {exit_status(code)} while starting" if code is not None else
                       f"did not poll within {self.timing.poll_wait:g}s (does key {key.key_id} authenticate? "
                       "see the worker's output)")
                self._emit("error", replica, new.pid, f"the new {self._label(replica)} {why}; keeping the old one "
                           f"on key {old_id}", exit_code=exit_status(code) if code is not None else None)
                continue
            old = replica.proc
            replica.proc, replica.key_id, replica.started_at = new, key.key_id, time.monotonic()
            replica.crashes = 0
            switched += 1
            if old is not None:
                self._stop_groups([old], signal.SIGTERM)
                self._emit("rotated", replica, old.pid,
                           f"stopped old {self._label(replica)} pid {old.pid} (key {old_id})", key_id=key.key_id)
                self._release([old], replica)
        if fresh and not switched:
            self._key = previous  # restarts keep the key that works until the store holds another

    # complexity: the two waits (without poll data: alive after 'settle'; with it: seen polling) share the
    # stop signal, the deadline and the early end, and read as one rule.
    def _settle(self, procs: Sequence[subprocess.Popen[bytes]]) -> set[int]:
        """Wait for the rotated-in ``procs``; the pids of those that proved to work.

        With ``has_polled``: those whose worker id the server's poll data shows, waiting up to
        ``poll_wait`` (the wait ends early once each has polled or exited). Without it: those still
        alive after ``settle``.
        """
        if self.has_polled is None:
            deadline = time.monotonic() + self.timing.settle
            while time.monotonic() < deadline and self._flags.stop_signal is None:
                if procs and all(p.poll() is not None for p in procs):
                    break
                time.sleep(self.timing.tick)
            return {p.pid for p in procs if p.poll() is None}
        proven: set[int] = set()
        started = time.monotonic()
        deadline = started + self.timing.poll_wait
        next_check = 0.0
        while self._flags.stop_signal is None:
            waiting = [p for p in procs if p.pid not in proven and p.poll() is None]
            now = time.monotonic()
            if not waiting or now >= deadline:
                break
            if now >= next_check:
                for proc in waiting:
                    worker_id = self._worker_ids.get(proc.pid)
                    # A worker id pinned by the environment is shared: its poll proves nothing, so
                    # such a worker is judged as without poll data, alive after 'settle'.
                    unnamed_and_settled = worker_id is None and now - started >= self.timing.settle
                    if unnamed_and_settled or (worker_id is not None and self._polled(worker_id)):
                        proven.add(proc.pid)
                next_check = time.monotonic() + self.timing.poll_check
            time.sleep(self.timing.tick)
        return proven

    def _polled(self, worker_id: str) -> bool:
        assert self.has_polled is not None
        try:
            return self.has_polled(self._key, worker_id)
        except Exception:  # a failed read is no proof; the next check asks again
            return False

    # ----- signals and events ----------------------------------------------------------------

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.request_stop(signum)

    def _label(self, replica: _Replica) -> str:
        return f"worker {self.name}[{replica.index}]"

    def _emit(self, kind: EventKind, replica: _Replica | None, pid: int | None, message: str, *,
              key_id: str | None = None, exit_code: int | None = None, worker_id: str | None = None,
              task_ids: tuple[str, ...] = ()) -> None:
        self.on_event(SupervisorEvent(kind, self.name, replica.index if replica else None, pid, message,
                                      key_id=key_id, exit_code=exit_code, worker_id=worker_id, task_ids=task_ids))


def _same_key(a: SupervisedKey, b: SupervisedKey) -> bool:
    return a.key_id == b.key_id and a.secret.get_secret_value() == b.secret.get_secret_value()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _group_alive(proc: subprocess.Popen[bytes]) -> bool:
    """True while the leader is unreaped or any process of its group remains."""
    if proc.poll() is None:
        return True
    try:
        os.killpg(proc.pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
