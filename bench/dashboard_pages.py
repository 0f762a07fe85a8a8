"""Server time of every dashboard page with 1,000,000 jobs in a PostgreSQL master and a Redis
agent holding queued jobs and dead letters: median and max of several runs per page, in
process (``asgi_app(app)`` through httpx's ASGI transport), printed as a table. Exits 1 if a
page does not answer 200, shows an error, or (full runs) takes 300 ms or more at the median.

    python bench/dashboard_pages.py [--jobs 1000000] [--runs 7] [--keep] [--reuse] [--quick]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) and Redis on 127.0.0.1:6379.
The master is the database ``jobmaster_bench_dashboard``, made afresh and dropped at the end
unless ``--keep``; ``--reuse`` keeps it and skips the seeding when it already holds as many
jobs. The agent is Redis database 9 under the namespace ``bench_dashboard``, refilled on
every run. ``--quick`` is the smoke run: 20,000 jobs in ``jobmaster_bench_dashboard_quick``,
two runs per page, and no time limit.

The jobs are ``jobs_query.FILL``'s (the same mix as that benchmark: 80% succeeded, 5%
failed, 10% queued, 3% running, 2% scheduled; 50 definitions, 10 lanes, 5 priorities,
200 workers; metadata ``tenant`` with 1,000 values, rare, and ``region`` with 3, common;
created over 30 days), generated into a staging table and copied with what the pages show:
start and end times, arguments, results, errors with tracebacks, 1% as schedule runs.
A tenth of them has its audit trail (and failed attempts); the last 90 minutes have
per-minute totals; there are 20 schedules, 50 registered definitions, 22 workers (8 alive),
2,000 queued jobs and 320 dead letters in the agent.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

# run as a script: import the bench as the package ``bench`` from the repository root
sys.path[:1] = [str(Path(__file__).resolve().parent.parent)]

from bench.jobs_query import FILL, SERVER, SPAN_DAYS  # noqa: E402
from jobmaster import App  # noqa: E402
from jobmaster.agents.base import AgentMessage  # noqa: E402
from jobmaster.master.rows import envelope_from_row  # noqa: E402
from jobmaster.master.schema import jobs  # noqa: E402
from jobmaster.registry import definition_rows  # noqa: E402

DATABASE = "jobmaster_bench_dashboard"
REDIS = "redis://127.0.0.1:6379/9"
NAMESPACE = "bench_dashboard"
CLUSTER = "bench"
LIMIT_MS = 300.0
DEFINITIONS = 50
LANES = [f"lane-{n}" for n in range(10)]
SCHEDULES = 20
QUEUED_IN_AGENT = 2_000
DEAD_LETTERS = 300
MALFORMED_LETTERS = 20
DEEP_PAGES = 20

TRACEBACK = """Traceback (most recent call last):
  File "/srv/shop/.venv/lib/python3.12/site-packages/jobmaster/worker/child.py", line 212, in run
    result = definition.func(**kwargs)
             ^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/shop/orders/jobs.py", line 88, in settle_order
    receipt = payments.capture(order.payment_id, amount=order.total, currency=order.currency)
              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/shop/payments/client.py", line 141, in capture
    response = self._post(f"/v2/payments/{payment_id}/capture", json=body, timeout=10)
               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/shop/payments/client.py", line 97, in _post
    return self._session.post(self._base + path, **kwargs)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/shop/.venv/lib/python3.12/site-packages/requests/sessions.py", line 637, in post
    return self.request("POST", url, data=data, json=json, **kwargs)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/shop/.venv/lib/python3.12/site-packages/requests/sessions.py", line 589, in request
    resp = self.send(prep, **send_kwargs)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/shop/.venv/lib/python3.12/site-packages/requests/adapters.py", line 713, in send
    raise ReadTimeout(e, request=request)
"""

# The staged jobs (jobs_query.FILL) copied with what a real master holds besides: a wait
# before the start and a run time, the retries of failed jobs 30 s apart, JSON arguments
# and results, errors with a traceback, and every 100th job the run of a schedule.
COPY = """
INSERT INTO public.jobmaster_jobs (id, cluster, definition_id, lane, priority, status,
    encoding, payload, meta, attempts, max_retries, retry_delay, retry_backoff, created_at,
    scheduled_at, started_at, finished_at, updated_at, worker, error_type, error_message,
    error_traceback, result, schedule_name, occurrence)
