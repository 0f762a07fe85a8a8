"""Execution pools: where a worker's jobs actually run.

``PreforkPool`` (default) forks N children that each run one job at a time; a child that
overruns its timeout is killed and replaced, a child that dies is replaced. Short jobs
travel to a child in small batches (one pipe message for several jobs, one for their
reports), and while they are short a child holds a second batch behind the one it runs,
so it never waits for the supervisor between them; the job a child is running is
published in a few bytes of shared memory, so timeouts and crashes are still charged to
exactly that job. ``async def`` jobs run side by side on a child's event loop,
``async_slots`` at a time; the child holds as many again, which start as others end.
``ThreadPool`` runs jobs in N threads of the worker (timeouts are recorded, but the thread
cannot be stopped, only abandoned). ``SoloPool`` runs one job at a time in the worker
itself. ``LoopPool`` runs ``async def`` jobs on an event loop in a thread of the worker
(one process instead of two for an all-``async def`` worker at concurrency 1).

A job is submitted as ``(seq, body, timeout, concurrent)``: ``seq`` is the worker's number
for it; ``concurrent`` marks an ``async def`` job, run beside others on the child's loop.
Parent and children exchange plain values (tuples of str, bytes, numbers) with ``marshal``:
nothing on the pipe is ever unpickled, so no message can run code.

Every pool speaks the same events to the supervisor (``jobmaster.worker.messages``):
``RunEnded``, ``NotStarted``, ``SlotProgress``, ``SlotExited`` and ``SlotTimedOut``.

A forked child keeps itself clean between jobs: each job starts in the child's original
working directory, with its original standard streams and signal mask, whatever the job
before it did; after ``max_jobs_per_child`` jobs, or once its memory passed
``max_memory_per_child``, the child finishes its batch, says so and is replaced.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import ctypes
import io
import logging
import mmap
import os
import queue
import resource
import signal
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Pipe, wait
from typing import TYPE_CHECKING, Any

from jobmaster.exceptions import JobmasterError
from jobmaster.worker.executor import HardTimeout, execute, execute_async
from jobmaster.worker.messages import (
    ChildMessage,
    Item,
    NotStarted,
    PoolEvent,
    Progress,
    Ready,
    Recycle,
    Report,
    Reports,
    RunEnded,
    SlotExited,
    SlotProgress,
    SlotTimedOut,
    decode,
    decode_items,
    encode,
    encode_items,
)

if TYPE_CHECKING:
    from jobmaster.app import App

log = logging.getLogger("jobmaster.worker")

Event = PoolEvent

_STOP_REQUESTED = False
_CANCEL_REQUESTED = False
_CURRENT = struct.Struct("qd")  # seq of the running job, its monotonic start (-1: idle)
_REPORT_EVERY = 0.02  # a child sends the reports of a batch at least this often
_REPORT_ASYNC = 0.002  # ... and those of async def jobs within this, as they end
_MAX_FAILED_STARTS = 5
_LOOP_SWITCH_INTERVAL = 0.0005
"""Seconds a thread may keep the GIL while another waits for it, while a ``LoopPool``'s
event loop runs in the worker process (Python's default is 0.005): the supervisor's
threads then hold up a job's wake-up by half a millisecond at most, not five."""


class WorkerStartError(JobmasterError):
    """Worker processes keep dying before they are ready: the worker cannot run."""


def _stop_flag() -> bool:
    return _STOP_REQUESTED or _CANCEL_REQUESTED


class Pool(abc.ABC):
    """N execution slots; the supervisor submits jobs to idle slots."""

    kind = "abstract"
    batching = False
    """Whether a slot takes several jobs per ``submit``."""
    stopped_how = "was stopped"
    """How a job that ran out of time was stopped, for its error message."""
    depth = 1
    """How many batches a slot may hold at once (the prefork pool: up to two, the second
    waiting behind the first; the supervisor keeps it at one while jobs are long, so that
    no job waits behind a long one while another slot is free)."""
    async_slots = 0
    """How many ``async def`` jobs a slot runs at once (the prefork and loop pools; set
    before ``start``)."""

    def __init__(self, app: App, size: int) -> None:
        self.app = app
        self.size = size

    @abc.abstractmethod
    def start(self) -> None:
        """Start every slot."""

    @abc.abstractmethod
    def idle_slots(self) -> list[int]:
        """Slots that take a batch now: no job outstanding (or, for a pool that queues
        batches, fewer than ``depth`` batches), the emptiest first."""

    @abc.abstractmethod
    def submit(self, slot: int, items: Sequence[Item], *, concurrent: bool = False) -> None:
        """Run these jobs, in order, in ``slot`` (``concurrent``: ``async def`` jobs, side
        by side on the slot's event loop)."""

    def async_room(self, limit: int) -> list[tuple[int, int]]:
        """Slots running ``async def`` jobs that take more now, and how many (up to
        ``limit`` held at once each, running or waiting their turn). Only the prefork pool
        runs them side by side."""
        return []

    @property
    def async_held(self) -> int:
        """How many ``async def`` jobs a slot holds at most, running or waiting."""
        return self.async_slots

    @abc.abstractmethod
    def current(self, slot: int) -> tuple[int, float] | None:
        """``(seq, monotonic start)`` of the job running in ``slot``, if any."""

    @abc.abstractmethod
    def poll(self, timeout: float) -> list[Event]:
        """Events that happened, waiting up to ``timeout`` seconds for the first."""

    @abc.abstractmethod
    def kill(self, slot: int, respawn: bool = True) -> None:
        """Stop the slot's jobs now (a timeout ran out) and, unless ``respawn`` is false,
        make the slot usable again; jobs it had not reported are gone (the supervisor
        accounts for them)."""

    def request_stop(self, slots: list[int]) -> None:  # noqa: B027 - optional
        """Tell the jobs in these slots that the worker is stopping."""

    def request_cancel(self, slot: int) -> None:  # noqa: B027 - optional
        """Tell the job running in this slot that it was cancelled."""

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Stop every slot (idle ones at once; call after running jobs are done or killed)."""


# -- prefork ----------------------------------------------------------------------------
@dataclass(slots=True)
class _Child:
    pid: int
    conn: Connection
    shared: mmap.mmap
    ready: bool = False
    outstanding: int = 0
    """Jobs handed to it and not yet reported."""
    batches: deque[int] = field(default_factory=deque)
    """Of its plain batches, how many jobs each has left to report, oldest first (a
    child reports them in order)."""
    recycling: str | None = None
    concurrent: bool = False
    """Running ``async def`` jobs on its loop: it takes more of those, nothing else."""


class _ChildState:
    """What a job may change in its process and the next job must not inherit: the
    working directory, the standard streams (file descriptors and ``sys`` objects) and
    the signal mask. Taken when the child starts; ``restore`` puts it back."""

    def __init__(self) -> None:
        self.cwd = os.getcwd()
        self.mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        self.fds = [(os.dup(fd), fd) for fd in (0, 1, 2) if _is_open(fd)]
        self.streams = {name: getattr(sys, name) for name in ("stdin", "stdout", "stderr")}

    def restore(self) -> None:
        """Undo what the last job changed (a few system calls when it changed nothing)."""
        try:
            if os.getcwd() != self.cwd:
                os.chdir(self.cwd)
        except OSError:  # the directory the job left us in is gone
            with contextlib.suppress(OSError):
                os.chdir(self.cwd)
        signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)
        for saved, fd in self.fds:  # cheaper than checking whether it changed
            os.dup2(saved, fd)
        for name, stream in self.streams.items():
            current = getattr(sys, name)
            if current is stream and not getattr(stream, "closed", False):
                continue
            if getattr(stream, "closed", False):  # closed by the job: open a new one
                fd = {"stdin": 0, "stdout": 1, "stderr": 2}[name]
                stream = io.TextIOWrapper(
                    io.FileIO(fd, "r" if fd == 0 else "w", closefd=False),
                    line_buffering=fd != 0, errors="backslashreplace")
                self.streams[name] = stream
            setattr(sys, name, stream)


def _run_concurrently(app: App, loop: asyncio.AbstractEventLoop, conn: Connection,
                      batch: Sequence[Item], progress: Callable[[str, int, str | None], None],
                      send: Callable[[ChildMessage], None], slots: int,
                      ) -> tuple[int, list[list[Item]]]:
    """Run ``async def`` jobs side by side on ``loop`` (kept from batch to batch, so clients
    the jobs keep survive), ``slots`` at a time, taking the ones the supervisor adds
    meanwhile from ``conn``, until none is left. Jobs beyond ``slots`` wait their turn here,
    so one that ends is followed at once, without a round trip to the supervisor; a job's
    timeout counts from its turn, not from its arrival. Reports go out as jobs end, within
    ``_REPORT_ASYNC``; once the worker is stopping, jobs not yet started are handed back.
    Returns how many ran, and batches of plain jobs that arrived meanwhile (to run
    after)."""
    reports: list[tuple[int, Report | None]] = []
    tasks: set[asyncio.Task[None]] = set()  # the jobs running
    waiting: deque[Item] = deque()  # the jobs waiting their turn
    later: list[list[Item]] = []
    ran = [0]
    slots = max(slots, 1)

    def report_now() -> None:
        if reports:
            send(Reports(reports[:]))
            reports.clear()

    def report(seq: int, outcome: Report | None) -> None:
        if not reports:  # the first of a while: the others join it for _REPORT_ASYNC
            loop.call_later(_REPORT_ASYNC, report_now)
        reports.append((seq, outcome))

    async def one(seq: int, body: bytes) -> None:
        report(seq, await execute_async(app, body, progress=progress, stop_flag=_stop_flag))

    def launch(item: Item) -> None:
        task = loop.create_task(one(item.seq, item.body))
        tasks.add(task)
        task.add_done_callback(ended)
        ran[0] += 1

    def ended(task: asyncio.Task[None]) -> None:  # its turn passes to the next waiting
        tasks.discard(task)
        if _STOP_REQUESTED:
            hand_back()
        elif waiting:
            launch(waiting.popleft())

    def hand_back() -> None:  # the worker is stopping: jobs not started go back
        while waiting:
            report(waiting.popleft().seq, None)

    def start(items: Sequence[Item]) -> None:
        waiting.extend(items)
        if _STOP_REQUESTED:
            hand_back()
        while waiting and len(tasks) < slots:
            launch(waiting.popleft())

    def arrived() -> None:
        try:
            items = decode_items(conn.recv_bytes())
        except (EOFError, OSError):
            loop.remove_reader(conn.fileno())
            return
        if items and items[0].concurrent:
            start(items)
        else:
            later.append(items)

    async def until_done() -> None:
        while tasks:
            await asyncio.wait(set(tasks))

    start(batch)
    loop.add_reader(conn.fileno(), arrived)
    try:
        loop.run_until_complete(until_done())
    finally:
        loop.remove_reader(conn.fileno())
    hand_back()  # none is left waiting once none runs; should one be, it goes back
    report_now()
    return ran[0], later


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def _set_parent_death_signal() -> None:
    """Ask Linux to SIGKILL this child if the worker dies (no orphaned jobs running on)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class PreforkPool(Pool):
    """Forked child processes, one job at a time each (the default)."""

    kind = "prefork"
    batching = True
    stopped_how = "its process was killed"

    def __init__(self, app: App, size: int) -> None:
        super().__init__(app, size)
        self.children: dict[int, _Child] = {}
        self.failed_starts = 0

    def start(self) -> None:
        for slot in range(self.size):
            self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        if self.failed_starts >= _MAX_FAILED_STARTS:
            raise WorkerStartError(
                f"{self.failed_starts} worker processes in a row died before they were ready "
                "(see the errors above: an on_worker_process_start hook or an import failing "
                "in the child); the worker stops"
            )
        parent_end, child_end = Pipe(duplex=True)
        shared = mmap.mmap(-1, _CURRENT.size)  # anonymous and shared with the child
        _CURRENT.pack_into(shared, 0, -1, -1.0)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child (covered by integration tests)
            try:
                parent_end.close()
                for other in self.children.values():
                    with contextlib.suppress(OSError):
                        other.conn.close()
                self._child_main(child_end, shared)
            finally:
                os._exit(0)
        child_end.close()
        self.children[slot] = _Child(pid, parent_end, shared)

    def _child_main(self, conn: Connection, shared: mmap.mmap) -> None:  # pragma: no cover
        global _STOP_REQUESTED, _CANCEL_REQUESTED
        _set_parent_death_signal()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

        def on_stop(signum: int, frame: Any) -> None:
            global _STOP_REQUESTED
            _STOP_REQUESTED = True

        def on_cancel(signum: int, frame: Any) -> None:
            global _CANCEL_REQUESTED
            _CANCEL_REQUESTED = True

        signal.signal(signal.SIGUSR1, on_stop)
        signal.signal(signal.SIGUSR2, on_cancel)
        self.app.after_fork()
        for hook in self.app.child_init_hooks:
            try:
                hook()
            except BaseException:  # noqa: BLE001 - reported, then the child stops
                log.exception("on_worker_process_start hook %s failed; this worker process "
                              "stops", getattr(hook, "__qualname__", hook))
                os._exit(3)
        send_bytes = conn.send_bytes
        pack = _CURRENT.pack_into
        clock = time.monotonic
        clean = _ChildState()
        cfg = self.app.config
        max_jobs, max_kib = cfg.max_jobs_per_child, cfg.max_memory_per_child
        done = 0

        def send(message: ChildMessage) -> None:
            send_bytes(encode(message))

        def progress(job_id: str, percent: int, message: str | None) -> None:
            send(Progress(job_id, percent, message))

        send(Ready(os.getpid()))
        recycle: str | None = None
        loop: asyncio.AbstractEventLoop | None = None  # made for the first async job
        later: list[list[Item]] = []  # plain jobs that came while async ones ran
        while recycle is None:
            if later:
                batch = later.pop(0)
            else:
                try:
                    data = conn.recv_bytes()
                except (EOFError, OSError):
                    break
                if not data:
                    break
                batch = decode_items(data)
            reports: list[tuple[int, Report | None]] = []
            last_sent = clock()
            try:
                if batch and batch[0].concurrent:  # async def jobs: side by side on the loop
                    if loop is None:
                        loop = asyncio.new_event_loop()
                    ran, more = _run_concurrently(self.app, loop, conn, batch, progress, send,
                                                  self.async_slots)
                    done += ran
                    later += more
                    clean.restore()
                    continue
                for seq, body, _timeout, _concurrent in batch:
                    if recycle is not None or _STOP_REQUESTED:
                        reports.append((seq, None))  # not started: handed back
                        continue
                    _CANCEL_REQUESTED = False
                    pack(shared, 0, seq, clock())
                    report = execute(self.app, body, progress=progress, stop_flag=_stop_flag)
                    pack(shared, 0, seq, -1.0)
                    clean.restore()
                    reports.append((seq, report))
                    done += 1
                    if max_jobs is not None and done >= max_jobs:
                        recycle = f"it ran {done} jobs (max_jobs_per_child={max_jobs})"
                    elif max_kib is not None:
                        used = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                        if used > max_kib:
                            recycle = (f"its memory reached {used:,} KiB "
                                       f"(max_memory_per_child={max_kib:,})")
                    if recycle is not None:  # before the reports: once they are in, the
                        send(Recycle(recycle))  # slot must not look idle and get a job
                    if clock() - last_sent >= _REPORT_EVERY:
                        send(Reports(reports))
                        reports, last_sent = [], clock()
                if reports:
                    send(Reports(reports))
            except (BrokenPipeError, OSError):
                break
        if recycle is not None:  # batches already queued for this child go back unstarted
            with contextlib.suppress(EOFError, OSError):
                while later or conn.poll():  # (b"", the end, is an EOFError to decode)
                    batch = later.pop(0) if later else decode_items(conn.recv_bytes())
                    send(Reports([(item.seq, None) for item in batch]))
        with contextlib.suppress(Exception):
            self.app.flush()

    def idle_slots(self) -> list[int]:
        free = [(len(c.batches), s) for s, c in self.children.items()
                if c.ready and not c.recycling and not c.concurrent
                and len(c.batches) < self.depth]
        return [s for _, s in sorted(free)]

    def submit(self, slot: int, items: Sequence[Item], *, concurrent: bool = False) -> None:
        child = self.children[slot]
        child.outstanding += len(items)
        if concurrent:  # it takes async def jobs only now, until every job is reported
            child.concurrent = True
        else:
            child.batches.append(len(items))
        try:
            child.conn.send_bytes(encode_items(list(items)))
        except OSError:
            pass  # the child is gone; poll() reports its exit

    @property
    def async_held(self) -> int:
        return 2 * self.async_slots  # as many again wait their turn, to follow at once

    def async_room(self, limit: int) -> list[tuple[int, int]]:
        return [(s, limit - c.outstanding) for s, c in self.children.items()
                if c.concurrent and c.outstanding < limit and not c.recycling]

    def current(self, slot: int) -> tuple[int, float] | None:
        child = self.children.get(slot)
        if child is None:
            return None
        seq, started = _CURRENT.unpack_from(child.shared, 0)
        return None if started < 0 else (int(seq), float(started))

    def poll(self, timeout: float) -> list[Event]:
        conns = {c.conn: s for s, c in self.children.items()}
        events: list[Event] = []
        for conn in wait(list(conns), timeout):
            slot = conns[conn]  # type: ignore[index]
            child = self.children[slot]
            try:
                while True:
                    message = decode(child.conn.recv_bytes())
                    if isinstance(message, Reports):
                        for seq, report in message.items:
                            child.outstanding -= 1
                            if child.batches:  # plain batches report in order
                                child.batches[0] -= 1
                                if child.batches[0] <= 0:
                                    child.batches.popleft()
                            if child.outstanding <= 0:
                                child.concurrent = False
                                child.batches.clear()
                            if report is None:
                                events.append(NotStarted(slot, seq))
                            else:
                                events.append(RunEnded(slot, seq, report))
                    elif isinstance(message, Progress):
                        events.append(SlotProgress(slot, *message))
                    elif isinstance(message, Ready):
                        child.ready = True
                        self.failed_starts = 0
                    elif isinstance(message, Recycle):
                        child.recycling = message.reason
                    if not child.conn.poll():
                        break
            except (EOFError, OSError, ValueError):
                running = self.current(slot)
                if not child.ready:
                    self.failed_starts += 1
                reason = self._reap(slot)
                was_busy = child.outstanding > 0
                self._spawn(slot)
                if was_busy:
                    events.append(SlotExited(slot, reason, None if running is None
                                             else running[0]))
                elif child.recycling:
                    log.info("worker process %s replaced: %s", child.pid, child.recycling)
                else:
                    log.warning("worker process %s exited while idle (%s); replaced",
                                child.pid, reason)
        return events

    def _reap(self, slot: int) -> str:
        child = self.children.pop(slot)
        with contextlib.suppress(OSError):
            child.conn.close()
        try:
            _, status = os.waitpid(child.pid, 0)
        except ChildProcessError:
            return f"worker process {child.pid} vanished"
        finally:
            with contextlib.suppress(Exception):
                child.shared.close()
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = str(sig)
            return f"worker process {child.pid} was killed by signal {name}"
        return f"worker process {child.pid} exited with code {os.WEXITSTATUS(status)}"

    def kill(self, slot: int, respawn: bool = True) -> None:
        child = self.children.get(slot)
        if child is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)
        self._reap(slot)
        if respawn:
            self._spawn(slot)

    def request_stop(self, slots: list[int]) -> None:
        for slot in slots:
            child = self.children.get(slot)
            if child is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGUSR1)

    def request_cancel(self, slot: int) -> None:
        child = self.children.get(slot)
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGUSR2)

    def shutdown(self) -> None:
        for child in self.children.values():
            with contextlib.suppress(OSError):
                child.conn.send_bytes(b"")
        deadline = time.monotonic() + 5.0
        for child in list(self.children.values()):
            while time.monotonic() < deadline:
                pid, _ = os.waitpid(child.pid, os.WNOHANG)
                if pid:
                    break
                time.sleep(0.01)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(child.pid, 0)
            with contextlib.suppress(OSError):
                child.conn.close()
        self.children.clear()


