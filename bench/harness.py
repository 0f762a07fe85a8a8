"""Plumbing of the bench: the run's context, services, spawned processes, RSS, waiting.

Everything a run starts is a child process in its own process group (``Spawned``); the run
keeps a list of them and ``stop_all`` ends each group by id (SIGTERM, then SIGKILL after a
grace period), so nothing outlives the run, whatever fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis

ROOT = Path(__file__).resolve().parent.parent


class BenchError(Exception):
    """A scenario could not be measured (a service down, a wait timed out, a worker died)."""


# -- services -------------------------------------------------------------------------------
@dataclass
class Services:
    """Where the services are. The bench starts none of them."""

    redis_url: str = "redis://127.0.0.1:6379/11"
    postgres_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    nats_url: str = "nats://127.0.0.1:4222"
    peer_redis_url: str = "redis://127.0.0.1:6379/12"  # RQ's and arq's unprefixable keys

    def check(self) -> dict[str, str | None]:
        """Service → None if reachable, else the reason (a clear line for the user)."""
        problems: dict[str, str | None] = {}
        try:
            r = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=5)
            r.ping()
            problems["redis"] = None
        except redis.RedisError as exc:
            problems["redis"] = f"Redis is not reachable at {self.redis_url} ({exc})"
        try:
            import psycopg

            with psycopg.connect(_libpq(self.postgres_url), connect_timeout=3) as conn:
                conn.execute("select 1")
            problems["postgres"] = None
        except Exception as exc:  # noqa: BLE001 - any failure means "not usable"
            problems["postgres"] = (f"PostgreSQL is not reachable at {self.postgres_url} "
                                    f"({str(exc).strip()})")
        parts = urlsplit(self.nats_url)
        try:
            with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), 2):
                problems["nats"] = None
        except OSError as exc:
            problems["nats"] = f"NATS is not reachable at {self.nats_url} ({exc})"
        return problems


def _libpq(url: str) -> str:
    """A libpq URL from a SQLAlchemy-style one."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def with_database(url: str, database: str) -> str:
    """The same PostgreSQL URL with another database name."""
    parts = urlsplit(url)
    return parts._replace(path="/" + database).geturl()


