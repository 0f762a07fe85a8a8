"""The scenarios. Each returns ``Row``s: one metric, one value per system.

1–6 are the first round's (enqueue, bulk, drain, latency, future jobs, scale-out); 7–12 compare
with every peer: drains with worker start-up included, worker launch → first job and
``import`` time, an async producer of 100 coroutines, I/O-bound and CPU-bound jobs, and
the PostgreSQL agent against procrastinate and PgQueuer.

Timing is ``time.perf_counter()`` in the bench process. What each scenario measures, and
why that is fair to every system, is written in docs/benchmarks.md; the short version is in
each function's docstring.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.harness import (
    ROOT,
    BenchError,
    Context,
    Spawned,
    cpu_seconds,
    cpu_snapshot,
    percentile,
    tree_pss_mib,
    tree_rss_mib,
    wait_until,
)
from bench.systems import CeleryPeer, DramatiqPeer, Jobmaster, RQPeer, System


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
    lead: str = "jm-redis"  # the jobmaster column the ratios divide


@dataclass
class Outcome:
    """What a scenario produced: rows, plus errors (a failed system, with the reason)."""

    rows: list[Row] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def row(self, scenario: str, metric: str, better: str, digits: int = 0,
            ratio: bool = True, lead: str = "jm-redis") -> Row:
        for r in self.rows:
            if r.scenario == scenario and r.metric == metric:
                return r
        r = Row(scenario, metric, better, digits=digits, ratio=ratio, lead=lead)
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
def _timed_loop(system: System, key: str, n: int, limit: float) -> int:
    """``system.enqueue_loop`` in rounds of 1,000 until ``n`` calls, or fewer once
    ``limit`` seconds have passed (the slowest peers); returns the calls made."""
    done = 0
    t0 = time.perf_counter()
    while done < n:
        count = min(1000, n - done)
        system.enqueue_loop(key, count)
        done += count
        if time.perf_counter() - t0 > limit:
            break
    return done


def enqueue(ctx: Context, systems: Sequence[System], n: int, limit: float = 20.0) -> Outcome:
    """N one-job calls in a loop (after one warm-up call that opens the connections); for
    jobmaster also the time until ``app.flush()`` returned: every job recorded in the master
    (the producer's write-behind to the master runs in this process during the loop).
    Async-only frameworks (arq, taskiq) await their call N times inside one event loop.
    A system still enqueueing after ``limit`` seconds stops at the next thousand."""
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
            done = _timed_loop(system, key, n, limit)
            t1 = time.perf_counter()
            system.recorded()
            t2 = time.perf_counter()
            out.row(name, "jobs/s, calls returned", "higher").values[system.key] = \
                done / (t1 - t0)
            if system.is_jobmaster:
                out.row(name, "jobs/s, all recorded in the master (flush returned)",
                        "higher").values[system.key] = done / (t2 - t0)
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


def _commands(systems: Sequence[System], mode: str, what: str) -> list[str]:
    """Notes naming each system's worker command for ``mode`` (jobmaster's once: the
    same for every agent)."""
    shown = [s for s in systems if s.worker_modes and not s.is_jobmaster]
    first = next((s for s in systems if s.is_jobmaster), None)
    if first is not None:
        shown.insert(0, first)
    return [f"{'jobmaster' if s.is_jobmaster else s.label} {what}: {s.worker_modes[mode]}"
            for s in shown]


# -- 7. drain with worker start-up included --------------------------------------------------
def _launch_and_drain(ctx: Context, system: System, key: str, n: int, processes: int,
                      concurrency: int, mode: str = "noop",
                      rss: list[float] | None = None,
                      cpu: dict[str, float] | None = None
                      ) -> tuple[float, float, float, float]:
    """Start the workers for jobs already enqueued under ``key``; return the times
    (perf_counter) of the launch, the first job done, the N-th job done, and for jobmaster
    the master holding N jobs ``succeeded`` (for the peers, the N-th job done again).
    ``rss``: filled with the workers' peak RSS meanwhile, then their PSS once done (MiB,
    process trees summed). ``cpu``: filled with the CPU seconds used from launch to done
    by the worker processes (start-up included) and by each server."""
    count = _counter(ctx, key)
    timeout = 120.0 + n / 100.0
    workers: list[Spawned] = []
    peak = _PeakRss()
    try:
        before = cpu_snapshot([]) if cpu is not None else {}
        launched = time.perf_counter()
        workers = system.start_workers(processes, concurrency, mode=mode)
        if rss is not None:
            peak.start([w.pid for w in workers])
        first = wait_until("the first job to be done", lambda: count() >= 1, 120.0, 0.002,
                           workers)
        executed = wait_until(f"{n} jobs to be done", lambda: count() >= n, timeout, 0.005,
                              workers)
        done = executed
        if system.is_jobmaster:
            done = wait_until(f"{n} jobs recorded succeeded in the master",
                              lambda: system.succeeded() >= n, timeout, 0.01, workers)
        if cpu is not None:
            after = cpu_snapshot([w.pid for w in workers])
            cpu.update({k: max(after[k] - before.get(k, 0.0), 0.0) for k in after
                        if k not in ("busy", "total", "bench")})
        if rss is not None:
            peak.stop()
            rss += [peak.value, sum(tree_pss_mib(w.pid) for w in workers)]
        return launched, first, executed, done
    finally:
        peak.stop()
        for w in workers:
            ctx.stop(w)


class _PeakRss:
    """The peak summed RSS of some process trees, sampled every 20 ms by a thread."""

    def __init__(self) -> None:
        self.value = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, pids: Sequence[int]) -> None:
        def sample() -> None:
            while not self._stop.is_set():
                self.value = max(self.value, sum(tree_rss_mib(p) for p in pids))
                self._stop.wait(0.02)

        self._thread = threading.Thread(target=sample, name="bench-rss", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def drain_startup(ctx: Context, systems: Sequence[System], sizes: Sequence[int]) -> Outcome:
    """N jobs enqueued first (batch path, not timed); the clock starts when the worker
    command is launched and stops when every job is done: the counter at N for the peers,
    the master holding N jobs ``succeeded`` for jobmaster. Concurrency 2, each system in
    its throughput configuration (the notes list the commands)."""
    out = Outcome()
    name = "7 drain, worker start-up included, concurrency 2"
    for n in sizes:
        for system in systems:
            def run(system: System = system, n: int = n) -> None:
                step = ctx.step("dsu")
                system.open(step)
                key = ctx.prefix + "dsu:" + step
                system.bulk(key, n)
                system.recorded()
                cpu: dict[str, float] = {}
                launched, _first, _executed, done = _launch_and_drain(ctx, system, key, n,
                                                                      1, 2, cpu=cpu)
                out.row(name, f"{n:,} jobs: jobs/s, launch → all done (jobmaster: succeeded "
                        "in the master)", "higher").values[system.key] = n / (done - launched)
                out.row(name, f"{n:,} jobs: s, launch → all done", "lower",
                        digits=2).values[system.key] = done - launched
                # what the two cores spent per job: the limit of a drain on this machine
                servers = sum(v for k, v in cpu.items() if k != "workers")
                out.row(name, f"{n:,} jobs: CPU µs per job, workers (start-up included) + "
                        "servers (Redis, PostgreSQL)", "lower",
                        digits=0).values[system.key] = (cpu["workers"] + servers) / n * 1e6
                out.row(name, f"{n:,} jobs: CPU µs per job, of it the servers", "lower",
                        digits=0).values[system.key] = servers / n * 1e6
            _guard(out, system, name, run)
    out.notes += _commands(systems, "noop", "workers")
    return out


# -- 8. worker launch → first job; import time --------------------------------------------------
def _import_ms(module: str, runs: int = 5, cumulative: bool = True) -> tuple[float, float]:
    """(``-X importtime`` cumulative ms of ``import module``, best of ``runs``; the wall
    time of a fresh interpreter importing it minus a bare interpreter's, median of
    ``runs``), both in a fresh interpreter each time."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")

    def wall(code: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=60)
        return time.perf_counter() - t0

    times: list[float] = []
    for _ in range(runs if cumulative else 0):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                              check=True)
        for line in proc.stderr.splitlines():
            parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
            if len(parts) == 3 and parts[2] == module and parts[1].isdigit():
                times.append(int(parts[1]) / 1000.0)
    bare = statistics.median(wall("pass") for _ in range(runs))
    full = statistics.median(wall(f"import {module}") for _ in range(runs))
    return (min(times) if times else float("nan")), (full - bare) * 1000.0