# -- threads ------------------------------------------------------------------------------
class ThreadPool(Pool):
    """Threads of the worker process. A timed-out job is recorded as such and its thread
    abandoned (Python cannot stop a thread); a new thread takes the slot."""

    kind = "threads"
    stopped_how = "was abandoned (a thread cannot be stopped; it may still be running)"

    def __init__(self, app: App, size: int) -> None:
        super().__init__(app, size)
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self.inboxes: dict[int, queue.SimpleQueue[list[Item] | None]] = {}
        self.outstanding: dict[int, int] = {}
        self.running: dict[int, tuple[int, float]] = {}
        self.generation: dict[int, int] = {}
        self.stop = threading.Event()
        self.cancelled: dict[int, bool] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        for slot in range(self.size):
            self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        inbox: queue.SimpleQueue[list[Item] | None] = queue.SimpleQueue()
        self.inboxes[slot] = inbox
        self.outstanding[slot] = 0
        self.running.pop(slot, None)
        generation = self.generation.get(slot, 0) + 1
        self.generation[slot] = generation
        thread = threading.Thread(target=self._run, args=(slot, generation, inbox),
                                  name=f"jobmaster-slot-{slot}", daemon=True)
        thread.start()

    def _run(self, slot: int, generation: int,
             inbox: queue.SimpleQueue[list[Item] | None]) -> None:
        def progress(job_id: str, percent: int, message: str | None) -> None:
            self.events.put(SlotProgress(slot, job_id, percent, message))

        def stop_flag() -> bool:
            return self.stop.is_set() or self.cancelled.get(slot, False)

        while True:
            items = inbox.get()
            if items is None:
                return
            for seq, body, _timeout, _concurrent in items:
                if self.generation.get(slot) != generation:
                    return  # abandoned after a timeout: its reports no longer count
                self.cancelled[slot] = False
                with self._lock:
                    self.running[slot] = (seq, time.monotonic())
                report = execute(self.app, body, progress=progress, stop_flag=stop_flag)
                with self._lock:
                    if self.generation.get(slot) != generation:
                        return
                    self.running.pop(slot, None)
                    self.outstanding[slot] -= 1
                self.events.put(RunEnded(slot, seq, report))

    def idle_slots(self) -> list[int]:
        return [s for s, n in self.outstanding.items() if not n]

    def submit(self, slot: int, items: Sequence[Item], *, concurrent: bool = False) -> None:
        self.outstanding[slot] += len(items)
        self.inboxes[slot].put(list(items))

    def current(self, slot: int) -> tuple[int, float] | None:
        with self._lock:
            return self.running.get(slot)

    def poll(self, timeout: float) -> list[Event]:
        events: list[Event] = []
        try:
            events.append(self.events.get(timeout=max(timeout, 0.0)) if timeout > 0
                          else self.events.get_nowait())
        except queue.Empty:
            return events
        while True:
            try:
                events.append(self.events.get_nowait())
            except queue.Empty:
                return events

    def kill(self, slot: int, respawn: bool = True) -> None:
        with self._lock:
            self.inboxes[slot].put(None)
            self._spawn(slot)

    def request_stop(self, slots: list[int]) -> None:
        self.stop.set()

    def request_cancel(self, slot: int) -> None:
        self.cancelled[slot] = True

    def shutdown(self) -> None:
        for inbox in self.inboxes.values():
            inbox.put(None)


