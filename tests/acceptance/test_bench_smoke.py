"""The benchmark's smoke run: ``bench/run.py --quick --peers none`` in a subprocess.

It keeps the bench from rotting (every scenario runs end to end against the real services,
with real ``jobmaster worker`` and ``jobmaster beat`` processes: the first six scenarios and
the peer comparison's drains with start-up, launch → first job and import time, async producer,
I/O-bound, CPU-bound and PostgreSQL scenarios, for jobmaster only) without making CI depend
on the peers (Celery, Dramatiq, RQ, arq, taskiq, huey, procrastinate, PgQueuer) or on
timings: it asserts the exit status and that the table has a row for each scenario, never
a number.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.services import require

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_ROWS = {
    "enqueue": "| 1 enqueue",
    "bulk": "| 2 bulk enqueue",
    "drain": "| 3 drain",
    "latency": "| 4 latency",
    "future": "| 5 future jobs",
    "scaleout": "| 6 scale-out",
    "drain-startup": "| 7 drain, worker start-up included",
    "first-job": "| 8 worker launch → first job",
    "async-producer": "| 9 async producer",
    "io": "| 10 I/O-bound",
    "cpu": "| 11 CPU-bound",
    "postgres": "| 12 PostgreSQL",
}
# rows the peer comparison's scenarios must have for jobmaster (a value, not "—")
JOBMASTER_ROWS = (
    ("| 7 drain", "jobs/s, launch → all done"),
    ("| 8 worker launch", "launch → first job succeeded in the master"),
    ("| 8 worker launch", "import of the library"),
    ("| 9 async producer", "jobs/s, every call returned"),
    ("| 10 I/O-bound", "% of the ceiling (concurrency / 0.1 s)"),
    ("| 10 I/O-bound", "worker peak RSS"),
    ("| 11 CPU-bound", "jobs/s, first start → all done"),
    ("| 12 PostgreSQL", "drain"),
)
AGENT_COLUMNS = ("jobmaster·redis", "jobmaster·postgres", "jobmaster·nats", "jobmaster·sqlite")


def test_bench_quick_run_has_a_row_for_every_scenario(tmp_path: Path) -> None:
    for service in ("redis", "postgres", "nats"):
        require(service)
    out = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--peers", "none",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, (
        f"bench/run.py --quick exited {proc.returncode}\n--- stderr\n{proc.stderr[-4000:]}"
        f"\n--- stdout\n{proc.stdout[-4000:]}"
    )
    table = out.read_text()
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("| scenario |"))
    for column in AGENT_COLUMNS:
        assert column in header
    for scenario, prefix in SCENARIO_ROWS.items():
        assert any(line.startswith(prefix) for line in lines), f"no row for {scenario}"
    for prefix, metric in JOBMASTER_ROWS:
        row = next((line for line in lines if line.startswith(prefix) and metric in line), None)
        assert row is not None, f"no row {metric!r} in scenario {prefix[2:]!r}"
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert any(c not in ("", "—") for c in cells[2:]), f"no jobmaster value in {row}"
    assert "## Targets" in table
    assert table in proc.stdout  # the printed table is the written one


DASHBOARD_PAGES = ("overview", "jobs", "jobs, page 21 (cursor)", "jobs status=failed",
                   "jobs definition=def-7", "jobs lane=lane-3", "jobs priority=3",
                   "jobs worker=worker-42", "jobs meta tenant=tenant-7 (rare)",
                   "jobs meta region=eu (common)", "jobs one day (since, until)",
                   "job, succeeded", "job, failed (traceback)", "schedules",
                   "schedule schedule-1", "workers", "lanes", "dead letters", "definitions",
                   "bulk retry status=failed (confirm)")


def test_dashboard_pages_quick_run_answers_every_page() -> None:
    """``bench/dashboard_pages.py --quick``: 20,000 jobs seeded, every page served with 200
    and no error on it (its times are printed, not asserted)."""
    for service in ("redis", "postgres"):
        require(service)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "dashboard_pages.py"), "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
    )
    assert proc.returncode == 0, (
        f"bench/dashboard_pages.py --quick exited {proc.returncode}\n--- stderr\n"
        f"{proc.stderr[-4000:]}\n--- stdout\n{proc.stdout[-4000:]}"
    )
    rows = {cells[0]: cells[1:] for line in proc.stdout.splitlines()
            if line.startswith("| ") and len(cells := [c.strip() for c in
                                                       line.strip("|").split("|")]) >= 5}
    for page in DASHBOARD_PAGES:
        assert page in rows, f"no row for {page}"
        assert rows[page][0] == "200", f"{page}: {rows[page]}"
