"""Beat failover under fire: three beats, a schedule firing every second, a worker running
its jobs, and the leading beat killed with SIGKILL every few seconds (a new beat started
in its place). Prints whether each fire time became exactly one job, the gaps, and how
late each job started after its fire time (p50 / p99 / max).

    python bench/beat_failover.py [--duration 60] [--kill-every 5] [--master postgres|mysql]

The master is PostgreSQL (127.0.0.1:5432, database postgres) or MySQL (127.0.0.1:3306,
database test), the agent Redis (127.0.0.1:6379, db 14); default settings otherwise
(beat_interval 1 s, beat_lease_seconds 10 s), so a takeover faster than the lease comes
from the session lock.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobmaster import App  # noqa: E402

app = App(os.environ.get("JOBMASTER_NAME", "beat-failover"))


@app.job(definition_id="tick")
def tick() -> None:
    """Nothing: the start time is what is measured."""


app.recurring("1s", "tick", name="every-second")

MASTERS = {"postgres": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
           "mysql": "mysql+pymysql://root@127.0.0.1:3306/test"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--kill-every", type=float, default=5.0)
    parser.add_argument("--master", choices=sorted(MASTERS), default="postgres")
    args = parser.parse_args()
    env = {**os.environ, "JOBMASTER_NAME": f"failover-{uuid.uuid4().hex[:8]}",
           "JOBMASTER_MASTER_URL": MASTERS[args.master],
           "JOBMASTER_AGENT_URL": "redis://127.0.0.1:6379/14",
           "JOBMASTER_AUTO_MIGRATE": "true", "PYTHONPATH": str(ROOT)}
    os.environ.update(env)
    here = App(env["JOBMASTER_NAME"])
    here.migrate()

    def start(*command: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "jobmaster", *command, "-A",
                                 "bench.beat_failover", "-l", "WARNING"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    worker = start("worker", "-c", "2")
    beats = [start("beat") for _ in range(3)]
    kills = 0
    killed: list[datetime] = []
    try:
        while not any(j.status.value == "succeeded" for j in here.jobs.list(limit=5)):
            time.sleep(0.1)  # measure from the first job run: not the worker's start-up
        began = datetime.now(UTC)
        end = time.monotonic() + args.duration
        while time.monotonic() < end:
            time.sleep(args.kill_every)
            lease = here.master.lease_holder(f"beat:{here.name}")
            if lease is None or lease[0] is None:
                continue
            pid = int(lease[0].split(":")[1])
            for beat in beats:
                if beat.pid == pid:
                    beat.send_signal(signal.SIGKILL)
                    killed.append(datetime.now(UTC))
                    beat.wait()
                    beats.remove(beat)
                    beats.append(start("beat"))
                    kills += 1
                    break
        finished = datetime.now(UTC)
        time.sleep(3.0)  # the last occurrences run
    finally:
        for proc in [*beats, worker]:
            proc.send_signal(signal.SIGTERM)
        for proc in [*beats, worker]:
            proc.wait(30)
    jobs = [j for j in _all_jobs(here) if j.occurrence is not None
            and began <= j.occurrence <= finished]
    fires = sorted(j.occurrence for j in jobs if j.occurrence is not None)
    late = sorted((j.started_at - j.occurrence).total_seconds() for j in jobs
                  if j.started_at is not None and j.occurrence is not None)
    gaps = [(b - a).total_seconds() for a, b in zip(fires, fires[1:], strict=False)]
    expected = int((finished - began).total_seconds())
    print(f"master {args.master}: {kills} leader kills in {args.duration:.0f} s")
    print(f"fire times: {len(fires)} jobs, {len(set(fires))} distinct, about {expected} "
          f"expected; largest gap {max(gaps, default=0):.1f} s")
    if late:
        p99 = late[min(len(late) - 1, int(len(late) * 0.99))]
        print(f"start lateness: p50 {statistics.median(late) * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.0f} ms, max {late[-1] * 1000:.0f} ms")
    if os.environ.get("JM_BENCH_VERBOSE"):
        for job in sorted(jobs, key=lambda j: j.occurrence)[:80]:  # type: ignore[attr-defined]
            after = min(((job.occurrence - k).total_seconds() for k in killed  # type: ignore[attr-defined]
                         if k <= job.occurrence), default=None)  # type: ignore[attr-defined]
            print(job.occurrence.time(), (job.started_at - job.occurrence).total_seconds(),  # type: ignore[attr-defined]
                  "since kill", after)
    ok = len(fires) == len(set(fires)) and all(g == 1.0 for g in gaps)
    print("each fire time exactly once, no gap" if ok else "DUPLICATES OR GAPS")
    sys.exit(0 if ok else 1)


def _all_jobs(target: App) -> list[object]:
    out: list[object] = []
    cursor = None
    while True:
        page = target.jobs.list(limit=1000, cursor=cursor)
        out.extend(page)
        cursor = page.next_cursor
        if cursor is None:
            return out


if __name__ == "__main__":
    main()
