"""The six scenarios of issue 5. Each returns ``Row``s: one metric, one value per system.

Timing is ``time.perf_counter()`` in the bench process. What each scenario measures, and
why that is fair to every system, is written in docs/benchmarks.md; the short version is in
each function's docstring.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.harness import (
    BenchError,
    Context,
    Spawned,
    cpu_seconds,
    cpu_snapshot,
    percentile,
    tree_rss_mib,
    wait_until,
)
from bench.systems import CeleryPeer, DramatiqPeer, Jobmaster, System


@dataclass
class Row:
    """One metric of one scenario, a value per system key (None: not measured)."""

    scenario: str
    metric: str
    better: str  # "higher" or "lower"
    values: dict[str, float | None] = field(default_factory=dict)
    digits: int = 0
    notes: list[str] = field(default_factory=list)
    ratio: bool = True  # whether a jobmaster/peer ratio means something for this metric


@dataclass
class Outcome:
    """What a scenario produced: rows, plus errors (a failed system, with the reason)."""

    rows: list[Row] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def row(self, scenario: str, metric: str, better: str, digits: int = 0,
            ratio: bool = True) -> Row:
        for r in self.rows:
            if r.scenario == scenario and r.metric == metric:
                return r
        r = Row(scenario, metric, better, digits=digits, ratio=ratio)
        self.rows.append(r)
        return r


def _counter(ctx: Context, key: str) -> Callable[[], int]:
    client = ctx.redis()
    return lambda: int(client.get(key) or 0)


def _guard(out: Outcome, system: System, what: str, fn: Callable[[], None]) -> None:
    """Run one system's part; on failure record the error and go on with the others."""
    try:
        fn()
    except BenchError as exc:
        out.errors.append(f"{what} / {system.label}: {exc}")
    except Exception as exc:  # noqa: BLE001 - one broken system must not stop the run
        out.errors.append(f"{what} / {system.label}: {type(exc).__name__}: {exc}")
    finally:
        try:
            system.close()
        except Exception as exc:  # noqa: BLE001
            out.errors.append(f"{what} / {system.label}: cleanup failed: {exc}")


# -- 1. enqueue, one call per job -----------------------------------------------------------
def enqueue(ctx: Context, systems: Sequence[System], n: int) -> Outcome:
    """N one-job calls in a loop (after one warm-up call that opens the connections); for
    jobmaster also the time until ``app.flush()`` returned: every job recorded in the master."""
    out = Outcome()
    name = "1 enqueue, one call per job"
    for system in systems:
        def run(system: System = system) -> None:
            step = ctx.step("enq")
            system.open(step)
            key = ctx.prefix + "enq:" + step
            system.delay(key)  # warm-up: connections, scripts, flusher thread
            system.recorded()
            t0 = time.perf_counter()
            for _ in range(n):
                system.delay(key)
            t1 = time.perf_counter()
            system.recorded()
            t2 = time.perf_counter()
            out.row(name, "jobs/s, calls returned", "higher").values[system.key] = n / (t1 - t0)
            if system.is_jobmaster:
                out.row(name, "jobs/s, all recorded in the master (flush returned)",
                        "higher").values[system.key] = n / (t2 - t0)
        _guard(out, system, name, run)
    return out


# -- 2. bulk enqueue ---------------------------------------------------------------------------
def bulk(ctx: Context, systems: Sequence[System], n: int) -> Outcome:
    """N jobs through each framework's batch path; jobmaster also until ``flush()``."""
    out = Outcome()
    name = "2 bulk enqueue"
    for system in systems:
        def run(system: System = system) -> None:
            step = ctx.step("bulk")
            system.open(step)
            key = ctx.prefix + "bulk:" + step
            system.delay(key)  # warm-up
            system.recorded()
            t0 = time.perf_counter()
            system.bulk(key, n)
            t1 = time.perf_counter()
            system.recorded()
            t2 = time.perf_counter()
            out.row(name, "jobs/s, call returned", "higher").values[system.key] = n / (t1 - t0)
            if system.is_jobmaster:
                out.row(name, "jobs/s, all recorded in the master (flush returned)",
                        "higher").values[system.key] = n / (t2 - t0)
        _guard(out, system, name, run)
    out.notes += [f"{s.label}: {s.bulk_method}" for s in systems if not s.is_jobmaster]
    return out


