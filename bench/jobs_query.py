"""``app.jobs.list`` and ``app.jobs.count`` on a PostgreSQL master holding 1,000,000 jobs:
the first page, a page deep in the result (reached by cursor) and the count of each filter,
median of several runs, printed as a table.

    python bench/jobs_query.py [--jobs 1000000] [--runs 7] [--keep]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth). Creates the database
``jmquery`` afresh (dropping one left by a previous run) and drops it at the end unless
``--keep`` is given (then ``--reuse`` skips the fill next time).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobmaster import App  # noqa: E402
from jobmaster.jobs import encode_cursor  # noqa: E402
from jobmaster.master import Master  # noqa: E402

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
DATABASE = "jmquery"
CLUSTER = "bench"
END = datetime(2026, 11, 1, tzinfo=UTC)
SPAN_DAYS = 30

# Server-side generation (INSERT ... SELECT over generate_series): no round trip per row,
# faster than COPY from the client. Statuses are skewed like a real master (mostly
# succeeded); the other fields are spread by hashing g so they do not move
# together; creation times cover SPAN_DAYS, newest last.
FILL = """
INSERT INTO jobmaster_jobs (id, cluster, definition_id, lane, priority, status, encoding,
    payload, meta, attempts, max_retries, retry_delay, retry_backoff, created_at,
    updated_at, worker)
SELECT
    md5(g::text)::uuid::text, :cluster,
    'def-' || (abs(hashint8(g)) % 50),
    'lane-' || (abs(hashint8(g + 1000003)) % 10),
    abs(hashint8(g + 2000003)) % 5,
    s.status,
    'json', '{}'::bytea,
    json_build_object('tenant', 'tenant-' || (abs(hashint8(g + 3000017)) % 1000),
                      'region', (ARRAY['eu', 'us', 'ap'])[1 + abs(hashint8(g + 4000037)) % 3],
                      'n', abs(hashint8(g + 5000011)) % 100),
    1, 3, 1.0, 2.0,
    :end - (:span * (:total - g) / CAST(:total AS float)) * interval '1 second',
    :end,
    CASE WHEN s.status IN ('queued', 'scheduled') THEN NULL
         ELSE 'worker-' || (abs(hashint8(g + 6000011)) % 200) END
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g,
LATERAL (SELECT CASE
    WHEN abs(hashint8(g + 7000003)) % 100 < 80 THEN 'succeeded'
    WHEN abs(hashint8(g + 7000003)) % 100 < 85 THEN 'failed'
    WHEN abs(hashint8(g + 7000003)) % 100 < 95 THEN 'queued'
    WHEN abs(hashint8(g + 7000003)) % 100 < 98 THEN 'running'
    ELSE 'scheduled' END AS status) AS s
"""


def create_database(reuse: bool) -> str:
    admin = sa.create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                              {"n": DATABASE}).scalar()
        if not (reuse and exists):
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
            conn.execute(sa.text(f"CREATE DATABASE {DATABASE}"))
    admin.dispose()
    return f"{SERVER}/{DATABASE}"


def drop_database() -> None:
    admin = sa.create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
    admin.dispose()


def fill(url: str, total: int) -> None:
    master = Master(url, auto_migrate=True)
    master.migrate()
    started = time.perf_counter()
    chunk = 250_000
    span = SPAN_DAYS * 86400
    with master.engine.begin() as conn:
        for first in range(1, total + 1, chunk):
            conn.execute(sa.text(FILL), {
                "cluster": CLUSTER, "end": END.replace(tzinfo=None), "span": span,
                "total": total, "first": first, "last": min(first + chunk - 1, total)})
    print(f"filled {total:,} jobs in {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    with master.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE jobmaster_jobs"))
    print(f"vacuum analyze: {time.perf_counter() - started:.1f} s", flush=True)
    master.dispose()


def timed(call: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """Median milliseconds of ``runs`` calls (after one warm-up), and the last result."""
    result = call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    parser.add_argument("--reuse", action="store_true", help="Reuse a kept database.")
    args = parser.parse_args()

    url = create_database(args.reuse)
    with sa.create_engine(url).connect() as conn:
        has_rows = args.reuse and sa.inspect(conn).has_table("jobmaster_jobs") and conn.execute(
            sa.text("SELECT count(*) FROM jobmaster_jobs")).scalar()
    if not has_rows:
        fill(url, args.jobs)
    app = App(CLUSTER, master=url, agents={"main": f"memory://{uuid.uuid4().hex}"})
    day = END - timedelta(days=SPAN_DAYS // 2)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("(no filter)", {}),
        ("status=succeeded (80%)", {"status": "succeeded"}),
        ("status=failed (5%)", {"status": "failed"}),
        ("status=[running,scheduled]", {"status": ["running", "scheduled"]}),
        ("definition_id (2%)", {"definition_id": "def-7"}),
        ("lane (10%)", {"lane": "lane-3"}),
        ("priority (20%)", {"priority": 3}),
        ("worker (0.4%)", {"worker": "worker-42"}),
        ("created in one day (3%)", {"created_after": day,
                                     "created_before": day + timedelta(days=1)}),
        ("metadata tenant (0.1%)", {"metadata": {"tenant": "tenant-7"}}),
        ("metadata region (33%)", {"metadata": {"region": "eu"}}),
        ("failed + definition (0.1%)", {"status": "failed", "definition_id": "def-7"}),
        ("failed + last day", {"status": "failed", "created_after": END - timedelta(days=1)}),
    ]
    print(f"\n{'filter':<30} {'matches':>9} {'first page':>11} {'deep page':>10} "
          f"{'count':>9} {'count(exact=False)':>26}   (ms, median of {args.runs}; "
          "pages of 100)")
    try:
        for name, filters in cases:
            first_ms, first = timed(lambda f=filters: app.jobs.list(**f, limit=100),
                                    args.runs)
            count_ms, count = timed(lambda f=filters: app.jobs.count(**f), args.runs)
            fast_ms, fast = timed(lambda f=filters: app.jobs.count(**f, exact=False),
                                  args.runs)
            deep_ms = float("nan")
            if first.next_cursor is not None:
                cursor = deep_cursor(app, filters, count)
                deep_ms, _ = timed(lambda f=filters, c=cursor: app.jobs.list(
                    **f, limit=100, cursor=c), args.runs)
            answer = f"{int(fast):,}" if fast.exact else f"~{int(fast):,}"
            print(f"{name:<30} {count:>9,} {first_ms:>11.1f} {deep_ms:>10.1f} "
                  f"{count_ms:>9.1f} {fast_ms:>9.1f} ({answer:>13})", flush=True)
    finally:
        app.close()
        if not args.keep:
            drop_database()


def deep_cursor(app: App, filters: dict[str, Any], count: int) -> str:
    """The cursor of a page 90% of the way through the matching jobs (found once, with
    OFFSET, here only: the API itself never offsets)."""
    master = app.master
    where = master._job_filters(cluster=CLUSTER, **app.jobs._filters(
        filters.get("status"), filters.get("definition_id"), filters.get("lane"),
        filters.get("priority"), filters.get("metadata"), filters.get("worker"),
        filters.get("created_after"), filters.get("created_before")))
    from jobmaster.master.schema import jobs

    query = (sa.select(jobs.c.created_at, jobs.c.id).where(*where)
             .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
             .offset(int(count * 0.9)).limit(1))
    with master.engine.connect() as conn:
        created_at, job_id = conn.execute(query).one()
    return encode_cursor(created_at, job_id)


if __name__ == "__main__":
    main()