def first_job(ctx: Context, systems: Sequence[System], trials: int,
              import_runs: int = 5) -> Outcome:
    """One job enqueued, then the worker command launched (concurrency 2, as in 7): the time
    until the job is done (the counter at 1; for jobmaster also until the master records it
    ``succeeded``), median of ``trials``. Then the ``import`` time of each library and of
    the app module its worker imports, in fresh interpreters."""
    out = Outcome()
    name = "8 worker launch → first job; import time"
    for system in systems:
        def run(system: System = system) -> None:
            done: list[float] = []
            recorded: list[float] = []
            for _ in range(trials):
                step = ctx.step("first")
                system.open(step)
                key = ctx.prefix + "first:" + step
                system.delay(key)
                system.recorded()
                launched, first, _executed, succeeded = _launch_and_drain(ctx, system, key, 1,
                                                                         1, 2)
                done.append(first - launched)
                recorded.append(succeeded - launched)
                system.close()
            out.row(name, f"launch → first job done, s (median of {trials})", "lower",
                    digits=2).values[system.key] = statistics.median(done)
            if system.is_jobmaster:
                out.row(name, "launch → first job succeeded in the master, s", "lower",
                        digits=2).values[system.key] = statistics.median(recorded)
            lib_ms, lib_wall = _import_ms(system.library, import_runs)
            _, app_wall = _import_ms(system.app_module, import_runs, cumulative=False)
            out.row(name, "import of the library, ms (-X importtime, cumulative)", "lower",
                    digits=1).values[system.key] = lib_ms
            out.row(name, "fresh interpreter importing the library, ms (minus a bare one)",
                    "lower", digits=1).values[system.key] = lib_wall
            out.row(name, "fresh interpreter importing the worker's app module, ms",
                    "lower", digits=1).values[system.key] = app_wall
        _guard(out, system, name, run)
    out.notes.append("import: the library's top package (`jobmaster`, `celery`, `dramatiq`, "
                     "`rq`, `arq`, `taskiq`, `huey`, `procrastinate`, `pgqueuer`); the app "
                     "module is bench/jm_app.py or bench/peers/<peer>_app.py (library, "
                     "broker client and the bench's jobs)")
    return out


