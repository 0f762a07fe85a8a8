"""Run a worker with beat, watch a static and a dynamic schedule fire, pause one.

    python examples/scheduling/run.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.chdir(HERE)  # the app's SQLite files live next to this script
sys.path.insert(0, str(HERE))

for stale in HERE.glob("jobmaster*.db*"):  # start from a clean slate every run
    stale.unlink()

from tasks import app, sync_prices  # noqa: E402


def show_new_jobs(seen: set[str]) -> None:
    for job in reversed(app.jobs.list(status="succeeded", limit=50)):
        if job.id not in seen:
            seen.add(job.id)
            due = job.occurrence.strftime("%H:%M:%S") if job.occurrence else "-"
            print(f"  {job.schedule_name:<14} occurrence {due}  -> {job.result}")


def main() -> int:
    # Dynamic: stored in the master at once (the SQLite master creates its schema here).
    sync_prices.recurring("every 3 seconds", kwargs={"source": "ecb"}, name="sync-prices",
                          overlap="skip", misfire="skip")
    print("created the dynamic schedule 'sync-prices'")

    worker = subprocess.Popen(
        [sys.executable, "-m", "jobmaster", "worker", "-A", "tasks", "--beat", "-c", "2",
         "-l", "ERROR"],
        cwd=HERE,
    )
    print("started: jobmaster worker -A tasks --beat -c 2\n")
    try:
        seen: set[str] = set()
        deadline = time.monotonic() + 7
        while time.monotonic() < deadline:
            show_new_jobs(seen)
            time.sleep(0.2)

        app.schedules.pause("sync-prices")
        print("\npaused 'sync-prices'; every schedule of the cluster:")
        for s in app.schedules.list():
            state = "paused" if s.paused else "active"
            kind = "static" if s.static else "dynamic"
            last = s.last_fire_at.strftime("%H:%M:%S") if s.last_fire_at else "-"
            fires = s.next_fire_at is not None and not s.paused
            upcoming = s.next_fire_at.strftime("%H:%M:%S") if fires else "-"
            print(f"  {s.name:<14} {kind:<8} {state:<7} {s.expression!r:<19} "
                  f"last {last}  next {upcoming}")
        return 0
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)


if __name__ == "__main__":
    sys.exit(main())