# -- 3. drain (and 6. scale-out) --------------------------------------------------------------
@dataclass
class Drain:
    """Times of one drain, in seconds from ``perf_counter``."""

    n: int
    spawned: float
    first: float
    executed: float
    done: float
    cores: dict[str, float] = field(default_factory=dict)  # CPU used over the drain, in
    # cores, by: workers, Redis, PostgreSQL, NATS, bench, other (everything else)
    machine_busy: float = 0.0  # share of all the machine's CPUs busy over the drain

    @property
    def rate(self) -> float:
        """Jobs/s from the first job's start to the end (start-up excluded)."""
        return self.n / max(self.done - self.first, 1e-9)

    @property
    def executed_rate(self) -> float:
        return self.n / max(self.executed - self.first, 1e-9)

    @property
    def startup(self) -> float:
        return self.first - self.spawned


def drain_once(ctx: Context, system: System, n: int, processes: int, concurrency: int,
               wrap: Sequence[str] | None = None) -> Drain:
    """Enqueue N (not timed, batch path), start the workers, and time from the first job's
    run (the counter leaving 0) until done: the counter at N for the peers, and for
    jobmaster the master holding N jobs ``succeeded``."""
    step = ctx.step("drain")
    system.open(step)
    key = ctx.prefix + "drain:" + step
    count = _counter(ctx, key)
    system.bulk(key, n)
    system.recorded()
    timeout = 120.0 + n / 50.0
    workers: list[Spawned] = []
    try:
        spawned = time.perf_counter()
        workers = system.start_workers(processes, concurrency, wrap=wrap)
        first = wait_until("the first job to run", lambda: count() >= 1, 120.0, 0.002, workers)
        cpu0 = cpu_snapshot([w.pid for w in workers])
        executed = wait_until(f"{n} jobs to run", lambda: count() >= n, timeout, 0.01, workers)
        done = executed
        if system.is_jobmaster:
            done = wait_until(f"{n} jobs recorded succeeded in the master",
                              lambda: system.succeeded() >= n, timeout, 0.02, workers)
        cpu1 = cpu_snapshot([w.pid for w in workers])
        wall = max(done - first, 1e-9)
        # a server process that exits during the drain takes its CPU time along: clamp at 0
        cores = {k: max(cpu1[k] - cpu0[k], 0.0) / wall for k in cpu1
                 if k not in ("busy", "total")}
        cores["other"] = max((cpu1["busy"] - cpu0["busy"]) / wall - sum(cores.values()), 0.0)
        return Drain(n, spawned, first, executed, done, cores=cores,
                     machine_busy=(cpu1["busy"] - cpu0["busy"])
                     / max(cpu1["total"] - cpu0["total"], 1e-9))
    finally:
        for w in workers:
            ctx.stop(w)


_CPU_LABELS = (("workers", "worker processes"), ("Redis", "Redis server"),
               ("PostgreSQL", "PostgreSQL server"), ("NATS", "NATS server"),
               ("bench", "the bench process (enqueue, polling)"),
               ("other", "everything else on the machine"))


def _cpu_rows(out: Outcome, name: str, system: System, d: Drain, suffix: str) -> None:
    """Where the machine's CPU went during a drain."""
    out.row(name, f"machine CPU busy{suffix}, % of all cores", "lower",
            ratio=False).values[system.key] = d.machine_busy * 100
    for key, label in _CPU_LABELS:
        out.row(name, f"CPU{suffix}: {label}, cores", "lower", digits=2,
                ratio=False).values[system.key] = d.cores.get(key, 0.0)


def drain(ctx: Context, systems: Sequence[System], n: int) -> Outcome:
    """Concurrency 2: jobmaster ``-c 2`` prefork, Celery ``-c 2 -P prefork``, Dramatiq
    ``--processes 2 --threads 8``; one worker command each."""
    out = Outcome()
    name = "3 drain, concurrency 2"
    for system in systems:
        def run(system: System = system) -> None:
            d = drain_once(ctx, system, n, processes=1, concurrency=2)
            metric = "jobs/s, first start → done (jobmaster: all succeeded in the master)"
            out.row(name, metric, "higher").values[system.key] = d.rate
            out.row(name, "jobs/s, first start → last job ran (counter = N)",
                    "higher").values[system.key] = d.executed_rate
            out.row(name, "worker start-up, s (spawn → first job ran)", "lower",
                    digits=2).values[system.key] = d.startup
            _cpu_rows(out, name, system, d, "")
        _guard(out, system, name, run)
    return out