# -- 9. async producer ---------------------------------------------------------------------------
def async_producer(ctx: Context, systems: Sequence[System], n: int,
                   coroutines: int = 100) -> Outcome:
    """``coroutines`` coroutines enqueue N no-op jobs between them, at once: jobmaster
    ``await definition.delay_async(...)``; arq, taskiq, procrastinate, PgQueuer their async
    call; Celery, Dramatiq, RQ, huey (no async producer) their one-job call awaited through
    ``run_in_executor`` on a pool of one thread per coroutine. Jobs/s until every call
    returned; for jobmaster also until ``flush()`` (every job in the master)."""
    out = Outcome()
    name = f"9 async producer, {coroutines} coroutines"
    for system in systems:
        def run(system: System = system) -> None:
            step = ctx.step("aprod")
            system.open(step)
            key = ctx.prefix + "aprod:" + step
            system.delay(key)  # warm-up
            system.recorded()
            t0 = time.perf_counter()
            system.produce_concurrently(key, n, coroutines)
            t1 = time.perf_counter()
            system.recorded()
            t2 = time.perf_counter()
            out.row(name, "jobs/s, every call returned", "higher").values[system.key] = \
                n / (t1 - t0)
            if system.is_jobmaster:
                out.row(name, "jobs/s, all recorded in the master (flush returned)",
                        "higher").values[system.key] = n / (t2 - t0)
        _guard(out, system, name, run)
    jm = next((s for s in systems if s.is_jobmaster), None)
    out.notes += [f"{'jobmaster' if s.is_jobmaster else s.label} async producer: "
                  f"{s.async_method}" for s in systems if not s.is_jobmaster or s is jm]
    return out