# -- solo ---------------------------------------------------------------------------------
class SoloPool(Pool):
    """Runs one job at a time in the worker process itself. Timeouts interrupt the job with
    an exception (SIGALRM) when the worker runs in the main thread; a helper thread renews
    leases while a job runs, since the worker's loop is busy running it."""

    kind = "solo"
    stopped_how = "was interrupted"

    def __init__(self, app: App, size: int = 1) -> None:
        super().__init__(app, 1)
        self.pending: list[Item] = []
        self.events: list[Event] = []
        self.stopping = False
        self.cancelled = False
        self.running: tuple[int, float] | None = None
        self.keepalive: Callable[[], None] | None = None
        self.keepalive_every = 10.0

    def start(self) -> None:
        pass

    def idle_slots(self) -> list[int]:
        return [] if self.pending else [0]

    def submit(self, slot: int, items: Sequence[Item], *, concurrent: bool = False) -> None:
        self.pending.extend(items)

    def current(self, slot: int) -> tuple[int, float] | None:
        return self.running

    def poll(self, timeout: float) -> list[Event]:
        if not self.pending:
            if timeout > 0:
                time.sleep(min(timeout, 0.05))
            waiting, self.events = self.events, []
            return waiting
        seq, body, limit, _concurrent = self.pending.pop(0)
        use_alarm = limit is not None and threading.current_thread() is threading.main_thread()

        def on_alarm(signum: int, frame: Any) -> None:
            raise HardTimeout()

        def progress(job_id: str, percent: int, message: str | None) -> None:
            self.events.append(SlotProgress(0, job_id, percent, message))

        done = threading.Event()
        if self.keepalive is not None:
            beat = self.keepalive

            def keep() -> None:  # the worker's loop is busy running the job: renew here
                while not done.wait(self.keepalive_every):
                    try:
                        beat()
                    except Exception:  # noqa: BLE001
                        log.exception("could not renew leases while a solo job runs")

            threading.Thread(target=keep, name="jobmaster-solo-lease", daemon=True).start()
        previous = None
        if use_alarm:
            previous = signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, float(limit or 0))
        self.running = (seq, time.monotonic())
        try:
            self.cancelled = False
            report = execute(self.app, body, progress=progress,
                             stop_flag=lambda: self.stopping or self.cancelled)
            events: list[Event] = [*self.events, RunEnded(0, seq, report)]
        except HardTimeout:
            events = [*self.events, SlotTimedOut(0, seq)]
        finally:
            self.running = None
            done.set()
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
        self.events = []
        return events

    def kill(self, slot: int, respawn: bool = True) -> None:
        self.pending = []

    def request_stop(self, slots: list[int]) -> None:
        self.stopping = True

    def request_cancel(self, slot: int) -> None:
        self.cancelled = True

    def shutdown(self) -> None:
        self.pending = []


