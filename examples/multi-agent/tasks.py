"""Two agents in one app: Redis carries the ``emails`` lane, PostgreSQL everything else.

The master is PostgreSQL too. The URLs are the local test services; set
``JOBMASTER_MASTER_URL`` or ``JOBMASTER_AGENTS`` to point the example elsewhere.
"""

from __future__ import annotations

import time

from jobmaster import App, JobContext, Priority

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"

app = App(
    "multi-agent",
    master=POSTGRES,
    agents={
        "main": POSTGRES,  # the default agent: lanes without a route
        "fast": REDIS,  # low-latency agent for interactive work
    },
    routes={"emails": "fast"},  # every job in lane "emails" goes to the "fast" agent
)


@app.job(definition_id="send-email", lane="emails", priority=Priority.HIGH, max_retries=3)
def send_email(to: str, subject: str) -> str:
    """Travels on Redis because its lane is routed to the "fast" agent."""
    time.sleep(0.05)  # pretend to talk to an SMTP server
    return f"sent {subject!r} to {to}"


@app.job(definition_id="monthly-report", timeout=60)
def monthly_report(ctx: JobContext, month: str) -> str:
    """Travels on PostgreSQL, the default agent."""
    for step in range(1, 5):
        time.sleep(0.05)
        ctx.report_progress(25 * step, f"section {step} of 4")
    return f"report {month} (attempt {ctx.attempt})"
