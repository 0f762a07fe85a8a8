"""The producer: everything between ``delay()`` and a job stored on its agent.

It builds the envelope (options resolved and checked, arguments encoded), lets middleware
see it, routes it to its agent and pushes it; jobs due further ahead than
``agent_horizon`` go to the master only, as ``scheduled``. Pushed jobs are written to the
master by a background thread every ``master_sync_seconds`` ("save pending"), in batches;
a row the master refuses is set aside with its reason instead of blocking the others.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jobmaster.agents.base import AgentMessage
from jobmaster.envelope import Envelope, HeaderTemplate
from jobmaster.exceptions import (
    AgentUnreachableError,
    EnqueueUncertainError,
    InvalidOptionError,
    PayloadTooLargeError,
)
from jobmaster.forking import after_fork
from jobmaster.host import AppResources
from jobmaster.ids import new_job_id
from jobmaster.master.timestamps import utcnow
from jobmaster.models import JobStatus
from jobmaster.options import NO_OPTIONS, JobOptions, app_defaults, check_name, duration
from jobmaster.serialization import JSONSerializer, encode_arguments
from jobmaster.signing import Signer, keys_of

log = logging.getLogger("jobmaster")

_JSON = JSONSerializer()
_PUSH_CHUNK = 5000
_FLUSH_CHUNK = 2000
_FORCE_AFTER = 20
"""Failed flushes in a row after which rows the master refuses are set aside even when it
refuses all of them alike (the jobs stay on their agents; workers record them)."""
_EAGER_RUNNER = "jobmaster.testing.eager"
"""The module whose ``run_inline(app, envelopes)`` runs jobs of an ``eager`` app."""


def due_time(at: datetime | None, after: timedelta | float | None, now: float) -> float:
    """The Unix time a job becomes due: ``at`` (naive = UTC), ``now + after``, or now."""
    if at is not None and after is not None:
        raise InvalidOptionError("pass at= or after=, not both")
    if at is not None:
        if not isinstance(at, datetime):
            raise InvalidOptionError(f"at={at!r} must be a datetime")
        return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
    if after is not None:
        return now + duration(after, "after", allow_zero=True)
    return now


_OUTAGE_RETRY = 5.0
"""Seconds between tries to write pushed jobs while the master is out."""
_OUTAGE_REMIND = 30.0
"""Seconds between the lines that say the master is still out."""


def _said(exc: BaseException) -> str:
    """An error in one line, without the traceback."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


PUSH_RETRY_DELAYS = (0.1, 0.4, 1.0)
"""Seconds between the tries of a push that failed at the connection level."""


@dataclass(frozen=True, slots=True)
class _Template:
    """What the jobs enqueued with one definition's own options share, worked out once:
    the options resolved over the app's defaults and routed, their part of the envelope
    header serialized, and the encoded size of their metadata."""

    base: JobOptions
    """The definition's options it was made from."""
    options: JobOptions
    header: HeaderTemplate
    metadata_bytes: int


