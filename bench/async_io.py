"""I/O-bound ``async def`` jobs on one worker process: N jobs that each
``await asyncio.sleep(0.1)``, drained by ``jobmaster worker -c 1``; prints the time from
the worker's launch, and from the first start, until every job is ``succeeded`` in the
master, and the fraction of the ceiling (N × 0.1 s / async slots) reached.

    python bench/async_io.py [--jobs 1000] [--slots 100] [--agent redis|sqlite]

Uses the embedded SQLite master and agent in a temporary directory, or with
``--agent redis`` a PostgreSQL master (127.0.0.1:5432) and Redis (127.0.0.1:6379, db 13).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobmaster import App  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=100)
    parser.add_argument("--agent", choices=["sqlite", "redis"], default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        name = f"bench-{uuid.uuid4().hex[:8]}"
        if args.agent == "redis":
            master, agent = ("postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                             "redis://127.0.0.1:6379/13")
        else:
            master, agent = f"sqlite:///{tmp}/master.db", f"sqlite:///{tmp}/agent.db"
        env = {**os.environ, "JOBMASTER_NAME": name, "JOBMASTER_MASTER_URL": master,
               "JOBMASTER_AGENT_URL": agent, "JOBMASTER_AUTO_MIGRATE": "true",
               "PYTHONPATH": str(ROOT)}
        os.environ.update({k: v for k, v in env.items() if k.startswith("JOBMASTER_")})
        from tests.fixtures.asyncapp import make_app

        app: App = make_app()
        app.migrate()
        handles = app.definition("nap").delay_many(
            [{"seconds": 0.1, "tag": str(i)} for i in range(args.jobs)])
        app.flush()
        launched = time.perf_counter()
        launched_at = time.time()
        worker = subprocess.Popen(
            [sys.executable, "-m", "jobmaster", "worker", "-A", "tests.fixtures.asyncapp",
             "-c", "1", "--async-slots", str(args.slots), "-l", "WARNING"],
            cwd=ROOT, env=env)
        try:
            while app.jobs.count(status="succeeded") < args.jobs:
                time.sleep(0.02)
            done = time.perf_counter() - launched
        finally:
            worker.terminate()
            worker.wait(30)
        jobs = [h.record() for h in handles[:: max(args.jobs // 200, 1)]]
        first = min(j.started_at for j in jobs if j.started_at)
        last = max(j.finished_at for j in jobs if j.finished_at)
        ceiling = args.jobs * 0.1 / args.slots
        print(f"{args.jobs} jobs x 0.1 s, 1 worker process, {args.slots} async slots, "
              f"{args.agent} agent")
        print(f"  launch -> all succeeded in the master: {done:.2f} s")
        print(f"  launch -> first start: {first.timestamp() - launched_at:.2f} s; first start "
              f"-> last finish (sampled): {(last - first).total_seconds():.2f} s; last finish "
              f"-> all recorded: {launched_at + done - last.timestamp():.2f} s")
        print(f"  ceiling (jobs x 0.1 s / slots): {ceiling:.2f} s -> "
              f"{ceiling / done:.0%} of it from launch")
        app.close()


if __name__ == "__main__":
    main()
