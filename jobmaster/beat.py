"""Beat: the clock of a cluster.

Any number of beats may run; the one holding the ``beat:<cluster>`` lease in the master
leads, and every write it makes is fenced on the lease's epoch. The leader, every tick:

1. **materialises** due occurrences of recurring schedules as ``scheduled`` jobs (the
   unique key on (cluster, schedule, occurrence) makes a duplicate impossible),
2. **promotes** ``scheduled`` jobs that are about due to their agents, then marks them
   ``queued`` (a crash in between pushes again; agents ignore a job they already hold),
3. **reaps** jobs recorded ``running`` on workers that stopped heart-beating, pushing them
   again, and marks those workers ``lost``,
4. **cleans up** finished jobs older than the ``retention`` of their status,
5. **reconciles**: records jobs an agent holds that the master does not know (a producer
   killed before its write-behind), a page of each agent every ``RECONCILE_EVERY`` seconds.

On PostgreSQL and MySQL the leader also holds a session lock (``master.session_lock``),
which the database releases the moment the leader's connection ends: standby beats try it
every ``FOLLOW_POLL`` seconds and the first to get it takes the lease over at once, with a
new epoch, so a killed leader is replaced in a fraction of a second. On SQLite, followers
try the lease every tick and take over once a dead leader's lease expired
(``beat_lease_seconds``). The leader ticks every ``beat_interval``, and sooner when a
schedule fires sooner, so occurrences are materialised on time.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from jobmaster.envelope import Envelope, EnvelopeError
from jobmaster.exceptions import JobmasterError
from jobmaster.master.repository import Fence, LeadershipLost
from jobmaster.master.rows import envelope_from_row, job_row
from jobmaster.master.session_lock import SessionLock, session_lock
from jobmaster.middleware.canvas import sweep_workflows
from jobmaster.models import JobStatus
from jobmaster.options import NO_OPTIONS
from jobmaster.schedules import (
    MisfirePolicy,
    OverlapPolicy,
    Schedule,
    apply_overlap,
    continuous_fire,
    due_occurrences,
)
from jobmaster.scheduling import parse_stored, stored_job_options

if TYPE_CHECKING:
    from jobmaster.app import App

log = logging.getLogger("jobmaster.beat")

_PROMOTE_BATCH = 2000
RECONCILE_EVERY = 5.0
"""Seconds between two reads of the agents for jobs the master does not know."""
RECONCILE_PAGE = 1000
"""Messages read from each agent per reconciliation."""
FOLLOW_POLL = 0.1
"""Seconds between a standby beat's tries of the session lock (PostgreSQL, MySQL): how
soon it takes over once the leader's connection is gone."""
_PROMOTE_MAX_PER_TICK = 50_000
_RUNNING_LIKE = {JobStatus.SCHEDULED.value, JobStatus.QUEUED.value, JobStatus.RUNNING.value,
                 JobStatus.RETRYING.value}


@dataclass(slots=True)
class TickReport:
    """What one tick did."""

    leader: bool = False
    epoch: int | None = None
    materialised: int = 0
    promoted: int = 0
    reaped: int = 0
    deleted: int = 0
    reconciled: int = 0