SELECT s.id, s.cluster,
    CASE WHEN x.h % 100 = 0 THEN 'def-' || (x.h / 100 % :schedules) ELSE s.definition_id END,
    s.lane, s.priority, s.status, s.encoding,
    convert_to(json_build_object('order_id', x.h % 10000000,
                                 'customer', 'customer-' || x.h % 50000,
                                 'amount', (x.h % 100000) / 100.0, 'currency', 'EUR',
                                 'api_key', 'sk_live_' || md5(s.id))::text, 'UTF8'),
    s.meta, a.attempts, s.max_retries, s.retry_delay, s.retry_backoff, s.created_at,
    CASE WHEN s.status = 'scheduled' THEN CAST(:now AS timestamp)
              + (x.h % 86400) * interval '1 second'
         ELSE s.created_at END,
    t.started, t.finished, coalesce(t.finished, t.started, s.created_at), s.worker,
    e.type, e.message, CASE WHEN e.type IS NOT NULL THEN :traceback || e.type || ': '
                                                         || e.message END,
    CASE WHEN s.status = 'succeeded' THEN convert_to(json_build_object(
        'captured', true, 'receipt', 'rcpt-' || x.h % 1000000)::text, 'UTF8') END,
    CASE WHEN x.h % 100 = 0 THEN 'schedule-' || (x.h / 100 % :schedules) END,
    CASE WHEN x.h % 100 = 0 THEN s.created_at END
FROM bench_stage.jobmaster_jobs AS s,
LATERAL (SELECT abs(hashtext(s.id)::bigint) AS h) AS x,
LATERAL (SELECT CASE s.status WHEN 'failed' THEN s.max_retries + 1
                              WHEN 'queued' THEN 0 WHEN 'scheduled' THEN 0
                              ELSE 1 END AS attempts) AS a,
LATERAL (SELECT
    CASE WHEN s.status IN ('succeeded', 'failed', 'running') THEN s.created_at
         + (x.h % 5000) * interval '1 millisecond'
         + (a.attempts - 1) * interval '30 seconds' END AS started,
    CASE WHEN s.status IN ('succeeded', 'failed') THEN s.created_at
         + (x.h % 5000 + 20 + x.h / 5000 % 30000) * interval '1 millisecond'
         + (a.attempts - 1) * interval '30 seconds' END AS finished) AS t,
LATERAL (SELECT
    CASE WHEN s.status = 'failed' THEN (ARRAY['requests.exceptions.ReadTimeout',
        'payments.CardDeclined', 'ConnectionResetError', 'KeyError',
        'orders.OutOfStock'])[1 + x.h % 5] END AS type,
    CASE WHEN s.status = 'failed' THEN 'order ' || x.h % 10000000
        || ': payments.example.com read timed out (read timeout=10)' END AS message) AS e
"""

# The audit trail of every tenth job: enqueued (or scheduled), each attempt's start, the
# retries of failed jobs, and how it ended.
EVENTS = """
INSERT INTO jobmaster_events (job_id, status, at, attempt, worker, error_type,
    error_message, reason)
SELECT j.id, e.status, e.at, e.attempt, e.worker, e.error_type, e.error_message, e.reason
FROM jobmaster_jobs AS j
CROSS JOIN LATERAL (
    SELECT CASE WHEN j.status = 'scheduled' THEN 'scheduled' ELSE 'queued' END,
           j.created_at, 0, NULL, NULL, NULL, 'enqueued'
    UNION ALL
    SELECT 'running', j.started_at - (j.attempts - n) * interval '30 seconds', n, j.worker,
           NULL, NULL, NULL
    FROM generate_series(1, j.attempts) AS n WHERE j.started_at IS NOT NULL
    UNION ALL
    SELECT 'retrying', j.finished_at - (j.attempts - n) * interval '30 seconds', n,
           j.worker, j.error_type, j.error_message, NULL
    FROM generate_series(1, j.attempts - 1) AS n WHERE j.status = 'failed'
    UNION ALL
    SELECT j.status, j.finished_at, j.attempts, j.worker, j.error_type, j.error_message, NULL
    WHERE j.finished_at IS NOT NULL
) AS e(status, at, attempt, worker, error_type, error_message, reason)
WHERE j.cluster = :cluster AND abs(hashtext(j.id)::bigint) % 10 = 1
"""

ATTEMPTS = """
INSERT INTO jobmaster_attempts (job_id, attempt, worker, started_at, finished_at, outcome,
    error_type, error_message, error_traceback)