# -- 10. I/O-bound ----------------------------------------------------------------------------
IO_CONCURRENCY = 100


def io_concurrency(system: System) -> int:
    """Jobs one worker process of this system waits on at once: 100, RQ 1 (one job at a
    time per process, no threads or greenlets)."""
    return 1 if isinstance(system, RQPeer) else IO_CONCURRENCY


def io_bound(ctx: Context, systems: Sequence[System], n: int, seconds: float = 0.1) -> Outcome:
    """N jobs that each wait ``seconds`` (``asyncio.sleep`` in the async-capable systems,
    ``time.sleep`` under greenlets in Celery, Dramatiq and huey), ONE worker process at
    concurrency 100 (RQ: 1, and then only as many jobs as 20 s at its ceiling allow).
    Throughput from the first job's start (first done − ``seconds``) to the last done
    (jobmaster: all ``succeeded`` in the master), as a share of the ceiling
    concurrency / ``seconds``; the worker's peak RSS (its process tree) while draining."""
    out = Outcome()
    name = "10 I/O-bound, one worker process"
    for system in systems:
        def run(system: System = system) -> None:
            conc = io_concurrency(system)
            ceiling = conc / seconds
            jobs = n if conc >= IO_CONCURRENCY else max(10, min(n, int(ceiling * 20)))
            step = ctx.step("io")
            system.open(step)
            key = ctx.prefix + "io:" + step
            system.bulk(key, jobs, "io", seconds)
            system.recorded()
            rss: list[float] = []
            launched, first, executed, done = _launch_and_drain(ctx, system, key, jobs, 1, conc,
                                                                mode="io", rss=rss)
            rate = jobs / (done - (first - seconds))
            out.row(name, "jobs", "higher", ratio=False).values[system.key] = jobs
            out.row(name, "jobs at once (concurrency)", "higher",
                    ratio=False).values[system.key] = conc
            out.row(name, "jobs/s, first start → all done (jobmaster: succeeded in the "
                    "master)", "higher").values[system.key] = rate
            out.row(name, "% of the ceiling (concurrency / 0.1 s)", "higher",
                    digits=1).values[system.key] = rate / ceiling * 100
            if system.is_jobmaster:
                out.row(name, "% of the ceiling, until the last job ran (counter = N)",
                        "higher", digits=1).values[system.key] = \
                    jobs / (executed - (first - seconds)) / ceiling * 100
            out.row(name, "jobs/s, launch → all done", "higher").values[system.key] = \
                jobs / (done - launched)
            out.row(name, "worker peak RSS, MiB (process tree)", "lower",
                    digits=1).values[system.key] = rss[0] if rss else float("nan")
            out.row(name, "worker PSS once done, MiB (process tree; shared pages once)",
                    "lower", digits=1).values[system.key] = rss[1] if rss else float("nan")
        _guard(out, system, name, run)
    out.notes += _commands(systems, "io", "I/O workers")
    return out


# -- 11. CPU-bound ------------------------------------------------------------------------------
def cpu_bound(ctx: Context, systems: Sequence[System], n: int, ms: float = 5.0) -> Outcome:
    """N jobs of ~``ms`` ms of hashing (``hashlib.sha256`` chained, the rounds calibrated
    once in the bench process), concurrency 2 (processes: jobmaster ``-c 2``, Celery
    prefork ``-c 2``, Dramatiq 2 processes × 1 thread, RQ 2 ``SimpleWorker``s, huey 2
    processes, taskiq ``--workers 2``, arq/procrastinate/PgQueuer 2 worker processes).
    The ideal is 2 cores / ``ms``: the machine's two cores, shared with Redis and the rest."""
    from bench.handlers import calibrate

    out = Outcome()
    name = f"11 CPU-bound, {ms:g} ms jobs, concurrency 2"
    rounds = calibrate(ms / 1000.0)
    ideal = 2 / (ms / 1000.0)
    for system in systems:
        def run(system: System = system) -> None:
            step = ctx.step("cpu")
            system.open(step)
            key = ctx.prefix + "cpu:" + step
            system.bulk(key, n, "cpu", rounds)
            system.recorded()
            launched, first, _executed, done = _launch_and_drain(ctx, system, key, n, 1, 2,
                                                                 mode="cpu")
            rate = n / (done - (first - ms / 1000.0))
            out.row(name, "jobs/s, first start → all done", "higher").values[system.key] = rate
            out.row(name, f"% of the ideal (2 cores / {ms:g} ms = {ideal:,.0f} jobs/s)",
                    "higher", digits=1).values[system.key] = rate / ideal * 100
            out.row(name, "jobs/s, launch → all done", "higher").values[system.key] = \
                n / (done - launched)
        _guard(out, system, name, run)
    out.notes.append(f"CPU-bound job: {rounds:,} chained SHA-256 rounds, calibrated to "
                     f"{ms:g} ms in the bench process")
    out.notes += _commands(systems, "cpu", "CPU workers")
    return out