class Beat:
    """The clock of one app's cluster. ``Beat(app).run()`` blocks until stopped."""

    def __init__(self, app: App, *, embedded: bool = False, holder: str | None = None) -> None:
        self.app = app
        self.embedded = embedded
        self.holder = holder or (f"{app.name}@{socket.gethostname()}:{os.getpid()}:"
                                 f"{uuid.uuid4().hex[:6]}")
        self.lease_name = f"beat:{app.name}"
        self.epoch: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._schedules: dict[tuple[Any, ...], Schedule] = {}
        self._next_reap = 0.0
        self._next_cleanup = 0.0
        self._next_reconcile = 0.0
        self._scan_cursors: dict[str, str | None] = {}

    @property
    def fence(self) -> Fence | None:
        """The fence of this beat's writes while it leads."""
        return None if self.epoch is None else Fence(self.lease_name, self.holder, self.epoch)

    # -- running -------------------------------------------------------------------------
    def run(self) -> None:
        """Tick every ``beat_interval`` until stopped (SIGTERM/SIGINT stop it)."""
        if not self.embedded and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
            signal.signal(signal.SIGINT, lambda *_: self._stop.set())
        master = self.app.master
        master.wait_ready(who=f"beat {self.holder}")
        lock = session_lock(master.engine, self.lease_name)
        log.info("beat %s started for cluster %r", self.holder, self.app.name)
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                wait = self.app.config.beat_interval
                try:
                    if lock is None or self._hold(lock):
                        self.tick(take_over=lock is not None and self.epoch is None)
                        wait = self._until_next_fire(wait)
                    else:
                        wait = FOLLOW_POLL  # standing by: the lock frees as its holder dies
                except JobmasterError as exc:
                    log.error("beat tick failed: %s", exc)
                except Exception:  # noqa: BLE001 - the clock keeps ticking
                    log.exception("beat tick failed")
                self._stop.wait(max(wait - (time.monotonic() - started), 0.0))
        finally:
            self._resign()
            if lock is not None:
                lock.release()
            log.info("beat %s stopped", self.holder)

    def _hold(self, lock: SessionLock) -> bool:
        """Whether this beat holds the session lock (taking it if free); a holder whose
        lock's connection died stops leading."""
        if lock.held:
            if lock.alive():
                return True
            self._resign()
        return lock.try_acquire()

    def _until_next_fire(self, wait: float) -> float:
        """Seconds to the next tick: ``wait``, or less when a schedule fires sooner, so
        occurrences start on time rather than up to a tick late."""
        if self.epoch is None:
            return wait
        upcoming = self.app.master.next_fire_at(self.app.name)
        if upcoming is None:
            return wait
        return min(wait, max((upcoming - datetime.now(UTC)).total_seconds(), 0.0) + 0.001)

    def start_thread(self) -> None:
        """Run in a daemon thread (``jobmaster worker --beat``)."""
        self._thread = threading.Thread(target=self.run, name="jobmaster-beat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking and give up the lease."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _resign(self) -> None:
        if self.epoch is not None:
            try:
                self.app.master.release_lease(self.lease_name, self.holder, self.epoch)
            except Exception as exc:  # noqa: BLE001
                log.warning("could not release the beat lease: %s", exc)
            self.epoch = None

    # -- one tick --------------------------------------------------------------------------
    def tick(self, now: datetime | None = None, *, take_over: bool = False) -> TickReport:
        """Lead if possible, and if leading do one round of every duty. ``take_over``
        takes the lead even from a holder whose lease has not expired (``run`` does, once
        it holds the session lock that holder's death released)."""
        report = TickReport()
        master = self.app.master
        epoch = master.acquire_lease(self.lease_name, self.holder,
                                     self.app.config.beat_lease_seconds, take_over=take_over)
        if epoch is None:
            if self.epoch is not None:
                log.warning("beat %s lost the lead", self.holder)
            self.epoch = None
            return report
        if epoch != self.epoch:
            log.info("beat %s leads cluster %r (epoch %d)", self.holder, self.app.name, epoch)
            self.epoch = epoch
            written, gone = self.app.schedules.sync_static()
            if written or gone:
                log.info("static schedules written: %s; deactivated: %s",
                         ", ".join(written) or "none", ", ".join(gone) or "none")
        report.leader, report.epoch = True, epoch
        try:
            report.materialised = self.materialise(now)
            sweep_workflows(self.app, self.fence)  # waiting steps whose parents ended
            report.promoted = self.promote(now)
            clock = time.monotonic()
            if clock >= self._next_reap:
                self._next_reap = clock + self.app.config.lease_seconds
                report.reaped = self.reap()
            if clock >= self._next_cleanup:
                self._next_cleanup = clock + 60.0
                report.deleted = self.clean_up(now)
            if clock >= self._next_reconcile:
                self._next_reconcile = clock + RECONCILE_EVERY
                report.reconciled = self.reconcile(now)
        except LeadershipLost as exc:
            log.warning("beat %s stopped leading mid-tick: %s", self.holder, exc)
            self.epoch = None
            report.leader = False
        return report

    def _schedule(self, row: Any) -> Schedule:
        key = (row["expression"], row["timezone"], row["start_at"], row["end_at"])
        schedule = self._schedules.get(key)
        if schedule is None:
            schedule = self._schedules[key] = parse_stored(row)
        return schedule

    def materialise(self, now: datetime | None = None) -> int:
        """Turn due occurrences of recurring schedules into ``scheduled`` jobs."""
        app, master = self.app, self.app.master
        now = now or datetime.now(UTC)
        created = 0
        for row in master.due_schedules(app.name, now):
            try:
                created += self._materialise_one(row, now)
            except LeadershipLost:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad schedule must not stop the rest
                log.error("schedule %s could not fire: %s", row["name"], exc)
        return created

    def _materialise_one(self, row: Any, now: datetime) -> int:
        """Materialise one schedule's due occurrences; return how many jobs were new."""
        master = self.app.master
        options = dict(row["options"] or {})
        if "continuous" in options:
            return self._continue(row, options, now)
        schedule = self._schedule(row)
        fires, next_fire = due_occurrences(
            schedule, last_fire=row["last_fire_at"], next_fire=row["next_fire_at"],
            now=now, misfire=MisfirePolicy(options.get("misfire", "run_once")),
            cap=int(options.get("misfire_cap", 100)),
        )
        overlap = OverlapPolicy(options.get("overlap", "allow"))
        if fires and overlap is OverlapPolicy.SKIP:
            previous = None
            if row["last_job_id"]:
                previous = master.job_statuses([row["last_job_id"]]).get(row["last_job_id"])
            fires, skipped = apply_overlap(fires, overlap,
                                           previous_running=previous in _RUNNING_LIKE)
            if skipped:
                log.info("schedule %s: skipped %d occurrence(s), the previous one is "
                         "still %s", row["name"], len(skipped), previous)
        rows = [job_row(env, JobStatus.SCHEDULED, now)
                for env in self._occurrence_envelopes(row, options, fires)]
        return master.materialise(
            row["id"], rows, next_fire_at=next_fire,
            last_fire_at=fires[-1] if fires else None, fence=self.fence,
        )

    def _continue(self, row: Any, options: dict[str, Any], now: datetime) -> int:
        """A continuous job's schedule: its next run once the previous one ended."""
        master = self.app.master
        spec = options["continuous"]
        previous = master.get_job(row["last_job_id"]) if row["last_job_id"] else None
        fire, next_fire = continuous_fire(
            now=now, interval=float(spec["interval"]), iterations=spec.get("iterations"),
            ran=master.schedule_runs(self.app.name, row["name"]) if spec.get("iterations")
            else 0,
            previous_status=None if previous is None else previous["status"],
            previous_finished=None if previous is None else previous["finished_at"],
            recheck=self.app.config.beat_interval)
        fires = [] if fire is None else [fire]
        rows = [job_row(env, JobStatus.SCHEDULED, now)
                for env in self._occurrence_envelopes(row, options, fires)]
        return master.materialise(row["id"], rows, next_fire_at=next_fire,
                                  last_fire_at=fire, fence=self.fence)

    def _occurrence_envelopes(self, row: Any, options: dict[str, Any], fires: list[datetime]
                              ) -> list[Envelope]:
        if not fires:
            return []
        app = self.app
        payload = bytes(row["payload"])
        definition = app.definitions.get(row["definition_id"])
        base = definition.options if definition is not None else NO_OPTIONS
        call = stored_job_options(options)
        envs = []
        for fire in fires:
            due = fire.timestamp()  # relative options (expires) count from the occurrence
            resolved = app.producer.options(base, call, due)
            envs.append(app.producer.build(
                row["definition_id"], {}, resolved, now=time.time(), due=due,
                schedule_name=row["name"], occurrence=due, payload=payload))
            envs[-1].encoding = row["encoding"]
        return envs

    def _runnable(self, rows: list[Any]) -> tuple[dict[str, list[Envelope]], list[str]]:
        """Envelopes of job rows by agent; rows that make no valid envelope are failed in
        the master with the reason (one bad row never blocks the others)."""
        app = self.app
        by_agent: dict[str, list[Envelope]] = defaultdict(list)
        bad: list[tuple[str, str]] = []
        for row in rows:
            try:
                env = envelope_from_row(row)
            except EnvelopeError as exc:
                bad.append((str(row["id"]), str(exc)))
                log.error("job %s cannot be run: %s; recorded as failed", row["id"], exc,
                          extra={"job_id": row["id"]})
                continue
            agent = env.agent if env.agent in app.config.agents else app.config.default_agent
            by_agent[agent].append(env)
        if bad:
            app.master.fail_unrunnable(bad, fence=self.fence)
        return by_agent, [i for i, _ in bad]

    def promote(self, now: datetime | None = None) -> int:
        """Push ``scheduled`` jobs due within the next moments to their agents."""
        app, master = self.app, self.app.master
        now = now or datetime.now(UTC)
        before = now + timedelta(seconds=2 * app.config.beat_interval + 1.0)
        promoted = 0
        while promoted < _PROMOTE_MAX_PER_TICK:
            rows = master.due_scheduled_jobs(app.name, before, _PROMOTE_BATCH)
            if not rows:
                break
            by_agent, _ = self._runnable(rows)
            for agent, envs in by_agent.items():
                app.agent(agent).push(app.producer.messages(envs))
            ids = [e.id for envs in by_agent.values() for e in envs]
            promoted += master.mark_promoted(ids, fence=self.fence)
            if len(rows) < _PROMOTE_BATCH:
                break
        return promoted

    def reap(self, now: datetime | None = None) -> int:
        """Push again the jobs of workers that stopped heart-beating (for two leases, by
        the master's clock, which stamps their heartbeats: ``now`` is that clock's time)."""
        app, master = self.app, self.app.master
        now = now or master.clock()
        seen_before = now - timedelta(seconds=2 * app.config.lease_seconds)
        rows = master.stale_running_jobs(app.name, seen_before)
        count = 0
        if rows:
            by_agent, _ = self._runnable(rows)
            for agent, envs in by_agent.items():
                app.agent(agent).push(app.producer.messages(envs))
            ids = [e.id for envs in by_agent.values() for e in envs]
            count = master.requeue_lost(ids, fence=self.fence)
            log.warning("re-queued %d job(s) of workers not seen since %s", count,
                        seen_before.isoformat())
        master.mark_workers_lost(app.name, seen_before)
        return count

    def reconcile(self, now: datetime | None = None) -> int:
        """Record in the master the jobs an agent holds but the master does not know (their
        producer died before its write-behind wrote them): one page of each agent per call,
        going on where the last call stopped. Jobs younger than the write-behind's grace
        are left to their producer. Returns how many jobs were recorded."""
        app = self.app
        now = now or datetime.now(UTC)
        cutoff = now.timestamp() - (2 * app.config.master_sync_seconds + 1.0)
        recorded = 0
        for name in app.config.agents:
            try:
                page, cursor = app.agent(name).scan(self._scan_cursors.get(name),
                                                    RECONCILE_PAGE)
            except NotImplementedError:
                continue  # the backend cannot list what it holds: workers record on start
            except JobmasterError as exc:
                log.warning("could not read agent %s to reconcile: %s", name, exc)
                continue
            self._scan_cursors[name] = cursor
            if not page:
                continue
            known = app.master.job_statuses([job_id for job_id, _ in page])
            rows = []
            for job_id, body in page:
                if job_id in known:
                    continue
                try:
                    env = Envelope.from_bytes(body)
                except EnvelopeError:
                    continue  # a worker dead-letters it when it claims it
                if env.cluster == app.name and env.id == job_id and env.created_at < cutoff:
                    rows.append(job_row(env, JobStatus.QUEUED, now))
            if rows:
                refused = app.master.insert_jobs_isolating(rows)
                recorded += len(rows) - len(refused)
                log.warning("recorded %d job(s) agent %s held but the master did not know "
                            "(their producer stopped before writing them)",
                            len(rows) - len(refused), name)
        return recorded

    def clean_up(self, now: datetime | None = None) -> int:
        """Delete finished jobs, with their audit trail, older than the ``retention`` of
        their status (``0`` keeps a status for ever), and the per-minute totals older than
        the longest retention."""
        app = self.app
        now = now or datetime.now(UTC)
        deleted = 0
        for status, keep in app.config.retention.items():  # type: ignore[union-attr]
            if not keep:
                continue
            before = now - timedelta(seconds=keep)
            for _ in range(10):
                n = app.master.delete_finished(app.name, before, statuses=(status,))
                deleted += n
                if n < 1000:
                    break
        kept = [keep for keep in app.config.retention.values() if keep]  # type: ignore[union-attr]
        if kept:  # the per-minute totals live as long as the longest-kept jobs
            app.master.prune_stats(now - timedelta(seconds=max(kept)))
        return deleted