SELECT j.id, n, j.worker, j.started_at - (j.attempts - n) * interval '30 seconds',
       j.finished_at - (j.attempts - n) * interval '30 seconds',
       CASE WHEN n < j.attempts THEN 'retrying' ELSE 'failed' END,
       j.error_type, j.error_message, j.error_traceback
FROM jobmaster_jobs AS j, generate_series(1, j.attempts) AS n
WHERE j.cluster = :cluster AND j.status = 'failed' AND abs(hashtext(j.id)::bigint) % 10 = 1
"""

# Per-minute totals of the last 90 minutes: a row per minute, definition and worker that
# did work then (a quarter of them).
STATS = """
INSERT INTO jobmaster_stats (cluster, minute, definition_id, worker, started, succeeded,
    failed, retried, cancelled, wait_ms, run_ms)
SELECT :cluster, CAST(:minute AS timestamp) - m * interval '1 minute', 'def-' || d,
       'worker-' || w, n, n - n / 20 - n / 25 - (h % 50 = 0)::int, n / 25, n / 20,
       (h % 50 = 0)::int, n * (20 + h % 400), n * (50 + h / 400 % 2000)
FROM generate_series(0, 89) AS m, generate_series(0, :definitions - 1) AS d,
     generate_series(0, 7) AS w,
     LATERAL (SELECT abs(hashint8(m * 100000 + d * 100 + w)) AS h) AS x,
     LATERAL (SELECT 1 + x.h % 40 AS n) AS y
WHERE x.h / 7 % 4 = 0
"""


@dataclass(frozen=True)
class Page:
    """One measured request: a GET of ``path``, or a POST of ``form`` to it."""

    name: str
    path: str
    form: dict[str, str] | None = None


@dataclass(frozen=True)
class Measured:
    page: Page
    status: int
    problem: str
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


# -- the database ------------------------------------------------------------------------------
def admin() -> sa.Engine:
    return sa.create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")


def seeded_note(total: int) -> str:
    return f"jobmaster bench dashboard: {total} jobs seeded"


def open_database(name: str, total: int, reuse: bool) -> tuple[str, bool]:
    """The URL of database ``name``, and whether it already holds ``total`` seeded jobs
    (only with ``reuse``; otherwise it is made afresh)."""
    engine = admin()
    with engine.connect() as conn:
        note = conn.execute(sa.text(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
            "WHERE datname = :n"), {"n": name}).first()
        seeded = reuse and note is not None and note[0] == seeded_note(total)
        if not seeded:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"{SERVER}/{name}", seeded


def drop_database(name: str) -> None:
    engine = admin()
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def seed_jobs(app: App, database: str, total: int, end: datetime) -> None:
    """Fill the master with ``total`` jobs and the audit trail of a tenth of them."""
    engine = app.master.engine
    clock = Clock()
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS bench_stage CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA bench_stage"))
        conn.execute(sa.text("CREATE UNLOGGED TABLE bench_stage.jobmaster_jobs "
                             "(LIKE public.jobmaster_jobs INCLUDING DEFAULTS)"))
        conn.execute(sa.text("SET LOCAL search_path = bench_stage"))  # where FILL writes
        chunk = 250_000
        for first in range(1, total + 1, chunk):
            conn.execute(sa.text(FILL), {
                "cluster": CLUSTER, "end": naive(end), "span": SPAN_DAYS * 86400,
                "total": total, "first": first, "last": min(first + chunk - 1, total)})
    clock.lap("generate")
    with engine.begin() as conn:
        conn.execute(sa.text(COPY), {"now": naive(end), "schedules": SCHEDULES,
                                     "traceback": TRACEBACK})
        conn.execute(sa.text("DROP SCHEMA bench_stage CASCADE"))
    clock.lap("copy")
    with engine.begin() as conn:
        conn.execute(sa.text(EVENTS), {"cluster": CLUSTER})
        conn.execute(sa.text(ATTEMPTS), {"cluster": CLUSTER})
    clock.lap("audit trail")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
        # written out now rather than by a checkpoint during the measurements
        conn.execute(sa.text("CHECKPOINT"))
        conn.execute(sa.text(f"COMMENT ON DATABASE \"{database}\" IS "
                             f"'{seeded_note(total)}'"))
    clock.lap("vacuum analyze, checkpoint")
    counts = {}
    with engine.connect() as conn:
        for table in ("jobmaster_jobs", "jobmaster_events", "jobmaster_attempts"):
            counts[table] = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
    print(f"seeded {counts['jobmaster_jobs']:,} jobs, {counts['jobmaster_events']:,} events "
          f"and {counts['jobmaster_attempts']:,} failed attempts in {clock.total():.1f} s "
          f"({clock})", flush=True)


class Clock:
    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.laps: list[str] = []

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps.append(f"{name} {now - self.last:.1f} s")
        self.last = now

    def total(self) -> float:
        return self.last - self.started

    def __str__(self) -> str:
        return ", ".join(self.laps)


def naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


# -- what changes with the clock, written on every run ------------------------------------------
def handle(**kwargs: Any) -> None:
    """The benchmark's job definitions run nothing: the dashboard only reads."""