class Producer:
    """Enqueues jobs for one app (one cluster)."""

    def __init__(self, host: AppResources) -> None:
        self.host = host
        self._lock = threading.RLock()
        self._flushing = threading.Lock()
        self._pending: list[tuple[Envelope, datetime]] = []  # pushed, not yet in the master
        self._pending_ids: set[str] = set()
        self._flusher: threading.Thread | None = None
        self._wake = threading.Event()
        self._templates: dict[int, _Template] = {}  # by id() of the definition's options
        self._by_options: dict[int, _Template] = {}  # by id() of the resolved options
        self._failed_flushes = 0
        self._async_pending: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, list[tuple[Envelope, asyncio.Future[None]]]
        ] = weakref.WeakKeyDictionary()
        self._async_tasks: set[asyncio.Task[None]] = set()
        self._signer: Signer | None | bool = False  # False: not made yet
        after_fork(self, Producer._forget)

    def _forget(self) -> None:
        """In a forked child: the parent's pending jobs and flusher are the parent's."""
        self._lock = threading.RLock()
        self._flushing = threading.Lock()
        self._pending = []
        self._pending_ids = set()
        self._flusher = None
        self._wake = threading.Event()

    # -- building ------------------------------------------------------------------------
    def options(self, base: JobOptions, call: JobOptions, now: float) -> JobOptions:
        """``call`` over ``base`` over the app's defaults, resolved for an enqueue at
        ``now``, routed to an agent (``InvalidOptionError`` if it names an unknown one)."""
        template = self._template(base) if call is NO_OPTIONS else None
        if template is not None:  # the common case: the definition's own options
            return template.options
        return self._route(call.over(base).resolved(app_defaults(self.host.config), now))

    def _template(self, base: JobOptions) -> _Template | None:
        """The template of jobs enqueued with the definition's own options ``base``, made
        on first use; ``None`` when they resolve differently at each enqueue
        (``expires``...)."""
        template = self._templates.get(id(base))
        if template is not None and template.base is base:
            return template
        if base.needs_enqueue_time():
            return None
        options = self._route(base.resolved(app_defaults(self.host.config), time.time()))
        metadata = len(_JSON.dumps(options.metadata)) if options.metadata else 0
        template = _Template(base, options, HeaderTemplate(options), metadata)
        self._templates[id(base)] = self._by_options[id(options)] = template
        return template

    def _route(self, options: JobOptions) -> JobOptions:
        cfg = self.host.config
        agent = options.agent or cfg.routes.get(options.lane or "") or cfg.default_agent
        if agent not in cfg.agents:
            raise InvalidOptionError(
                f"agent={agent!r} is not one of the agents of cluster {cfg.name!r}: "
                f"{sorted(cfg.agents)}")
        if agent != options.agent:
            options = JobOptions(**{**dict(options.items()), "agent": agent})
        return options

    def build(
        self,
        definition_id: str,
        values: Mapping[str, Any],
        options: JobOptions,
        *,
        now: float,
        due: float,
        job_key: str | None = None,
        schedule_name: str | None = None,
        occurrence: float | None = None,
        payload: bytes | None = None,
    ) -> Envelope:
        """An envelope for one job with resolved ``options``, its arguments encoded (or
        ``payload`` as given), counted against ``max_payload_bytes`` with its metadata."""
        cfg = self.host.config
        if job_key is not None:
            check_name(job_key, "job_key")
        serializer = self.host.serializer
        limit = cfg.max_payload_bytes
        if payload is None:
            payload = encode_arguments(serializer, definition_id, values, limit)
        if options.metadata:
            template = self._by_options.get(id(options))  # holds its options: same id, same
            if template is None or len(payload) + template.metadata_bytes > limit:
                _check_size(definition_id, payload, options, limit)
        return Envelope(new_job_id(), cfg.name, definition_id, serializer.name, payload,
                        now, due, options, 1, job_key, schedule_name, occurrence)

    # -- enqueueing ----------------------------------------------------------------------
    def submit(
        self,
        definition_id: str,
        values: Mapping[str, Any],
        base: JobOptions,
        call: JobOptions,
        *,
        at: datetime | None = None,
        after: timedelta | float | None = None,
        job_key: str | None = None,
        using: Any = None,
    ) -> str:
        """Enqueue one job; return its id (the existing job's id for a taken ``job_key``).

        ``using`` (a SQLAlchemy ``Connection`` or ``Session`` on the master's database)
        writes the job in the caller's transaction instead: it exists if and only if that
        commits, and is pushed after the commit (``jobmaster.outbox``)."""
        if using is not None and job_key is not None:
            raise InvalidOptionError("job_key and using= do not go together: a keyed enqueue "
                                     "is decided by the master on its own")
        env = self._envelope(definition_id, values, base, call, at, after, job_key)
        if using is not None:
            from jobmaster import outbox  # SQLAlchemy: only for an enqueue in a transaction

            held = env.due > time.time() + self.host.config.agent_horizon  # beat's when due
            outbox.write_in(using, self.host, None if held else self, env)
            self.host.pipeline.enqueued([env])
            return env.id
        if env.job_key is not None:
            return self._submit_keyed(env)
        self.dispatch([env])
        return env.id

    async def submit_async(
        self,
        definition_id: str,
        values: Mapping[str, Any],
        base: JobOptions,
        call: JobOptions,
        *,
        at: datetime | None = None,
        after: timedelta | float | None = None,
        job_key: str | None = None,
    ) -> str:
        """``submit`` for coroutines: the job is built (and refused) at once; the pushes of
        every call made meanwhile on this event loop go to the agents together, in one
        thread hop and one round trip per agent. Returns once the job is pushed."""
        env = self._envelope(definition_id, values, base, call, at, after, job_key)
        if env.job_key is not None:
            return await asyncio.to_thread(self._submit_keyed, env)
        loop = asyncio.get_running_loop()
        waiting = self._async_pending.get(loop)
        if waiting is None:
            waiting = self._async_pending[loop] = []
            loop.call_soon(self._send_pending, loop)
        done: asyncio.Future[None] = loop.create_future()
        waiting.append((env, done))
        await done
        return env.id

    def _envelope(self, definition_id: str, values: Mapping[str, Any], base: JobOptions,
                  call: JobOptions, at: datetime | None, after: timedelta | float | None,
                  job_key: str | None) -> Envelope:
        """One job's envelope, built, checked and passed through ``before_enqueue``."""
        now = time.time()
        env = self.build(definition_id, values, self.options(base, call, now), now=now,
                         due=due_time(at, after, now), job_key=job_key)
        return self.host.pipeline.enqueueing(env)

    def _send_pending(self, loop: asyncio.AbstractEventLoop) -> None:
        """Push what the coroutines of ``loop`` enqueued since the last time, in a thread."""
        waiting = self._async_pending.pop(loop, [])

        async def send() -> None:
            try:
                await asyncio.to_thread(self.dispatch, [env for env, _ in waiting])
            except BaseException as exc:  # noqa: BLE001 - every caller of the batch learns it
                for _, done in waiting:
                    if not done.done():
                        done.set_exception(exc)
                return
            for _, done in waiting:
                if not done.done():
                    done.set_result(None)

        task = loop.create_task(send())
        self._async_tasks.add(task)
        task.add_done_callback(self._async_tasks.discard)

    def submit_many(
        self,
        definition_id: str,
        values: Sequence[Mapping[str, Any]],
        base: JobOptions,
        call: JobOptions,
        times: Sequence[datetime | None],
        *,
        after: timedelta | float | None = None,
    ) -> list[str]:
        """Enqueue one job per mapping of arguments, in batches; ``times`` gives each one's
        start (``None``: now, or ``after``). Options are checked once for all."""
        if not values:
            return []
        now = time.time()
        options = self.options(base, call, now)
        limit = self.host.config.max_payload_bytes
        serializer = self.host.serializer
        pipeline = self.host.pipeline
        envs = []
        for v, at in zip(values, times, strict=True):
            due = due_time(at, after, now)
            payload = encode_arguments(serializer, definition_id, v, limit)
            env = self.build(definition_id, v, options, now=now, due=due, payload=payload)
            envs.append(pipeline.enqueueing(env) if pipeline.before_enqueue else env)
        for start in range(0, len(envs), _PUSH_CHUNK):
            self.dispatch(envs[start : start + _PUSH_CHUNK])
        return [e.id for e in envs]

    def _submit_keyed(self, env: Envelope) -> str:
        """A job with a ``job_key``: the master's unique key decides, before any push."""
        from jobmaster.master.rows import job_row  # with the master, on first use

        master = self.host.master
        held = env.due - time.time() > self.host.config.agent_horizon
        status = JobStatus.SCHEDULED if held else JobStatus.QUEUED
        existing = master.insert_job_unique(job_row(env, status, utcnow()))
        if existing is not None:
            return existing
        if self.host.config.eager:
            self.host.pipeline.enqueued([env])
            self._run_eagerly([env])
            return env.id
        if not held:
            try:
                self.push([env])
            except BaseException:
                master.delete_job(env.id)  # free the key: the enqueue did not happen
                raise
        self.host.pipeline.enqueued([env])
        return env.id

    def dispatch(self, envs: Sequence[Envelope]) -> None:
        """Push due-soon jobs to their agents (recorded in the master shortly after);
        store far-future ones in the master only, as ``scheduled``."""
        if self.host.config.eager:
            from jobmaster.master.rows import job_row  # with the master, on first use

            self.host.master.insert_jobs([job_row(e, JobStatus.QUEUED, utcnow()) for e in envs])
            self.host.pipeline.enqueued(envs)
            self._run_eagerly(envs)
            return
        horizon = time.time() + self.host.config.agent_horizon
        later = [e for e in envs if e.due > horizon]
        soon = [e for e in envs if e.due <= horizon] if later else list(envs)
        if later:
            from jobmaster.master.rows import job_row  # with the master, on first use

            now = utcnow()
            self.host.master.insert_jobs([job_row(e, JobStatus.SCHEDULED, now) for e in later])
        if soon:
            self.push(soon)
            now = utcnow()  # rows are built by the flusher, off the caller's path
            with self._lock:
                self._pending.extend((e, now) for e in soon)
                self._pending_ids.update(e.id for e in soon)
            self._ensure_flusher()
        self.host.pipeline.enqueued(envs)

    def push(self, envs: Iterable[Envelope]) -> None:
        """Push envelopes to their agents, one batch per agent (an ``eager`` app runs them
        now instead: whoever pushes them recorded them in the master)."""
        if self.host.config.eager:
            self._run_eagerly(list(envs))
            return
        by_agent: dict[str, list[Envelope]] = defaultdict(list)
        for env in envs:
            by_agent[env.agent].append(env)
        for name, group in by_agent.items():
            self._push_to(name, group)

    def _push_to(self, name: str, envs: list[Envelope]) -> None:
        """Push to one agent; a push that fails at the connection level is sent again with
        the same job ids (pushes are idempotent by id) before giving up, and then the
        error says the jobs may exist."""
        messages = self.messages(envs)
        for delay in (*PUSH_RETRY_DELAYS, None):
            try:
                self.host.agent(name).push(messages)
                return
            except AgentUnreachableError as exc:
                if delay is None:
                    ids = tuple(e.id for e in envs)
                    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if
                                                  len(ids) > 5 else "")
                    raise EnqueueUncertainError(
                        f"{exc} Pushing job(s) {shown} failed {len(PUSH_RETRY_DELAYS) + 1} "
                        "times at the connection level: they may exist on the agent all the "
                        "same (a push can land before its connection breaks). Enqueueing "
                        "again makes new jobs; look the ids up first (app.jobs.find), or "
                        "make the call idempotent with job_key=.", ids) from exc
                log.warning("push to agent %s failed (%s); sending the same job(s) again in "
                            "%g s", name, type(exc).__name__, delay)
                time.sleep(delay)

    def messages(self, envs: Iterable[Envelope]) -> list[AgentMessage]:
        """The agent messages carrying ``envs``, each signed first if the app signs
        envelopes (``Config.sign_envelopes``) and it is not signed yet."""
        signer = self.signer
        templates = self._by_options
        out = []
        for env in envs:
            if signer is not None and env.signature is None:
                env.signature = signer.sign(env)
            template = templates.get(id(env.options))
            out.append(env.to_message() if template is None else template.header.to_message(env))
        return out

    @property
    def signer(self) -> Signer | None:
        """What signs and verifies this app's envelopes, if it signs them."""
        if self._signer is False:
            config = self.host.config
            self._signer = Signer(keys_of(config.secret)) if config.signs else None
        return self._signer  # type: ignore[return-value]

    # -- eager mode (Config.eager) ---------------------------------------------------------
    def _run_eagerly(self, envs: Sequence[Envelope]) -> None:
        """Run jobs recorded in the master now, in this thread, as a worker would, instead
        of pushing them. The runner sits above this module (it drives the worker's
        executor), so it is imported by name on first use, as agent backends are."""
        importlib.import_module(_EAGER_RUNNER).run_inline(self.host, envs)

    # -- save pending: producer → master -------------------------------------------------
    def is_pending(self, job_id: str) -> bool:
        """Whether this process pushed the job and has not written it to the master yet."""
        with self._lock:
            return job_id in self._pending_ids

    def _ensure_flusher(self) -> None:
        if self._flusher is not None:
            return
        with self._lock:
            if self._flusher is not None:
                return
            self._flusher = threading.Thread(target=self._flush_loop, name="jobmaster-sync",
                                             daemon=True)
            self._flusher.start()

    def _flush_loop(self) -> None:
        """Write pushed jobs to the master every ``master_sync_seconds``. While the master
        is out, it tries less often (up to every ``_OUTAGE_RETRY`` seconds) and says so in
        one line when the outage starts, one every ``_OUTAGE_REMIND`` seconds while it
        lasts, and one when it ends: the rows are kept meanwhile."""
        me = threading.current_thread()
        interval = self.host.config.master_sync_seconds
        failing_since: float | None = None
        reminded = 0.0
        while self._flusher is me:
            self._wake.wait(interval)
            self._wake.clear()
            try:
                written = self.flush()
            except Exception as exc:  # noqa: BLE001 - keep the loop alive; rows are kept
                now = time.monotonic()
                with self._lock:
                    waiting = len(self._pending)
                if failing_since is None or now - reminded >= _OUTAGE_REMIND:
                    log.warning("could not write %d pushed job(s) to the master%s: %s; "
                                "they are kept and written once it answers", waiting,
                                "" if failing_since is None else
                                f" for {now - failing_since:.0f} s", _said(exc))
                    reminded = now
                failing_since = failing_since if failing_since is not None else now
                interval = min(interval * 2, _OUTAGE_RETRY)
                continue
            if failing_since is not None:
                log.warning("the master answers again after %.0f s: %d pushed job(s) "
                            "written", time.monotonic() - failing_since, written)
                failing_since = None
            interval = self.host.config.master_sync_seconds

    def flush(self) -> int:
        """Write the jobs this process pushed to agents into the master now; return how
        many were written. Rows the master refuses (not for want of a connection) are
        logged with the reason and set aside: the worker that runs the job records it.
        Runs on its own every ``master_sync_seconds`` and at exit; a call while the
        background thread is writing waits for it, so what was pushed before the call is in
        the master when it returns."""
        with self._flushing:
            return self._flush()

    def _flush(self) -> int:
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return 0
        from jobmaster.master.rows import job_row  # with the master, on first use

        master = self.host.master
        written = 0
        for start in range(0, len(pending), _FLUSH_CHUNK):
            chunk = pending[start : start + _FLUSH_CHUNK]
            try:
                refused = master.insert_jobs_isolating(
                    [job_row(e, JobStatus.QUEUED, at) for e, at in chunk],
                    force=self._failed_flushes >= _FORCE_AFTER)
            except BaseException:
                with self._lock:  # the master is out of reach: keep the rest for later
                    self._pending[:0] = pending[start:]
                    self._failed_flushes += 1
                raise
            self._failed_flushes = 0
            for row, error in refused:
                log.error("the master refused the record of job %s (%s): %s; it is recorded "
                          "when a worker runs it", row["id"], row["definition_id"], error,
                          extra={"job_id": row["id"], "definition_id": row["definition_id"]})
            written += len(chunk) - len(refused)
            with self._lock:
                self._pending_ids.difference_update(e.id for e, _ in chunk)
        return written


def _check_size(definition_id: str, payload: bytes, options: JobOptions, limit: int) -> None:
    size = len(payload) + len(_JSON.dumps(options.metadata))
    if size > limit:
        raise PayloadTooLargeError(
            f"job {definition_id!r}: arguments and metadata encode to {size:,} bytes, over the "
            f"{limit:,}-byte limit; pass a reference (an id, a URL, a file path) instead of "
            "the data, or raise App(max_payload_bytes=...)")