# -- an event loop of the worker ------------------------------------------------------------
class LoopPool(Pool):
    """``async def`` jobs on an event loop in a thread of the worker itself: one process
    where prefork would be a supervisor and one forked child, for a worker whose jobs are
    all ``async def`` at concurrency 1 (the worker chooses it then, in place of prefork).
    As in a prefork child, ``async_slots`` jobs run at once and as many again wait their
    turn, a timeout cancels its job's task, a warm stop hands back the jobs not started and
    a cold one cancels the others. A job that blocks the loop cannot be stopped."""

    kind = "loop"
    batching = True
    stopped_how = "its task was cancelled"

    def __init__(self, app: App, size: int = 1) -> None:
        super().__init__(app, 1)
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self.outstanding = 0
        self.generation = 0
        """Bumped by ``kill``: what runs for an older one no longer reports."""
        self.stopping = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.tasks: set[asyncio.Task[None]] = set()  # in the loop's thread only
        self.waiting: deque[tuple[Item, int]] = deque()  # likewise
        self._switch_interval = sys.getswitchinterval()

    def start(self) -> None:
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, _LOOP_SWITCH_INTERVAL))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="jobmaster-loop",
                                       daemon=True)
        self.thread.start()

    def _call(self, func: Callable[..., None], *args: Any) -> None:
        """Run ``func(*args)`` in the loop's thread."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(func, *args)

    def idle_slots(self) -> list[int]:
        return [] if self.outstanding else [0]

    def submit(self, slot: int, items: Sequence[Item], *, concurrent: bool = False) -> None:
        self.outstanding += len(items)
        self._call(self._take, list(items), self.generation)

    @property
    def async_held(self) -> int:
        return 2 * self.async_slots

    def async_room(self, limit: int) -> list[tuple[int, int]]:
        return [(0, limit - self.outstanding)] if 0 < self.outstanding < limit else []

    def current(self, slot: int) -> tuple[int, float] | None:
        return None  # several run at once; each one's timeout cancels its task

    def poll(self, timeout: float) -> list[Event]:
        events: list[Event] = []
        try:
            events.append(self.events.get(timeout=timeout) if timeout > 0
                          else self.events.get_nowait())
            while True:
                events.append(self.events.get_nowait())
        except queue.Empty:
            pass
        for event in events:
            if isinstance(event, RunEnded | NotStarted):
                self.outstanding -= 1
        return events

    def kill(self, slot: int, respawn: bool = True) -> None:
        self.generation += 1
        self.outstanding = 0
        self._call(self._cancel)

    def request_stop(self, slots: list[int]) -> None:
        self.stopping = True
        self._call(self._hand_back)

    def shutdown(self) -> None:
        if self.loop is None or self.thread is None:
            return
        self.generation += 1
        self._call(self._cancel)
        self._call(self.loop.stop)
        self.thread.join(5.0)
        if not self.thread.is_alive():
            self.loop.close()
        sys.setswitchinterval(self._switch_interval)

    # -- in the loop's thread -----------------------------------------------------------
    def _take(self, items: list[Item], generation: int) -> None:
        if generation == self.generation:
            self.waiting.extend((item, generation) for item in items)
            self._next()

    def _next(self) -> None:
        if self.stopping:
            self._hand_back()
        while self.waiting and len(self.tasks) < max(self.async_slots, 1):
            item, generation = self.waiting.popleft()
            assert self.loop is not None
            task = self.loop.create_task(self._one(item, generation))
            self.tasks.add(task)
            task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:  # its turn passes to the next
        self.tasks.discard(task)
        self._next()

    async def _one(self, item: Item, generation: int) -> None:
        def progress(job_id: str, percent: int, message: str | None) -> None:
            self.events.put(SlotProgress(0, job_id, percent, message))

        report = await execute_async(self.app, item.body, progress=progress,
                                     stop_flag=lambda: self.stopping)
        if generation == self.generation:
            self.events.put(RunEnded(0, item.seq, report))

    def _hand_back(self) -> None:
        while self.waiting:
            item, generation = self.waiting.popleft()
            if generation == self.generation:
                self.events.put(NotStarted(0, item.seq))

    def _cancel(self) -> None:
        self.waiting.clear()
        for task in list(self.tasks):
            task.cancel()


POOLS: dict[str, type[Pool]] = {"prefork": PreforkPool, "threads": ThreadPool, "solo": SoloPool}
"""The pools a worker is asked for by name (``--pool``); ``LoopPool`` is chosen by the
worker itself."""