def define(app: App) -> None:
    for n in range(DEFINITIONS):
        options: dict[str, Any] = {"lane": LANES[n % len(LANES)]}
        if n % 3 == 0:
            options.update(max_retries=5, timeout=120)
        app.job(definition_id=f"def-{n}", **options)(handle)


def seed_cluster(app: App, now: datetime) -> None:
    """Definitions registered by a worker, schedules, a paused lane, the last 90 minutes'
    totals, and the agent's queued jobs and dead letters."""
    master = app.master
    master.register_definitions(definition_rows(
        app.definitions.values(), cluster=CLUSTER, lanes=LANES, hostname="host-0",
        worker="worker-0", at=now))
    expressions: list[str | timedelta] = ["*/5 * * * *", "0 * * * *", "30 2 * * *",
                                          timedelta(minutes=10), "0 9 * * 1-5"]
    for n in range(SCHEDULES):
        app.schedules.create(expressions[n % len(expressions)], f"def-{n}",
                             name=f"schedule-{n}", kwargs={"report": n, "region": "eu"})
    app.schedules.pause("schedule-5")
    app.schedules.pause("schedule-11")
    app.lanes.pause(LANES[-1])
    with master.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM jobmaster_stats WHERE cluster = :c"), {"c": CLUSTER})
        conn.execute(sa.text(STATS), {"cluster": CLUSTER, "definitions": DEFINITIONS,
                                      "minute": naive(now.replace(second=0, microsecond=0))})
        conn.execute(sa.text("ANALYZE jobmaster_stats"))
    fill_agent(app)


def fill_agent(app: App) -> None:
    """Empty the agent, then dead-letter failed jobs (and a few bodies that are no
    envelope) the way a worker does, and push the newest queued jobs."""
    agent = empty_agent(app)
    doomed = [envelope_from_row(row).to_message() for row in newest(app, "failed",
                                                                    DEAD_LETTERS)]
    at = time.time()
    doomed += [AgentMessage(f"00000000-0000-4000-8000-{n:012d}", LANES[n % len(LANES)],
                            n % 5, at, b'{"v": 0, "garbled": true}')
               for n in range(MALFORMED_LETTERS)]
    agent.push(doomed)
    reasons = ["definition 'def-{n}' is not registered on any worker of lane {lane}",
               "the master refused the record: value too long for type character "
               "varying(200)",
               "not a jobmaster envelope: bad field 'v'",
               "exceeded max_deliveries=5 (the worker died while running it 5 times)"]
    while claimed := agent.claim(LANES, 100, lease_seconds=60, consumer="bench"):
        agent.dead_letter([(c, reasons[i % len(reasons)].format(
            n=i % DEFINITIONS, lane=c.message.lane)) for i, c in enumerate(claimed)])
    agent.push([envelope_from_row(row).to_message()
                for row in newest(app, "queued", QUEUED_IN_AGENT)])