# -- 12. PostgreSQL agent vs procrastinate and PgQueuer -----------------------------------------
def postgres(ctx: Context, systems: Sequence[System], single: int, batch: int,
             drain_n: int) -> Outcome:
    """jobmaster with the PostgreSQL agent (and master) against procrastinate and PgQueuer:
    ``single`` one-job enqueues in a loop, one batch of ``batch``, then a drain of
    ``drain_n`` at concurrency 2, start-up included and excluded. Ratios divide
    jobmaster·postgres."""
    out = Outcome()
    name = "12 PostgreSQL: jobmaster·postgres vs procrastinate, PgQueuer"
    lead = "jm-postgres"
    for system in systems:
        def run(system: System = system) -> None:
            step = ctx.step("pg")
            system.open(step)
            key = ctx.prefix + "pg:" + step
            system.delay(key)
            system.recorded()
            t0 = time.perf_counter()
            done = _timed_loop(system, key, single, 20.0)
            t1 = time.perf_counter()
            system.recorded()
            t2 = time.perf_counter()
            out.row(name, "enqueue one call per job: jobs/s, calls returned", "higher",
                    lead=lead).values[system.key] = done / (t1 - t0)
            if system.is_jobmaster:
                out.row(name, "enqueue one call per job: jobs/s, all in the master", "higher",
                        lead=lead).values[system.key] = done / (t2 - t0)
            t0 = time.perf_counter()
            system.bulk(key, batch)
            t1 = time.perf_counter()
            system.recorded()
            t2 = time.perf_counter()
            out.row(name, f"bulk enqueue of {batch:,}: jobs/s, call returned", "higher",
                    lead=lead).values[system.key] = batch / (t1 - t0)
            if system.is_jobmaster:
                out.row(name, f"bulk enqueue of {batch:,}: jobs/s, all in the master",
                        "higher", lead=lead).values[system.key] = batch / (t2 - t0)
            system.close()
            step = ctx.step("pgd")
            system.open(step)
            key = ctx.prefix + "pgd:" + step
            system.bulk(key, drain_n)
            system.recorded()
            cpu: dict[str, float] = {}
            launched, first, _executed, done = _launch_and_drain(ctx, system, key, drain_n,
                                                                 1, 2, cpu=cpu)
            out.row(name, f"drain {drain_n:,}: jobs/s, launch → all done (jobmaster: "
                    "succeeded in the master)", "higher",
                    lead=lead).values[system.key] = drain_n / (done - launched)
            out.row(name, f"drain {drain_n:,}: jobs/s, first job → all done", "higher",
                    lead=lead).values[system.key] = drain_n / max(done - first, 1e-9)
            out.row(name, f"drain {drain_n:,}: CPU µs per job, workers (start-up included) "
                    "+ servers", "lower", digits=0, lead=lead).values[system.key] = \
                sum(cpu.values()) / drain_n * 1e6
        _guard(out, system, name, run)
    out.notes += [f"{s.label} PostgreSQL workers: {s.worker_modes['noop']}" for s in systems
                  if s.worker_modes and not s.is_jobmaster]
    return out
