"""The quickstart's jobs: plain functions registered with ``@app.job``."""

from __future__ import annotations

import random

from jobmaster import App, JobContext, Priority

# No arguments: a SQLite master (./jobmaster.db) and an embedded SQLite agent beside it.
app = App("quickstart")


@app.job()
def add(x: int, y: int) -> int:
    """The smallest job there is."""
    return x + y


@app.job(definition_id="fetch-rate", max_retries=5, retry_delay=0.2, retry_backoff=1.5)
def fetch_rate(currency: str) -> float:
    """A flaky call to the outside world: fails now and then, retried with backoff."""
    if random.random() < 0.5:  # noqa: S311 - a demo, not cryptography
        raise ConnectionError(f"rate service timed out for {currency}")
    return {"EUR": 1.08, "GBP": 1.27, "JPY": 0.0067}.get(currency, 1.0)


@app.job(definition_id="build-report", priority=Priority.HIGH, timeout=30)
def build_report(ctx: JobContext, month: str, pages: int = 3) -> str:
    """A job that knows about itself: its id, attempt, and how far it got."""
    for page in range(1, pages + 1):
        ctx.report_progress(100 * page // pages, f"page {page} of {pages}")
    return f"report {month}: {pages} pages (job {ctx.job_id[:8]}, attempt {ctx.attempt})"