def empty_agent(app: App) -> Any:
    agent = app.agent("main")
    agent.purge()
    agent.purge_dead_letters()
    return agent


def newest(app: App, status: str, limit: int) -> list[Any]:
    with app.master.engine.connect() as conn:
        return list(conn.execute(
            sa.select(jobs).where(jobs.c.cluster == CLUSTER, jobs.c.status == status)
            .order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit)).mappings())


def heartbeat(app: App, now: datetime) -> None:
    """The workers' rows: 8 alive (seen now, 16 jobs running on each), 12 stopped and 2
    lost (running, but not seen for days)."""
    from jobmaster import __version__

    running = [row["id"] for row in newest(app, "running", 8 * 16)]
    for n in range(22):
        alive = n < 8
        app.master.worker_seen({
            "id": f"worker-{n}", "cluster": CLUSTER, "hostname": f"host-{n % 3}",
            "pid": 1000 + n, "agent": "main",
            "lanes": [LANES[(2 * n + k) % len(LANES)] for k in range(4)],
            "concurrency": 16, "status": "running" if alive or n >= 20 else "stopped",
            "started_at": now - timedelta(hours=6 + n),
            "last_seen": now if alive else now - timedelta(days=n - 7),
            "processed": 120_000 + 7_919 * n, "pool": "process", "version": __version__,
            "running": running[16 * n:16 * (n + 1)] if alive else [],
        })


