"""The worker's supervisor: claims jobs from one agent, feeds a pool, records outcomes.

One thread runs the loop below. Claims come in batches with a lease; a heartbeat renews
the leases of every job held; outcomes are decided by pure code (``jobmaster.outcomes``)
and written in batches: first to the master (one upsert per batch), then to the agent
(ack / retry / dead-letter per batch). A crash between the two re-runs a job, never
loses one.

Shutdown: the first SIGTERM/SIGINT stops claiming, hands unstarted jobs back to the agent
and lets running ones finish for ``shutdown_grace`` seconds; a second signal (or the
grace running out) stops them now and hands them back too.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from jobmaster.agents.base import AgentMessage, Claimed
from jobmaster.envelope import Envelope, EnvelopeError
from jobmaster.exceptions import ConfigurationError, InvalidOptionError, JobmasterError
from jobmaster.fencing import Holder, fence
from jobmaster.master.rows import job_row
from jobmaster.middleware import Settled
from jobmaster.models import FINAL_STATUSES, JobError, JobStatus
from jobmaster.options import check_lane
from jobmaster.outcomes import (
    MAX_RETRY_WAIT,
    RETURNED,
    AgentAction,
    Cancelled,
    Decision,
    Lapsed,
    Lost,
    Outcome,
    Rejected,
    Released,
    RetryPolicy,
    Succeeded,
    Superseded,
    TimedOut,
    decide,
    explain,
)
from jobmaster.ratelimit import RUN_EARLY
from jobmaster.registry import definition_rows, lanes_banner
from jobmaster.worker import health
from jobmaster.worker.executor import safe_text
from jobmaster.worker.health import Vitals
from jobmaster.worker.messages import (
    Item,
    NotStarted,
    PoolEvent,
    SlotExited,
    SlotProgress,
    SlotTimedOut,
)
from jobmaster.worker.pool import POOLS, LoopPool, Pool, SoloPool
from jobmaster.worker.writer import MAX_BACKLOG, Batch, Writer

if TYPE_CHECKING:
    from jobmaster.app import App

log = logging.getLogger("jobmaster.worker")

_FLUSH_SECONDS = 0.05
_FLUSH_ROWS = 500
_REGISTER_SECONDS = 300.0  # refresh of the definitions registry's last_seen
_QUEUE_BEHIND = 0.05  # jobs shorter than this on average may wait in a slot behind a batch


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


@dataclass(slots=True)
class _Held:
    """A job this worker holds under a lease."""

    claim: Claimed
    env: Envelope
    seq: int = 0
    slot: int | None = None
    started: float | None = None  # wall time the job started, once known
    start_recorded: bool = False  # the master has (or will get) its "running" record
    claimed_at: float = field(default_factory=time.monotonic)


class Worker:
    """Runs jobs of one app from one agent. ``Worker(app).run()`` blocks until stopped."""

    def __init__(
        self,
        app: App,
        *,
        concurrency: int | None = None,
        lanes: Sequence[str] | None = None,
        agent: str | None = None,
        pool: str = "prefork",
        prefetch: int | None = None,
        async_slots: int | None = None,
        beat: bool = False,
        install_signals: bool = True,
        health_port: int | None = None,
    ) -> None:
        cfg = app.config
        self.app = app
        if pool not in POOLS:
            raise ConfigurationError(f"pool={pool!r} is unknown; use one of {sorted(POOLS)}")
        self.concurrency = concurrency or cfg.concurrency or os.cpu_count() or 1
        if self.concurrency < 1:
            raise ConfigurationError(f"concurrency={self.concurrency!r} must be >= 1")
        names = [n.strip() for lane in (lanes or ()) for n in lane.split(",") if n.strip()]
        try:
            self.lanes = [check_lane(n, "lane") for n in names] or [cfg.default_lane]
        except InvalidOptionError as exc:
            raise ConfigurationError(str(exc)) from None
        self.agent_name = agent or cfg.default_agent
        if self.agent_name not in cfg.agents:
            raise ConfigurationError(
                f"agent {self.agent_name!r} is not configured; agents are {sorted(cfg.agents)}"
            )
        self.pool_kind = pool
        self.prefetch = prefetch or cfg.prefetch
        self.async_slots = (async_slots or cfg.async_slots) if any(
            d.is_async for d in app.definitions.values()) else 0
        self.active_lanes = list(self.lanes)  # less the paused ones (``app.lanes.pause``)
        self.beat = beat
        self.install_signals = install_signals
        self.id = f"{cfg.name}@{socket.gethostname()}:{os.getpid()}"
        chosen = POOLS[pool]
        if pool == "prefork" and self.concurrency == 1 and app.definitions and all(
                d.is_async for d in app.definitions.values()) and not app.child_init_hooks \
                and cfg.max_jobs_per_child is None and cfg.max_memory_per_child is None:
            # nothing but async def jobs, one slot: its event loop in a thread of this
            # process instead of a forked child (half the memory, no pipe)
            chosen = LoopPool
            self.pool_kind = LoopPool.kind
        self.pool: Pool = chosen(app, 1 if pool == "solo" else self.concurrency)
        self.pool.async_slots = self.async_slots
        self._timeout_how = self.pool.stopped_how
        self._progressed: set[str] = set()
        if isinstance(self.pool, SoloPool):
            self.pool.keepalive = self._solo_heartbeat
            self.pool.keepalive_every = app.config.heartbeat
        self.held: dict[str, _Held] = {}
        self.waiting: deque[_Held] = deque()
        self.slots: dict[int, deque[_Held]] = {}  # dispatched, not yet reported, in order
        self.by_seq: dict[int, _Held] = {}
        self._seq = 0
        self.batch = Batch()
        self.processed = 0
        self.stopping = False
        self.cold = False
        self.grace_deadline: float | None = None
        self._last_flush = 0.0
        self._next_claim = 0.0
        self._claim_backoff = 0.01
        self._avg_duration = 0.05
        self._cancelled: dict[str, None] = {}
        # the last jobs this worker settled with a final status: (attempt, due, status)
        self._settled_here: OrderedDict[str, tuple[int, float, JobStatus]] = OrderedDict()
        self._cancel_checked_at: datetime | None = None
        self._next_cancel_check = 0.0
        self._next_heartbeat = 0.0
        self._next_registration = 0.0
        self._started_at = datetime.now(UTC)
        self._beat_service: Any = None
        self.vitals = Vitals(heartbeat=cfg.heartbeat)
        self.health_port = health_port

    # -- life cycle --------------------------------------------------------------------
    def stop(self, cold: bool = False) -> None:
        """Ask the worker to stop: warm (finish running jobs) or cold (stop them now)."""
        if self.stopping or cold:
            self.cold = True
        if not self.stopping:
            self.pool.request_stop(list(self.slots))  # ctx.should_stop() turns true
        self.stopping = self.vitals.stopping = True
        if self.grace_deadline is None:
            self.grace_deadline = time.monotonic() + self.app.config.shutdown_grace

    def _on_signal(self, signum: int, frame: Any) -> None:
        cold = self.stopping
        log.warning("received %s: %s shutdown", signal.Signals(signum).name,
                    "cold" if cold else "warm")
        self.stop(cold=cold)

    def run(self) -> None:
        """Claim and run jobs until ``stop()`` or a signal.

        The master is made ready in a start-up thread while this one opens the agent and
        starts the pool. Nothing is claimed before that thread has learned which jobs were
        cancelled and which lanes are paused (a cancelled job never runs, a paused lane
        keeps its jobs); then it registers the definitions while the first jobs run, and
        the writer writes nothing before it is done. The loop's first heartbeat reports the
        worker (it reads what the loop holds, so it runs in the loop). A master that does
        not become ready stops the worker with its error, as ``Master.wait_ready`` raises
        it."""
        import threading

        app = self.app
        if self.health_port is not None:
            try:
                health.serve(self.vitals, self.health_port)
            except OSError as exc:
                raise ConfigurationError(f"health port {self.health_port}: {exc}") from None
        self.agent = app.agent(self.agent_name)
        if self.install_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        self.pool.start()  # forks: before any thread of the worker's own
        known = threading.Event()  # cancellations and paused lanes learned: claim
        failed: list[BaseException] = []

        def start_up() -> None:
            try:
                master = app.master
                master.wait_ready(who=f"worker {self.id}")
                self._refresh_cancellations(force=True)
                try:
                    self._follow_pauses(master.paused_lanes(app.name))
                except Exception as exc:  # noqa: BLE001 - the heartbeat asks again
                    log.warning("could not read the paused lanes from the master: %s", exc)
            except BaseException as exc:
                failed.append(exc)
                return
            finally:
                known.set()
            self._register_definitions()

        starting = threading.Thread(target=start_up, name="jobmaster-start-up", daemon=True)
        starting.start()
        while not known.wait(0.1) and not self.stopping:
            pass
        if failed or not known.is_set():  # the master failed, or a signal came first
            self.pool.shutdown()
            if failed:
                raise failed[0]
            return
        self.writer = Writer(lambda: app.master, self.agent, self.agent_name, after=starting)
        if self.beat:
            from jobmaster.beat import Beat

            self._beat_service = Beat(app, embedded=True)
            self._beat_service.start_thread()
        log.info("worker %s: %d %s slot(s), lanes %s, agent %s", self.id, self.pool.size,
                 self.pool_kind, ",".join(self.lanes), self.agent_name)
        for line in lanes_banner(app.definitions.values(), self.lanes, app.config.default_lane):
            log.info("worker %s %s", self.id, line)
        try:
            self._loop()
        finally:
            self._shutdown()

    def _loop(self) -> None:
        while True:
            now = self.vitals.tick = time.monotonic()
            if self.stopping:
                if not self.slots or self.cold or (
                    self.grace_deadline is not None and now >= self.grace_deadline
                ):
                    return
                if self.waiting:
                    self._release(list(self.waiting))
                    self.waiting.clear()
            else:
                self._fill()
            self._dispatch()
            timeout = self._poll_timeout()
            for event in self.pool.poll(timeout):
                self._on_event(event)
            self._check_timeouts()
            self._refresh_cancellations()
            self._heartbeat()
            self._maybe_flush()

    def _poll_timeout(self) -> float:
        if self.waiting and self.pool.idle_slots():
            return 0.0
        if len(self.batch) and time.monotonic() - self._last_flush >= _FLUSH_SECONDS:
            return 0.0
        if not self.stopping and self.writer.backlog >= MAX_BACKLOG:
            return 0.005  # the master is behind, so claim() did not wait: wait here, not spin
        if not self.stopping and (not self.slots or self.pool.idle_slots()) \
                and len(self.held) < self._target():
            return 0.0  # claim() did the waiting (a slot may take a second batch)
        limit = 0.05
        for slot in self.slots:
            deadline = self._deadline(slot)
            if deadline is not None:
                limit = min(limit, max(deadline - time.monotonic(), 0.0))
        return limit

    def _deadline(self, slot: int) -> float | None:
        """Monotonic time the job running in ``slot`` runs out of time, if it has a limit."""
        current = self.pool.current(slot)
        if current is None:
            return None
        held = self.by_seq.get(current[0])
        if held is None or held.env.timeout is None:
            return None
        return current[1] + held.env.timeout

    def _target(self) -> int:
        """How many jobs to hold: ``prefetch`` per slot, more when jobs are short (about a
        quarter second of work per slot), so short jobs are claimed in large batches; and
        for ``async def`` jobs, what a slot runs and as many waiting their turn in it."""
        base = self.pool.size * (self.prefetch + self.pool.async_held)
        per_slot = int(0.25 / max(self._avg_duration, 1e-4))
        return max(base, min(self.pool.size * 256, self.pool.size * per_slot))

    def _fill(self) -> None:
        target = self._target()
        capacity = target - len(self.held)
        if capacity <= 0 or self.writer.backlog >= MAX_BACKLOG:
            return  # enough in hand, or the master is behind: claim no more for now
        now = time.monotonic()
        if not self.slots and not self.waiting:
            self._flush()  # nothing else to do: record everything before blocking
            wait = max(min(1.0, self._next_heartbeat - now), 0.0)
        elif self.pool.idle_slots() and not self.waiting:
            wait = 0.02  # a slot is free: block briefly, running jobs report right after
        else:
            # every slot busy: top up the reserve once it is half used, without blocking,
            # backing off while the agent has nothing so long jobs never busy-poll it
            if now < self._next_claim or len(self.waiting) > target // 2:
                return
            wait = 0.0
        if not self.active_lanes:  # every lane it serves is paused
            time.sleep(wait)
            return
        try:
            claims = self.agent.claim(
                self.active_lanes, capacity, lease_seconds=self.app.config.lease_seconds,
                consumer=self.id, wait=wait,
            )
        except JobmasterError as exc:
            log.error("claim from agent %s failed: %s; retrying", self.agent_name, exc)
            time.sleep(1.0)
            return
        except Exception as exc:  # noqa: BLE001 - a driver's own error must not stop the worker
            log.error("claim from agent %s failed (%s: %s); retrying", self.agent_name,
                      type(exc).__name__, exc)
            time.sleep(1.0)
            return
        if claims:
            self._claim_backoff = 0.01
            self._accept(claims)
        else:
            self._claim_backoff = min(self._claim_backoff * 2, 0.5)
            self._next_claim = time.monotonic() + self._claim_backoff

    def _accept(self, claims: list[Claimed]) -> None:
        definitions = self.app.definitions
        signer = self.app.producer.signer
        limited: dict[str, list[_Held]] = {}
        holders = self._holders([c for c in claims if c.deliveries > 1 or c.fence])
        for job_id, holder in holders.items():
            if holder.status is JobStatus.CANCELLED:  # while its worker was lost, say
                self._cancelled[job_id] = None
        now = time.time()
        for claim in claims:
            try:
                env = Envelope.from_bytes(claim.message.body)
            except EnvelopeError as exc:
                self._settle(claim, None, Rejected(JobError("InvalidEnvelope", str(exc))))
                continue
            except Exception as exc:  # noqa: BLE001 - nothing read back may stop the worker
                self._settle(claim, None, Rejected(JobError(
                    "InvalidEnvelope", f"message could not be read: {type(exc).__name__}")))
                continue
            if env.id != claim.message.id:
                self._settle(claim, None, Rejected(JobError(
                    "InvalidEnvelope", f"message {claim.message.id!r} carries the envelope of "
                    f"job {env.id!r}")))
                continue
            if signer is not None and not signer.verify(env):
                self._settle(claim, env, Rejected(JobError("SignatureError", (
                    "envelope is unsigned" if env.signature is None else
                    "envelope signature does not match this app's keys")
                    + ": refused without running it (signed by another app or secret, "
                    "altered, or replayed under another id, definition or cluster)")))
                continue
            if env.definition_id not in definitions:
                reason = (f"unknown job definition {env.definition_id!r}: this worker's app "
                          f"{self.app.name!r} does not register it")
                self._settle(claim, env, Rejected(JobError("UnknownDefinitionError", reason)))
                continue
            holding = env.id in self.held
            mine = self._settled_here.get(env.id)
            if holding or claim.deliveries > 1 or claim.fence or mine is not None:
                superseded = fence(
                    holders.get(env.id), me=self.id, holding=holding, now=now,
                    alive_seconds=self.app.config.lease_seconds,
                    settled_here=mine[2] if mine and mine[:2] == (env.attempt, env.due)
                    else None)
                if superseded is not None:
                    self._settle(claim, env, superseded, ran=False)
                    continue
            held = _Held(claim, env)
            self.held[env.id] = held
            interval = definitions[env.definition_id].handling.rate_limit
            if interval is not None and env.permit_at is None:
                limited.setdefault(env.definition_id, []).append(held)
                continue
            self.waiting.append(held)
        for definition_id, helds in limited.items():
            self._rate_limit(definition_id, helds)

    def _rate_limit(self, definition_id: str, helds: list[_Held]) -> None:
        """Reserve start slots for jobs of a rate-limited definition: those due now run,
        the others go back to their bucket until their slot (carrying it)."""
        interval = self.app.definitions[definition_id].handling.rate_limit or 0.0
        try:
            slots = self.app.master.reserve_slots(f"rate:{self.app.name}:{definition_id}",
                                                  len(helds), interval)
        except Exception as exc:  # noqa: BLE001 - hold them back rather than overrun
            log.warning("could not reserve rate-limit slots of %s (%s); trying again in "
                        "%.0f s", definition_id, exc, _RATE_RETRY)
            slots = [time.time() + _RATE_RETRY] * len(helds)
            permits = False
        else:
            permits = True
        now = time.time()
        for held, slot in zip(helds, slots, strict=True):
            if permits and slot <= now + RUN_EARLY:
                self.waiting.append(held)
                continue
            self.held.pop(held.env.id, None)
            body = replace(held.env, permit_at=slot).to_bytes() if permits else None
            self._settle(held.claim, held.env, Released(
                f"rate limit {definition_id!r}: its turn is at "
                f"{datetime.fromtimestamp(slot, UTC).isoformat(timespec='milliseconds')}",
                until=slot, body=body), ran=False)

    def _holders(self, claims: list[Claimed]) -> dict[str, Holder]:
        """What the master holds for deliveries that may duplicate a live or settled run
        (delivered again, or fenced by their agent), in one query: ``jobmaster.fencing``
        decides from it. If the master cannot tell, they run (at least once)."""
        if not claims:
            return {}
        try:
            return self.app.master.job_holders([c.message.id for c in claims])
        except Exception as exc:  # noqa: BLE001 - they run, as an unfenced delivery would
            log.warning("could not check %d redelivered job(s) against the master: %s",
                        len(claims), exc)
            return {}

    def _refresh_cancellations(self, force: bool = False) -> None:
        """Learn which jobs were cancelled: all never-started ones at start, then those
        changed since the last look (every second), so no claim waits on the master."""
        now = time.monotonic()
        if not force and now < self._next_cancel_check:
            return
        self._next_cancel_check = now + 1.0
        wall = datetime.now(UTC)
        since = None if self._cancel_checked_at is None else \
            self._cancel_checked_at - timedelta(seconds=5)
        try:
            ids = self.app.master.cancelled_jobs(self.app.name, since=since)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not check cancellations: %s", exc)
            return
        self._cancel_checked_at = wall
        for job_id in ids:
            self._cancelled[job_id] = None
        while len(self._cancelled) > 200_000:
            del self._cancelled[next(iter(self._cancelled))]
        for slot in self.slots:
            current = self.pool.current(slot)
            held = None if current is None else self.by_seq.get(current[0])
            if held is not None and held.env.id in self._cancelled:
                self.pool.request_cancel(slot)

    def _next_waiting(self) -> _Held | None:
        lapse = self.app.config.lease_seconds * _LAPSE_SHARE
        while self.waiting:
            held = self.waiting.popleft()
            if held.env.id in self._cancelled:
                self._finish(held, Cancelled())  # cancelled while queued: never runs
                continue
            unrenewed = time.monotonic() - max(held.claimed_at, self.vitals.agent_ok or 0.0)
            if unrenewed > lapse:  # cut off from the agent: another worker may run it
                self._finish(held, Lapsed(unrenewed), ran=False)
                continue
            return held
        return None

    def _dispatch(self) -> None:
        if self.stopping:
            return
        if self.async_slots and self.waiting:
            self._top_up_async()
        # while jobs are short, a slot holds a second batch behind the one it runs, so it
        # never waits for this loop between them; a long one would make it wait too long
        self.pool.depth = 2 if self._avg_duration < _QUEUE_BEHIND else 1
        idle = self.pool.idle_slots()
        if not idle or not self.waiting:
            return
        # short jobs travel in small batches: about 5 ms of work per message to a child
        size = 1
        if self.pool.batching and self._avg_duration < 0.0025:
            size = min(32, int(0.005 / max(self._avg_duration, 1e-4)),
                       max(len(self.waiting) // len(idle), 1))
        definitions = self.app.definitions
        for slot in idle:
            items: list[Item] = []
            queue_: deque[_Held] = deque()
            concurrent = (self.async_slots > 0 and self.pool.batching and self.waiting
                          and definitions[self.waiting[0].env.definition_id].is_async)
            limit = self.pool.async_held if concurrent else size
            while len(items) < limit:
                if concurrent and self.waiting and \
                        not definitions[self.waiting[0].env.definition_id].is_async:
                    break  # a group runs async jobs only; the sync one goes next
                held = self._next_waiting()
                if held is None:
                    break
                self._seq += 1
                held.seq, held.slot = self._seq, slot
                self.by_seq[held.seq] = held
                queue_.append(held)
                items.append(Item(held.seq, held.claim.message.body, held.env.timeout,
                                  bool(concurrent)))
            if not items:
                return
            if len(items) == 1 and not concurrent and slot not in self.slots:
                # a lone job is recorded running now; batched ones (and one queued behind
                # another batch) at the end
                held = queue_[0]
                held.started = time.time()
                held.start_recorded = True
                self._record(held.env, JobStatus.RUNNING, started=held.started, starts=1)
                self._event(held.env, JobStatus.RUNNING, held.started,
                            reason=_redelivered(held.claim, held.env))
            self.slots.setdefault(slot, deque()).extend(queue_)  # behind what it holds
            self.pool.submit(slot, items, concurrent=bool(concurrent))
            if isinstance(self.pool, SoloPool):
                self._flush()  # the job runs inside the next poll: record "running" first

    def _top_up_async(self) -> None:
        """Hand more ``async def`` jobs to processes already running some, up to
        ``pool.async_held`` each: a slot's loop takes new jobs while the others await,
        and starts those beyond ``async_slots`` as others end."""
        definitions = self.app.definitions
        for slot, room in self.pool.async_room(self.pool.async_held):
            items: list[Item] = []
            while len(items) < room and self.waiting and \
                    definitions[self.waiting[0].env.definition_id].is_async:
                held = self._next_waiting()
                if held is None:
                    break
                self._seq += 1
                held.seq, held.slot = self._seq, slot
                self.by_seq[held.seq] = held
                self.slots.setdefault(slot, deque()).append(held)
                items.append(Item(held.seq, held.claim.message.body, held.env.timeout, True))
            if items:
                self.pool.submit(slot, items, concurrent=True)

    # -- outcomes -------------------------------------------------------------------------
    def _take(self, slot: int, seq: int) -> _Held | None:
        """The job ``seq`` of ``slot``, no longer outstanding."""
        held = self.by_seq.pop(seq, None)
        queue_ = self.slots.get(slot)
        if queue_ is not None:
            if held is not None and queue_ and queue_[0] is held:
                queue_.popleft()
            elif held is not None and held in queue_:
                queue_.remove(held)
            if not queue_:
                del self.slots[slot]
        return held

    def _on_event(self, event: PoolEvent) -> None:
        if isinstance(event, SlotProgress):
            self.batch.progress[event.job_id] = {
                "id": event.job_id, "progress": event.percent,
                "progress_message": None if event.message is None
                else safe_text(event.message, 500)}
            self._progressed.add(event.job_id)
            return
        if isinstance(event, SlotExited):
            self._slot_lost(event.slot, event.reason, event.running_seq)
            return
        held = self._take(event.slot, event.seq)
        if held is None:
            return
        if isinstance(event, NotStarted):
            self._finish(held, Released("the worker is stopping"), ran=False)
        elif isinstance(event, SlotTimedOut):
            self._finish(held, TimedOut(held.env.timeout or 0.0, self._timeout_how))
        else:
            report = event.report
            if held.started is None or not held.start_recorded:
                held.started = report.started
            outcome = report.outcome()
            # the job's own run time, as its process measured it: the supervisor's clock
            # would add the time the report waited for it, and shrink batches as it slows
            if not self.app.definitions[held.env.definition_id].is_async:  # they overlap
                self._avg_duration += 0.05 * (report.finished - report.started
                                              - self._avg_duration)
            # a run ended by middleware before its handler (expiry) never started
            self._finish(held, outcome, ran=not isinstance(outcome, Cancelled)
                         or outcome.reason == RETURNED)

    def _slot_lost(self, slot: int, reason: str, running_seq: int | None,
                   outcome: Outcome | None = None) -> None:
        """A slot's process died or was killed: its running job ends with ``outcome``
        (``Lost`` by default). A slot runs its jobs in order, so those queued behind the
        running one never started: they wait here for another slot. The others it had not
        reported (run, or not known to be unstarted) go back to the agent."""
        queue_ = self.slots.pop(slot, deque())
        for held in queue_:
            self.by_seq.pop(held.seq, None)
        ordered = list(queue_)
        at = next((i for i, h in enumerate(ordered) if h.seq == running_seq), None)
        victim = None if at is None else ordered[at]
        behind = [] if at is None else [h for h in ordered[at + 1:] if not h.start_recorded]
        if victim is None and ordered and outcome is not None:
            victim = ordered[0]
        kept = {id(h) for h in behind}
        for held in queue_:
            if held is not victim and id(held) not in kept:
                self._finish(held, Released(f"{reason} before it started"), ran=False)
        self.waiting.extendleft(reversed(behind))  # first in line, as they were claimed
        if victim is not None:
            if victim.started is None:
                victim.started = time.time()
            self._finish(victim, outcome or Lost(f"{reason} while running job {victim.env.id}"))

    def _finish(self, held: _Held, outcome: Outcome, *, ran: bool = True) -> None:
        """A held job ended: no longer held, then settled. ``ran=False``: its handler
        never started, so a start recorded at dispatch is taken back."""
        self.held.pop(held.env.id, None)
        now = time.time()
        if ran and held.started is not None and isinstance(outcome, Lost | TimedOut):
            self._avg_duration += 0.05 * (now - held.started - self._avg_duration)
        self._settle(held.claim, held.env, outcome, started=held.started if ran else None,
                     start_recorded=held.start_recorded, ran=ran)

    def _settle(self, claim: Claimed, env: Envelope | None, outcome: Outcome, *,
                started: float | None = None, start_recorded: bool = False,
                ran: bool = True) -> None:
        """The one place every job ends: decide what follows from ``outcome``, record it
        in the master, tell the agent, log it, and show it to middleware."""
        now = time.time()
        if isinstance(outcome, Superseded | Lapsed):  # the job did not end here
            assert env is not None
            decision = decide(outcome, attempt=env.attempt, policy=_NO_RETRIES, now=now)
            if decision.action is AgentAction.ACK:
                self.batch.acks.append(claim)
            log.info("job %s %s %s", env.id, env.definition_id, explain(
                outcome, decision, attempt=env.attempt, max_retries=0),
                extra={"job_id": env.id, "definition_id": env.definition_id})
            return
        if env is None:
            decision = decide(outcome, attempt=1, policy=_NO_RETRIES, now=now)
        elif type(outcome) is Succeeded:  # the common case: no policy to weigh
            decision = _SUCCEEDED
            self._write(claim, env, outcome, decision, started, now, start_recorded, ran)
        else:
            options = env.options
            policy = RetryPolicy(
                options.max_retries or 0, options.retry_delay or 0.0,
                options.retry_backoff or 1.0,
                self.app.config.retry_jitter if options.retry_jitter is None
                else options.retry_jitter,
                MAX_RETRY_WAIT if options.retry_backoff_max is None
                else options.retry_backoff_max)
            decision = decide(outcome, attempt=env.attempt, policy=policy, now=now)
            if decision.action in _AGAIN and env.id in self._cancelled:
                outcome = Cancelled()  # cancelled while held: it ends here, never runs again
                decision = decide(outcome, attempt=env.attempt, policy=policy, now=now)
            self._write(claim, env, outcome, decision, started, now, start_recorded, ran,
                        policy.max_retries)
        batch = self.batch
        action = decision.action
        if action is AgentAction.ACK:
            batch.acks.append(claim)
            if env is not None and decision.status in FINAL_STATUSES:
                self._settled_here[env.id] = (env.attempt, env.due, decision.status)
                if len(self._settled_here) > _SETTLED_HERE:
                    self._settled_here.popitem(last=False)
        elif action is AgentAction.RETRY:
            assert env is not None and decision.retry_at is not None
            batch.retries.append((claim, env.next_attempt(decision.retry_at).to_message()))
        elif action is AgentAction.RELEASE:
            message = claim.message
            held_back = outcome if isinstance(outcome, Released) else Released()
            batch.retries.append((claim, AgentMessage(
                message.id, message.lane, message.priority, held_back.until or now,
                held_back.body or message.body)))
        else:
            error = decision.error
            batch.dead.append((claim, "" if error is None else f"{error.type}: {error.message}"))
        if action is not AgentAction.RELEASE:
            self.processed += 1
        _log(env, claim, decision, now)
        if self.app.pipeline.on_outcome:
            self.app.pipeline.settled(Settled(
                env.id if env is not None else claim.message.id, env, outcome, decision,
                self.id, started, now))

    def _write(self, claim: Claimed, env: Envelope, outcome: Outcome, decision: Decision,
               started: float | None, now: float, start_recorded: bool, ran: bool,
               max_retries: int = 0) -> None:
        """The master's records of a settled job, and its audit trail."""
        unstart = start_recorded and not ran  # "running" was recorded, but it never ran
        reason = explain(outcome, decision, attempt=env.attempt, max_retries=max_retries)
        if decision.action is AgentAction.RELEASE:
            if start_recorded:
                self._record(env, JobStatus.QUEUED, starts=-1 if unstart else 0,
                             unstart=unstart)
                self._event(env, JobStatus.QUEUED, now, reason=reason)
            return
        result = outcome.result if isinstance(outcome, Succeeded) else None
        starts = -1 if unstart else 0 if start_recorded or started is None else 1
        self._record(env, decision.status, started=started, finished=now,
                     error=decision.error, result=result, retry_at=decision.retry_at,
                     starts=starts, unstart=unstart)
        if started is not None and not start_recorded:  # ran in a batch: its start too
            self._event(env, JobStatus.RUNNING, started, reason=_redelivered(claim, env))
        if env.id in self._cancelled and decision.status is not JobStatus.CANCELLED:
            reason = (f"{reason}; " if reason else "") + (
                "it ran to its end after it was cancelled: the job stays cancelled")
        self._event(env, decision.status, now, error=decision.error, reason=reason)
        error = decision.error
        if error is not None:
            self.batch.attempts.append({
                "job_id": env.id, "attempt": env.attempt, "worker": self.id,
                "started_at": _dt(started), "finished_at": _dt(now),
                "outcome": decision.status.value, "error_type": error.type[:200],
                "error_message": safe_text(error.message, 10_000),
                "error_traceback": safe_text(error.traceback, 50_000),
            })

    def _event(self, env: Envelope, status: JobStatus, at: float, *,
               error: JobError | None = None, reason: str | None = None) -> None:
        """Add a status the job entered to its audit trail (written with its record)."""
        from jobmaster.master.repository import event_row

        self.batch.events.append(event_row(
            env.id, status.value, datetime.fromtimestamp(at, UTC), env.attempt,
            worker=self.id, error_type=None if error is None else error.type,
            error_message=None if error is None else error.message, reason=reason))

    def _record(
        self,
        env: Envelope,
        status: JobStatus,
        *,
        started: float | None = None,
        finished: float | None = None,
        error: JobError | None = None,
        result: bytes | None = None,
        retry_at: float | None = None,
        starts: int = 0,
        unstart: bool = False,
    ) -> None:
        row = self.batch.records.get(env.id)
        if row is None:
            row = job_row(env, status, datetime.now(UTC))
            row["attempts"] = 0
        row["status"] = status.value
        row["worker"] = self.id
        row["updated_at"] = datetime.now(UTC)
        row["attempts"] += starts
        if started is not None:
            row["started_at"] = _dt(started)
        elif unstart:
            row["started_at"] = None
        row["finished_at"] = _dt(finished) if status.is_final else None
        if retry_at is not None:
            row["scheduled_at"] = _dt(retry_at)
        if error is not None:
            row["error_type"] = safe_text(error.type, 200)
            row["error_message"] = safe_text(error.message, 10_000)
            row["error_traceback"] = safe_text(error.traceback, 50_000)
        elif status is JobStatus.RUNNING:
            row["error_type"] = row["error_message"] = row["error_traceback"] = None
        row["result"] = result
        progress = self.batch.progress.pop(env.id, None)
        if progress is not None:
            row["progress"] = progress["progress"]
            row["progress_message"] = progress["progress_message"]
        if status.is_final or status is JobStatus.RETRYING:
            if status is JobStatus.SUCCEEDED and env.id in self._progressed:
                row["progress"] = 100  # a job that reported progress and finished is done
            self._progressed.discard(env.id)
        self.batch.records[env.id] = row

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        for slot in list(self.slots):
            deadline = self._deadline(slot)
            if deadline is None or now < deadline:
                continue
            current = self.pool.current(slot)
            held = None if current is None else self.by_seq.get(current[0])
            if held is None:
                continue
            log.error("job %s %s exceeded its timeout of %g s; stopping it", held.env.id,
                      held.env.definition_id, held.env.timeout or 0,
                      extra={"job_id": held.env.id, "definition_id": held.env.definition_id})
            self.pool.kill(slot)
            self._slot_lost(slot, "timeout", held.seq,
                            TimedOut(held.env.timeout or 0.0, self._timeout_how))

    def _release(self, helds: list[_Held], reason: str = "the worker is stopping") -> None:
        """Hand jobs back to the agent, runnable at once, not counted as attempts."""
        for held in helds:
            self._finish(held, Released(reason))

    # -- writing ----------------------------------------------------------------------------
    def _maybe_flush(self) -> None:
        if not len(self.batch) and not self.batch.progress:
            return
        if len(self.batch) >= _FLUSH_ROWS or time.monotonic() - self._last_flush >= _FLUSH_SECONDS:
            self._flush()

    def _flush(self) -> None:
        """Hand the batch to the writer thread (master first, then the agent)."""
        batch = self.batch
        self._last_flush = time.monotonic()
        if not len(batch) and not batch.progress and not batch.attempts:
            return
        self.batch = Batch()
        self.writer.submit(batch)

    def _solo_heartbeat(self) -> None:
        """The heartbeat while a solo job runs (from the pool's helper thread): renew the
        leases, tell the master this worker lives, and pass on a cancellation."""
        vitals = self.vitals
        vitals.tick = time.monotonic()  # a solo job runs in place of the loop
        claims = [h.claim for h in list(self.held.values())]
        if claims:
            self.agent.extend(claims, self.app.config.lease_seconds)
        vitals.agent_ok = time.monotonic()
        master = self.app.master
        master.worker_seen(self._worker_row("running"))
        vitals.master_ok = time.monotonic()
        current = self.pool.current(0)
        held = None if current is None else self.by_seq.get(current[0])
        if held is not None and master.job_status(held.env.id) == JobStatus.CANCELLED.value:
            self.pool.request_cancel(0)

    def _heartbeat(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self.app.config.heartbeat
        # jobs whose outcome is not yet written keep their lease too: a slow or down
        # master must not make finished jobs run again elsewhere
        claims = [h.claim for h in self.held.values()]
        claims += self.batch.acks + [c for c, _ in self.batch.retries]
        claims += [c for c, _ in self.batch.dead]
        claims += self.writer.claims()
        try:
            if claims:
                self.agent.extend(claims, self.app.config.lease_seconds)
            self.vitals.agent_ok = time.monotonic()
        except Exception as exc:  # noqa: BLE001
            log.error("could not renew leases on agent %s: %s", self.agent_name, exc)
        try:
            self.app.master.worker_seen(self._worker_row("stopping" if self.stopping
                                                         else "running"))
            self.vitals.master_ok = time.monotonic()
            self._follow_pauses(self.app.master.paused_lanes(self.app.name))
        except Exception as exc:  # noqa: BLE001
            log.warning("could not report to the master: %s", exc)
        self._register_definitions()

    def _follow_pauses(self, paused: set[str]) -> None:
        active = [lane for lane in self.lanes if lane not in paused]
        if active != self.active_lanes:
            stopped = sorted(set(self.active_lanes) - set(active))
            started = sorted(set(active) - set(self.active_lanes))
            log.warning("worker %s: lanes paused %s, resumed %s; claiming from %s", self.id,
                        ",".join(stopped) or "-", ",".join(started) or "-",
                        ",".join(active) or "none")
            self.active_lanes = active

    def _register_definitions(self) -> None:
        """Register every definition of the app in the master's registry (one upsert), at
        start and again every ``_REGISTER_SECONDS`` to refresh ``last_seen``."""
        now = time.monotonic()
        if now < self._next_registration:
            return
        self._next_registration = now + _REGISTER_SECONDS
        rows = definition_rows(self.app.definitions.values(), cluster=self.app.name,
                               lanes=self.lanes, hostname=socket.gethostname(),
                               worker=self.id, at=datetime.now(UTC))
        try:
            self.app.master.register_definitions(rows)
        except Exception as exc:  # noqa: BLE001 - jobs still run; retried next heartbeat
            self._next_registration = now + self.app.config.heartbeat
            log.warning("could not register definitions in the master: %s", exc)

    def _worker_row(self, status: str) -> dict[str, Any]:
        from jobmaster import __version__

        # the jobs handed to a slot and not yet reported: running, or next in that slot
        running = [] if status == "stopped" else \
            [h.env.id for queue_ in list(self.slots.values()) for h in list(queue_)][:1000]
        return {
            "id": self.id, "cluster": self.app.name, "hostname": socket.gethostname(),
            "pid": os.getpid(), "agent": self.agent_name, "lanes": self.lanes,
            "concurrency": self.pool.size, "status": status, "started_at": self._started_at,
            "last_seen": datetime.now(UTC), "processed": self.processed,
            "pool": self.pool_kind, "version": __version__, "running": running,
        }

    def _shutdown(self) -> None:
        if self._beat_service is not None:
            self._beat_service.stop()
        if self.slots:
            log.warning("stopping %d running job(s); they go back to the agent",
                        len(self.slots))
            for slot, queue_ in list(self.slots.items()):
                self.pool.kill(slot, respawn=False)
                self._release(list(queue_))
            self.slots.clear()
            self.by_seq.clear()
        if self.waiting:
            self._release(list(self.waiting))
            self.waiting.clear()
        self.pool.shutdown()
        self._flush()
        if not self.writer.close(timeout=max(self.app.config.shutdown_grace, 5.0)):
            log.error("some outcomes could not be written; their jobs run again after their "
                      "lease")
        try:
            self.app.master.worker_seen(self._worker_row("stopped"))
        except Exception as exc:  # noqa: BLE001
            log.warning("could not report shutdown to the master: %s", exc)
        self.app.flush()
        log.info("worker %s stopped after %d job(s)", self.id, self.processed)


_NO_RETRIES = RetryPolicy(0, 0.0, 1.0, 0.0)
_LAPSE_SHARE = 0.8
"""A held job whose claim went unrenewed for this share of the lease is not started."""
_SETTLED_HERE = 20_000
"""Jobs a worker remembers having settled, to drop their duplicate deliveries itself."""
_RATE_RETRY = 5.0
"""Seconds a rate-limited job waits when the master could not be asked for its slot."""
_AGAIN = (AgentAction.RETRY, AgentAction.RELEASE)
_SUCCEEDED = Decision(JobStatus.SUCCEEDED)


def _redelivered(claim: Claimed, env: Envelope) -> str | None:
    """The audit-trail reason of a start that is not its attempt's first delivery (agents
    that keep one count of deliveries across a job's retries count one per attempt)."""
    if claim.deliveries <= max(1, env.attempt):
        return None
    return (f"delivery {claim.deliveries}: an earlier delivery was not settled (its worker "
            "stopped or was lost); recovered")


def _short(error: JobError | None) -> str:
    if error is None:
        return ""
    return f"{error.type}: {error.message}"[:300]


def _log(env: Envelope | None, claim: Claimed, decision: Decision, now: float) -> None:
    status, error = decision.status, decision.error
    if env is None:
        log.error("dead-lettered message %s: %s", claim.message.id, _short(error))
        return
    extra = {"job_id": env.id, "definition_id": env.definition_id, "attempt": env.attempt}
    if decision.action is AgentAction.DEAD_LETTER:
        log.error("dead-lettered job %s %s: %s", env.id, env.definition_id, _short(error),
                  extra=extra)
    elif status is JobStatus.RETRYING:
        log.warning("job %s %s attempt %d failed (%s); retrying in %.1f s", env.id,
                    env.definition_id, env.attempt, _short(error),
                    (decision.retry_at or now) - now, extra=extra)
    elif status is JobStatus.FAILED:
        log.error("job %s %s failed after %d attempt(s): %s", env.id, env.definition_id,
                  env.attempt, _short(error), extra=extra)
    elif log.isEnabledFor(logging.DEBUG):
        log.debug("job %s %s %s", env.id, env.definition_id, status, extra=extra)
