"""Recurring schedules: one static (declared in code), one dynamic (created at runtime).

No arguments to ``App``: a SQLite master (./jobmaster.db) and a SQLite agent beside it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from jobmaster import App, JobContext

app = App("scheduling")


@app.job(definition_id="heartbeat")
def heartbeat(service: str) -> str:
    return f"{service} is alive at {datetime.now(UTC):%H:%M:%S}"


@app.job(definition_id="sync-prices", timeout=30)
def sync_prices(ctx: JobContext, source: str) -> str:
    return f"prices synced from {source} (job {ctx.job_id[:8]})"


# Static: declared in code, validated now, written to the master by beat when it leads.
app.recurring("every 2 seconds", heartbeat, kwargs={"service": "api"}, name="heartbeat-api")