class BenchDatabase:
    """A PostgreSQL database of this run only (``jm_bench_<run>``), dropped at the end: the
    jobmaster master and the PostgreSQL agent live there, so the run never touches another
    database and ``pg_total_relation_size`` measures only the run's own rows. The PostgreSQL
    peers get one each the same way (``procrastinate_bench_<run>``, ``pgqueuer_bench_<run>``)."""

    def __init__(self, admin_url: str, run_id: str, prefix: str = "jm") -> None:
        self.admin_url = _libpq(admin_url)
        self.name = f"{prefix}_bench_{run_id}"
        self.url = with_database(self.admin_url, self.name)
        self.sqlalchemy_url = self.url.replace("postgresql://", "postgresql+psycopg://", 1)
        self.created = False

    def create(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.created = True

    def drop(self) -> None:
        if not self.created:
            return
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.created = False

    def scalar(self, sql: str, *params: Any) -> Any:
        import psycopg

        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute(sql, params).fetchone()
        return None if row is None else row[0]


# -- processes --------------------------------------------------------------------------------
@dataclass
class Spawned:
    """A process the bench started, leader of its own process group."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


@dataclass
class Context:
    """One run: ids, services, the processes it started, where logs go."""

    run_id: str
    services: Services
    quick: bool
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="jmbench-")))
    spawned: list[Spawned] = field(default_factory=list)
    db: BenchDatabase | None = None
    peer_dbs: dict[str, BenchDatabase] = field(default_factory=dict)
    verbose: bool = False
    step_counter: int = 0
    spawn_counter: int = 0

    @property
    def prefix(self) -> str:
        """Prefix of every Redis key the run writes (counters, Celery's and Dramatiq's)."""
        return f"jmbench:{self.run_id}:"

    def step(self, label: str) -> str:
        """A fresh id for one measured step (counter keys, namespaces, clusters)."""
        self.step_counter += 1
        return f"{self.step_counter}{label}"

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.services.redis_url, socket_timeout=30)

    def redis_at(self, url: str) -> redis.Redis:
        return redis.Redis.from_url(url, socket_timeout=30)

    def peer_db_url(self, peer: str) -> str:
        """The libpq URL of a PostgreSQL peer's own database (``procrastinate_bench_<run>``
        ...), created and dropped by bench/run.py."""
        return with_database(_libpq(self.services.postgres_url), f"{peer}_bench_{self.run_id}")

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None,
              wrap: Sequence[str] | None = None) -> Spawned:
        """Start ``argv`` (a Python module run by this interpreter) in its own process
        group, output to a log file of the run."""
        self.spawn_counter += 1
        log_path = self.workdir / f"{self.spawn_counter:03d}-{name}.log"
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
        full_env.update(self.bench_env())
        cmd = [*(wrap or ()), sys.executable, *argv]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        spawned = Spawned(name, proc, log_path)
        self.spawned.append(spawned)
        if self.verbose:
            print(f"    started {name} pid {proc.pid}: {' '.join(cmd[-8:])}", file=sys.stderr)
        return spawned

    def bench_env(self) -> dict[str, str]:
        """The ``BENCH_*`` variables the apps of bench/ read (at import)."""
        return {"BENCH_REDIS_URL": self.services.redis_url, "BENCH_PREFIX": self.prefix,
                "BENCH_PEER_REDIS_URL": self.services.peer_redis_url,
                "BENCH_PROCRASTINATE_URL": self.peer_db_url("procrastinate"),
                "BENCH_PGQUEUER_URL": self.peer_db_url("pgqueuer")}

    def stop(self, spawned: Spawned, grace: float = 15.0, sig: int = signal.SIGTERM) -> None:
        """End one spawned process group: ``sig`` first, SIGKILL if still there after
        ``grace`` seconds."""
        if spawned not in self.spawned:
            return
        pgid = spawned.pid
        if spawned.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
            try:
                spawned.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)  # children of the group, whatever the leader did
        with contextlib.suppress(subprocess.TimeoutExpired):
            spawned.proc.wait(10)
        self.spawned.remove(spawned)

    def stop_all(self, grace: float = 15.0) -> None:
        for spawned in list(self.spawned):
            self.stop(spawned, grace)


# -- measuring --------------------------------------------------------------------------------
def children(pid: int) -> list[int]:
    """Direct children of a process (Linux /proc)."""
    out: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tasks = list(task_dir.iterdir())
    except OSError:
        return out
    for task in tasks:
        with contextlib.suppress(OSError):
            out += [int(p) for p in (task / "children").read_text().split()]
    return out


def tree(pid: int) -> list[int]:
    """A process and all its descendants."""
    result, todo = [], [pid]
    while todo:
        p = todo.pop()
        result.append(p)
        todo += children(p)
    return result


def rss_kib(pid: int) -> int:
    """VmRSS of one process in KiB (0 if gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mib(pid: int) -> float:
    """Summed VmRSS of a process and its descendants, in MiB (shared pages count once
    per process, as ``ps`` shows them)."""
    return sum(rss_kib(p) for p in tree(pid)) / 1024.0


def tree_pss_mib(pid: int) -> float:
    """Summed PSS (proportional set size: a page shared by k processes counts 1/k in each)
    of a process and its descendants, in MiB, from ``/proc/<pid>/smaps_rollup``; unlike
    summed RSS it counts pages a forked child shares with its parent once."""
    total = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            pass
    return total / 1024.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by a process and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs so far, from /proc/stat."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = float(sum(fields[:8]))
    return total - idle, total


_SERVERS = {"redis-server": "Redis", "postgres": "PostgreSQL", "nats-server": "NATS"}


def cpu_snapshot(worker_pids: Sequence[int]) -> dict[str, float]:
    """CPU seconds used so far, by who: the given worker trees, each server (Redis,
    PostgreSQL with all its backends, NATS, found by process name), and the whole machine
    (``busy``; ``total`` is busy + idle, in CPU seconds)."""
    import resource

    tick = os.sysconf("SC_CLK_TCK")
    me = resource.getrusage(resource.RUSAGE_SELF)
    out = {"workers": sum(cpu_seconds(p) for p in worker_pids),
           "bench": me.ru_utime + me.ru_stime}
    for label in _SERVERS.values():
        out[label] = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        label = _SERVERS.get(comm)
        if label is None:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[label] += (int(fields[11]) + int(fields[12])) / tick
    busy, total = machine_cpu()
    out["busy"], out["total"] = busy / tick, total / tick
    return out


def wait_until(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.01,
               watch: Sequence[Spawned] = ()) -> float:
    """Poll ``check`` until true; return the ``time.perf_counter()`` it became true.
    Raise ``BenchError`` after ``timeout`` seconds or if a watched process died."""
    deadline = time.perf_counter() + timeout
    while True:
        if check():
            return time.perf_counter()
        now = time.perf_counter()
        for s in watch:
            if not s.alive():
                raise BenchError(f"{s.name} (pid {s.pid}) exited with {s.proc.returncode} "
                                 f"while waiting for {what}; its log ({s.log_path}):\n"
                                 f"{s.log_tail()}")
        if now >= deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def delete_keys(client: redis.Redis, pattern: str) -> int:
    """Delete the keys matching ``pattern`` (SCAN, never KEYS or FLUSHDB)."""
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += client.unlink(*batch)
            batch = []
    if batch:
        deleted += client.unlink(*batch)
    return deleted


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)
