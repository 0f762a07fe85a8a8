"""100,000 jobs scheduled across the next hour: enqueue rate, master size, worker and beat
memory before and after, and a sample of jobs promoted by beat and run on time.

    python bench/scheduled_on_time.py [--jobs 100000] [--samples 200]

Needs PostgreSQL (master) and Redis (agent) on their default local ports. Starts one
worker and one beat, and stops them at the end; deletes what it stored.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MASTER = os.environ.get("JM_BENCH_MASTER", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
AGENT = os.environ.get("JM_BENCH_AGENT", "redis://127.0.0.1:6379/12")
ENV = {
    "JOBMASTER_NAME": "future-bench",
    "JOBMASTER_MASTER_URL": MASTER,
    "JOBMASTER_AGENT_URL": AGENT,
    "JOBMASTER_AGENT_HORIZON": "5",
    "JOBMASTER_AUTO_MIGRATE": "true",
    "JOBMASTER_BEAT_INTERVAL": "0.5",
}
os.environ.update(ENV)

from jobmaster import App  # noqa: E402
from jobmaster.master.schema import attempts, jobs  # noqa: E402

app = App("future-bench")


@app.job(definition_id="future-noop")
def noop(i: int) -> None:
    """Does nothing: the run itself is what is measured."""


def rss_mb(pid: int, children: bool = True) -> float:
    """Resident memory of a process (and its children), in MB."""
    total = 0
    pids = [pid]
    if children:
        try:
            pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def table_mb() -> float:
    with app.master.engine.connect() as conn:
        return conn.execute(sa.text("SELECT pg_total_relation_size('jobmaster_jobs')")
                            ).scalar() / 1e6


def clean() -> None:
    with app.master.engine.begin() as conn:
        ids = sa.select(jobs.c.id).where(jobs.c.cluster == app.name)
        conn.execute(attempts.delete().where(attempts.c.job_id.in_(ids)))
        conn.execute(jobs.delete().where(jobs.c.cluster == app.name))
    app.agent().purge()


def start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "jobmaster", *args, "-A",
                             "bench.scheduled_on_time", "-l", "WARNING"], cwd=ROOT,
                            env={**os.environ, **ENV})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    app.migrate()
    clean()
    size_before = table_mb()
    worker, beat = start("worker", "-c", "2"), start("beat")
    try:
        time.sleep(3)
        worker_before, beat_before = rss_mb(worker.pid), rss_mb(beat.pid, children=False)
        now = datetime.now(UTC)
        hour = [now + timedelta(seconds=120 + 3600 * i / args.jobs) for i in range(args.jobs)]
        started = time.perf_counter()
        for start_at in range(0, args.jobs, 10_000):
            chunk = hour[start_at : start_at + 10_000]
            noop.delay_many([{"i": i} for i in range(len(chunk))], at=chunk)
        elapsed = time.perf_counter() - started
        samples_at = [datetime.now(UTC) + timedelta(seconds=10 + 30 * i / args.samples)
                      for i in range(args.samples)]
        handles = noop.delay_many([{"i": -1} for _ in samples_at], at=samples_at)
        scheduled = app.master.count_scheduled(app.name)
        deadline = time.monotonic() + 120
        ids = [h.id for h in handles]
        while time.monotonic() < deadline:
            statuses = app.master.job_statuses(ids)
            if len(statuses) == len(ids) and set(statuses.values()) == {"succeeded"}:
                break
            time.sleep(1)
        late = []
        for h in handles:
            job = app.jobs.get(h.id)
            if job.started_at is not None and job.scheduled_at is not None:
                late.append((job.started_at - job.scheduled_at).total_seconds() * 1000)
        worker_after, beat_after = rss_mb(worker.pid), rss_mb(beat.pid, children=False)
        size_after = table_mb()
    finally:
        for proc in (worker, beat):
            proc.send_signal(signal.SIGTERM)
        for proc in (worker, beat):
            proc.wait(30)
        clean()
    late.sort()
    print("| measure | value |\n|---|---|")
    print(f"| jobs scheduled across the next hour | {args.jobs:,} |")
    rate = args.jobs / elapsed
    print(f"| enqueue rate (delay_many with at=, master-held) | {rate:,.0f} jobs/s |")
    print(f"| held in the master as scheduled | {scheduled:,} |")
    print(f"| master table size growth | {size_after - size_before:,.1f} MB |")
    print(f"| worker RSS (supervisor + 2 children) before / after | "
          f"{worker_before:.1f} / {worker_after:.1f} MB |")
    print(f"| beat RSS before / after | {beat_before:.1f} / {beat_after:.1f} MB |")
    print(f"| sample jobs promoted by beat and run | {len(late)} of {args.samples} |")
    if late:
        print(f"| start lateness p50 / p99 / max | {statistics.median(late):.0f} / "
              f"{late[int(len(late) * 0.99) - 1]:.0f} / {late[-1]:.0f} ms |")
    return 0 if len(late) == args.samples else 1


if __name__ == "__main__":
    sys.exit(main())
