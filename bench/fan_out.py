"""A fan-out query of N items (default 100,000) run by one worker: the time the query job
takes to enqueue them all (in the master and on the agent) and the peak resident memory of
the worker process that ran it.

    python bench/fan_out.py [--items 100000] [--agent sqlite|redis]

``--agent redis`` uses PostgreSQL (127.0.0.1:5432, database postgres) as master and Redis
(127.0.0.1:6379, db 13); the default is the embedded SQLite master and agent in a
temporary directory.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--agent", choices=["sqlite", "redis"], default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.agent == "redis":
            master, agent = ("postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                             "redis://127.0.0.1:6379/13")
        else:
            master, agent = f"sqlite:///{tmp}/master.db", f"sqlite:///{tmp}/agent.db"
        env = {"JOBMASTER_NAME": f"fan-{uuid.uuid4().hex[:8]}", "JOBMASTER_MASTER_URL": master,
               "JOBMASTER_AGENT_URL": agent, "JOBMASTER_AUTO_MIGRATE": "true",
               "JM_BENCH_RSS": f"{tmp}/rss"}
        os.environ.update(env)
        from bench.fanout_app import app

        app.migrate()
        query = app.fan_out_now("items-query", count=args.items)
        worker = subprocess.Popen(
            [sys.executable, "-m", "jobmaster", "worker", "-A", "bench.fanout_app", "-c", "1",
             "--lane", "fanout", "-l", "WARNING"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            result = query.get(timeout=3600)
        finally:
            worker.terminate()
            worker.wait(60)
        job = query.record()
        took = (job.finished_at - job.started_at).total_seconds()  # type: ignore[operator]
        rss = int(Path(f"{tmp}/rss").read_text())
        print(f"fan-out of {args.items:,} items, {args.agent} agent: {result}")
        print(f"  query job: {took:.1f} s ({args.items / took:,.0f} items/s); peak RSS of "
              f"its worker process {rss / 1024:.0f} MiB")
        print(f"  in the master: {app.jobs.count(definition_id='item'):,} item jobs; on the "
              f"agent: {app.agent().length():,}")
        app.close()


if __name__ == "__main__":
    main()