def scaleout(ctx: Context, systems: Sequence[System], n: int) -> Outcome:
    """Drain N with one worker process (``-c 1``), then with two (``-c 1`` each)."""
    out = Outcome()
    name = "6 scale-out, 1 → 2 worker processes"
    for system in systems:
        def run(system: System = system) -> None:
            one = drain_once(ctx, system, n, processes=1, concurrency=1)
            system.close()
            two = drain_once(ctx, system, n, processes=2, concurrency=1)
            out.row(name, "jobs/s, 1 worker process (-c 1)", "higher").values[system.key] = \
                one.rate
            out.row(name, "jobs/s, 2 worker processes (-c 1 each)", "higher").values[
                system.key] = two.rate
            out.row(name, "speed-up, 2 processes / 1", "higher", digits=2).values[
                system.key] = two.rate / one.rate
            _cpu_rows(out, name, system, one, ", 1 process")
            _cpu_rows(out, name, system, two, ", 2 processes")
        _guard(out, system, name, run)
    return out


# -- 4. latency ------------------------------------------------------------------------------
def latency(ctx: Context, systems: Sequence[System], samples: int) -> Outcome:
    """One job at a time: enqueue one, wait for its sample (BLPOP), pause 5 ms, again.
    The handler records ``time.time() - enqueued_at``; ``enqueued_at`` is taken just
    before the enqueue call. Warm-up jobs (until the worker answers, then 10) are dropped."""
    out = Outcome()
    name = "4 latency, light load"
    for system in systems:
        def run(system: System = system) -> None:
            step = ctx.step("lat")
            system.open(step)
            key = ctx.prefix + "lat:" + step
            client = ctx.redis()
            workers = system.start_workers(1, 2)
            try:
                values: list[float] = []
                warm = 10
                for i in range(samples + warm + 1):
                    system.delay_latency(key, time.time())
                    limit = 120.0 if i == 0 else 10.0
                    got = client.blpop([key], timeout=limit)
                    if got is None:
                        alive = all(w.alive() for w in workers)
                        raise BenchError(
                            f"no latency sample within {limit:.0f} s (sample {i}; worker "
                            f"{'running' if alive else 'exited'}; log "
                            f"{workers[0].log_path}):\n{workers[0].log_tail()}")
                    if i > warm:
                        values.append(float(got[1]) * 1000.0)
                    time.sleep(0.005)
            finally:
                for w in workers:
                    ctx.stop(w)
            out.row(name, "enqueue → start p50, ms", "lower", 2).values[system.key] = \
                percentile(values, 50)
            out.row(name, "enqueue → start p99, ms", "lower", 2).values[system.key] = \
                percentile(values, 99)
        _guard(out, system, name, run)
    out.notes.append(f"{samples} samples per system after 10 warm-up jobs")
    return out


# -- 5. future jobs -----------------------------------------------------------------------------
def _settle_rss(pid: int, timeout: float, quiet: float = 2.0) -> float:
    """RSS of a process tree once it stops growing (two readings ``quiet`` s apart within
    1 MiB), or after ``timeout`` seconds."""
    deadline = time.perf_counter() + timeout
    last = tree_rss_mib(pid)
    while time.perf_counter() < deadline:
        time.sleep(quiet)
        now = tree_rss_mib(pid)
        if abs(now - last) < 1.0:
            return now
        last = now
    return last


