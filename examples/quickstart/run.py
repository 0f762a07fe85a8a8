"""Start two worker processes, enqueue a few jobs, print results as they finish.

    python examples/quickstart/run.py
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

from tasks import add, app, build_report, fetch_rate  # noqa: E402


def main() -> int:
    started = time.monotonic()
    worker = subprocess.Popen(
        [sys.executable, "-m", "jobmaster", "worker", "-A", "tasks", "-c", "2", "-l", "ERROR"],
        cwd=HERE,
    )
    try:
        handles = [add.delay(x=i, y=i * 10) for i in range(1, 6)]
        handles += [fetch_rate.delay(currency=c) for c in ("EUR", "GBP", "JPY")]
        handles.append(build_report.delay(month="2026-11", pages=4))
        print(f"enqueued {len(handles)} jobs; two worker processes are running them\n")
        for handle in handles:
            job = handle.wait(timeout=25)
            if job.status.value == "succeeded":
                outcome = repr(job.result)
            else:
                outcome = f"{job.status.value}: {job.error.message if job.error else ''}"
            retries = f", {job.attempts} attempts" if job.attempts > 1 else ""
            print(f"  {job.definition_id:<28} {str(job.kwargs):<32} -> {outcome}{retries}")
        counts = app.jobs.counts()
        print(f"\nmaster: {counts}")
        print(f"done in {time.monotonic() - started:.1f} s")
        return 0
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)


if __name__ == "__main__":
    sys.exit(main())