# -- the pages -----------------------------------------------------------------------------------
async def pages(app: App, client: httpx.AsyncClient) -> list[Page]:
    with app.master.engine.connect() as conn:
        succeeded = conn.execute(sa.text(
            "SELECT job_id FROM jobmaster_events WHERE status = 'succeeded' "
            "ORDER BY id DESC LIMIT 1")).scalar()
        failed = conn.execute(sa.text(
            "SELECT job_id FROM jobmaster_attempts ORDER BY id DESC LIMIT 1")).scalar()
        last = conn.execute(sa.select(jobs.c.created_at).where(jobs.c.cluster == CLUSTER)
                            .order_by(jobs.c.created_at.desc()).limit(1)).scalar_one()
    day = (last - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    next_day = (last - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    await client.get("/")  # the CSRF cookie the bulk form sends back
    csrf = client.cookies["jobmaster_csrf"]
    return [
        Page("overview", "/"),
        Page("jobs", "/jobs"),
        Page(f"jobs, page {DEEP_PAGES + 1} (cursor)", await deep_page(client, "/jobs")),
        Page("jobs status=failed", "/jobs?status=failed"),
        Page("jobs definition=def-7", "/jobs?definition=def-7"),
        Page("jobs lane=lane-3", "/jobs?lane=lane-3"),
        Page("jobs priority=3", "/jobs?priority=3"),
        Page("jobs worker=worker-42", "/jobs?worker=worker-42"),
        Page("jobs meta tenant=tenant-7 (rare)", "/jobs?meta=tenant%3Dtenant-7"),
        Page("jobs meta region=eu (common)", "/jobs?meta=region%3Deu"),
        Page("jobs one day (since, until)", f"/jobs?since={day}&until={next_day}"),
        Page("job, succeeded", f"/jobs/{succeeded}"),
        Page("job, failed (traceback)", f"/jobs/{failed}"),
        Page("schedules", "/schedules"),
        Page("schedule schedule-1", "/schedules/schedule-1"),
        Page("workers", "/workers"),
        Page("lanes", "/lanes"),
        Page("dead letters", "/dead-letters"),
        Page("definitions", "/definitions"),
        Page("bulk retry status=failed (confirm)", "/jobs/bulk", {
            "csrf": csrf, "scope": "filter", "action": "retry", "status": "failed",
            "next": "/jobs?status=failed"}),
    ]


async def deep_page(client: httpx.AsyncClient, path: str) -> str:
    """The URL of the page reached from ``path`` by following ``DEEP_PAGES`` next links."""
    for _ in range(DEEP_PAGES):
        found = re.search(r'id="next-page" href="([^"]+)"', (await client.get(path)).text)
        if found is None:
            raise SystemExit(f"{path} has no next page: too few jobs for a deep page")
        path = html.unescape(found.group(1))
    return path


async def send(client: httpx.AsyncClient, page: Page) -> httpx.Response:
    if page.form is None:
        return await client.get(page.path)
    return await client.post(page.path, data=page.form)


async def measure(client: httpx.AsyncClient, page: Page, runs: int,
                  before: Callable[[], None]) -> Measured:
    """``runs`` timed requests after a warm-up; ``before`` runs untimed ahead of them."""
    before()
    response = await send(client, page)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        response = await send(client, page)
        samples.append((time.perf_counter() - started) * 1000)
    found = re.search(r'class="flash error"[^>]*>([^<]*)<', response.text)
    problem = html.unescape(found.group(1)) if found else ""
    return Measured(page, response.status_code, problem, samples)


def table(rows: list[Measured], runs: int, limit: bool) -> str:
    width = max(len(r.page.name) for r in rows)
    lines = [f"| {'page':<{width}} | status | median ms | max ms | < {LIMIT_MS:.0f} ms |",
             f"|{'-' * (width + 2)}|--------|-----------|--------|----------|"]
    for r in rows:
        under = ("yes" if r.median < LIMIT_MS else "NO") if limit else "-"
        lines.append(f"| {r.page.name:<{width}} | {r.status:>6} | {r.median:>9.1f} | "
                     f"{max(r.samples):>6.1f} | {under:<8} |"
                     + (f" shows: {r.problem}" if r.problem else ""))
    lines.append(f"(server time in process, median and max of {runs} run(s) after a "
                 "warm-up)")
    return "\n".join(lines)


async def measure_all(app: App, runs: int) -> list[Measured]:
    """Every page of ``asgi_app(app)``, served in process (no network, no server)."""
    from jobmaster.dashboard import asgi_app

    rows = []
    transport = httpx.ASGITransport(app=asgi_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as client:
        for page in await pages(app, client):
            rows.append(await measure(client, page, runs,
                                      lambda: heartbeat(app, datetime.now(UTC))))
            print(f"  {page.name}: {rows[-1].median:.1f} ms", file=sys.stderr, flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=None, help="default 1,000,000")
    parser.add_argument("--runs", type=int, default=None, help="default 7")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    parser.add_argument("--reuse", action="store_true",
                        help="Reuse a kept database already seeded (and keep it).")
    parser.add_argument("--quick", action="store_true",
                        help="Smoke run: 20,000 jobs, 2 runs, no time limit.")
    args = parser.parse_args()
    total = args.jobs or (20_000 if args.quick else 1_000_000)
    runs = args.runs or (2 if args.quick else 7)
    database = DATABASE + ("_quick" if args.quick else "")
    namespace = NAMESPACE + ("_quick" if args.quick else "")

    url, seeded = open_database(database, total, args.reuse)
    app = App(CLUSTER, master=url, agents={"main": REDIS}, namespace=namespace)
    try:
        define(app)
        app.migrate()
        now = datetime.now(UTC)
        if seeded:
            print(f"reusing {database}: {total:,} jobs seeded before", flush=True)
        else:
            seed_jobs(app, database, total, now)
        seed_cluster(app, now)
        rows = asyncio.run(measure_all(app, runs))
    finally:
        if not (args.keep or args.reuse):
            empty_agent(app)
        app.close()
        if not (args.keep or args.reuse):
            drop_database(database)
    print(f"\n{total:,} jobs in the master\n")
    print(table(rows, runs, limit=not args.quick))
    failed = [r for r in rows if r.status != 200 or r.problem
              or (not args.quick and r.median >= LIMIT_MS)]
    if failed:
        print(f"\n{len(failed)} page(s) failed: {', '.join(r.page.name for r in failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