def future(ctx: Context, systems: Sequence[System], n: int, peer_n: int,
           watch_seconds: float) -> Outcome:
    """jobmaster: a worker (``-c 2``) and a beat run while N jobs due over the next 8 hours
    are stored; RSS of both before and after (VmRSS of the process and its children), the
    master's size, and beat's CPU while it holds them. Peers: the same for their workers
    with ``peer_n`` delayed tasks (Celery countdown, Dramatiq ``delay``)."""
    out = Outcome()
    name = "5 future jobs"
    spread = 8 * 3600.0
    for system in systems:
        def run(system: System = system) -> None:
            step = ctx.step("future")
            system.open(step)
            key = ctx.prefix + "future:" + step
            count = _counter(ctx, key)
            workers = system.start_workers(1, 2)
            beat = system.start_beat() if isinstance(system, Jobmaster) else None
            watch = [*workers, *([beat] if beat else [])]
            try:
                system.delay(key)  # the worker is ready once this one ran
                wait_until("the worker to run a first job", lambda: count() >= 1, 120.0,
                           0.01, watch)
                quiet = 0.5 if ctx.quick else 2.0
                time.sleep(quiet)
                rss0 = _settle_rss(workers[0].pid, 10.0, quiet)
                beat0 = _settle_rss(beat.pid, 10.0, quiet) if beat else None
                first_due = time.time() + 600.0  # beyond every agent horizon
                if isinstance(system, Jobmaster):
                    assert ctx.db is not None
                    size0 = int(ctx.db.scalar(
                        "select pg_total_relation_size('jobmaster_jobs')"))
                    t0 = time.perf_counter()
                    path = system.schedule(key, n, first_due, spread)
                    t1 = time.perf_counter()
                    size1 = int(ctx.db.scalar(
                        "select pg_total_relation_size('jobmaster_jobs')"))
                    held = system.app.master.count_scheduled(system.app.name)
                    if held != n:
                        raise BenchError(f"the master holds {held} scheduled jobs, not {n}")
                    sample = min(2000, n)
                    t2 = time.perf_counter()
                    system.apply_at(key, sample, first_due)
                    t3 = time.perf_counter()
                    assert beat is not None
                    c0, w0 = cpu_seconds(beat.pid), time.perf_counter()
                    wc0 = cpu_seconds(workers[0].pid)
                    time.sleep(watch_seconds)
                    beat_cpu = (cpu_seconds(beat.pid) - c0) / (time.perf_counter() - w0)
                    worker_cpu = (cpu_seconds(workers[0].pid) - wc0) / (time.perf_counter() - w0)
                    rss1 = _settle_rss(workers[0].pid, 20.0, quiet)
                    beat1 = _settle_rss(beat.pid, 20.0, quiet)
                    jobs = n
                    out.row(name, "jobs stored", "higher", ratio=False).values[system.key] = n
                    out.row(name, "enqueue jobs/s, batch path with a due time",
                            "higher").values[system.key] = n / (t1 - t0)
                    out.row(name, "enqueue jobs/s, one apply(at=) per job", "higher").values[
                        system.key] = sample / (t3 - t2)
                    out.row(name, "master size growth, MiB (pg_total_relation_size)",
                            "lower", 1).values[system.key] = (size1 - size0) / 2**20
                    out.row(name, "master bytes per job", "lower").values[system.key] = \
                        (size1 - size0) / n
                    out.row(name, "beat RSS after, MiB", "lower", 1).values[system.key] = beat1
                    out.row(name, "beat RSS growth, MiB", "lower", 1).values[system.key] = \
                        beat1 - (beat0 or 0.0)
                    window = f"{watch_seconds:.0f} s"
                    out.row(name, f"beat CPU while holding them, % of a core ({window})",
                            "lower", 1).values[system.key] = beat_cpu * 100
                    out.row(name, f"worker CPU while idle, % of a core ({window})",
                            "lower", 1).values[system.key] = worker_cpu * 100
                    out.notes.append(f"{system.label} future jobs, batched: {path}; "
                                     "per job: `apply(kwargs=..., at=...)`, on "
                                     f"{sample:,} jobs")
                else:
                    jobs = peer_n
                    t0 = time.perf_counter()
                    if isinstance(system, CeleryPeer):
                        system.bulk_eta(key, peer_n, 600.0, spread)
                        queue = ctx.redis()
                        t1 = time.perf_counter()
                        # Celery's worker takes every ETA task into its memory: wait for it
                        wait_until("the Celery worker to take every ETA task",
                                   lambda: queue.llen(system.queue_key) == 0,
                                   120.0 + peer_n / 200.0, 0.2, watch)
                    elif isinstance(system, DramatiqPeer):
                        delays = [int(600_000 + i * spread * 1000 / peer_n)
                                  for i in range(peer_n)]
                        system.bulk(key, peer_n, delay_ms=delays)
                        t1 = time.perf_counter()
                    rss1 = _settle_rss(workers[0].pid, 60.0, 3 * quiet)
                    out.row(name, "enqueue jobs/s, batch path with a due time",
                            "higher").values[system.key] = peer_n / (t1 - t0)
                    out.row(name, "jobs stored", "higher",
                            ratio=False).values[system.key] = peer_n
                out.row(name, "worker RSS before, MiB", "lower", 1,
                        ratio=False).values[system.key] = rss0
                out.row(name, "worker RSS after, MiB", "lower", 1,
                        ratio=False).values[system.key] = rss1
                out.row(name, "worker RSS growth, MiB", "lower", 1,
                        ratio=False).values[system.key] = \
                    rss1 - rss0
                out.row(name, "worker RSS growth per 100k jobs, MiB", "lower", 1).values[
                    system.key] = (rss1 - rss0) * 100_000 / jobs
            finally:
                for s in watch:
                    ctx.stop(s, grace=5.0)
        _guard(out, system, name, run)
    out.notes.append("peers: Celery `apply_async(countdown=...)` sent in groups; Dramatiq "
                     "`delay=` through the pipelined enqueue; due 10 min to 8 h ahead")
    return out
