"""The master's job state machine, driven by generated sequences of what producers,
workers (duplicates and late records included), operators and beat do, against a real
SQLite master: a status only moves along the allowed graph, a final status never moves
backwards except by an operator's retry, and every run is counted."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from jobmaster.master.repository import Master
from jobmaster.master.rows import job_row
from jobmaster.models import JobStatus
from tests.integration.test_master import envelope

FINAL = {"succeeded", "failed", "cancelled"}
ALLOWED = {  # status before -> statuses a job may be seen in next
    "queued": {"queued", "running", "succeeded", "failed", "retrying", "cancelled"},
    "running": {"running", "succeeded", "failed", "retrying", "cancelled"},
    "retrying": {"retrying", "running", "succeeded", "failed", "cancelled"},
    "succeeded": {"succeeded", "queued"},  # queued again only by an operator's retry
    "failed": {"failed", "queued"},
    "cancelled": {"cancelled", "queued"},
}


class JobLife(RuleBasedStateMachine):
    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        self.master = MASTER
        self.expected: dict[str, dict[str, Any]] = {}
        self.seen: dict[str, str] = {}

    def _record(self, job_id: str, status: JobStatus, starts: int, worker: str) -> None:
        env = self.expected[job_id]["env"]
        now = datetime.now(UTC)
        row = {**job_row(env, status, now), "attempts": starts, "worker": worker,
               "started_at": now, "finished_at": now if status.is_final else None}
        self.master.record([row])
        model = self.expected[job_id]
        model["runs"] += starts
        if model["status"] not in FINAL:
            model["status"] = status.value

    @rule(target=jobs)
    def enqueue(self) -> str:
        env = envelope()
        self.master.insert_jobs([job_row(env, JobStatus.QUEUED, datetime.now(UTC))])
        self.expected[env.id] = {"env": env, "status": "queued", "runs": 0}
        return env.id

    @rule(job=jobs, worker=st.sampled_from(["w1", "w2"]))
    def start(self, job: str, worker: str) -> None:
        self._record(job, JobStatus.RUNNING, 1, worker)

    @rule(job=jobs, status=st.sampled_from([JobStatus.SUCCEEDED, JobStatus.FAILED,
                                            JobStatus.RETRYING]),
          ran_in_batch=st.booleans())
    def end(self, job: str, status: JobStatus, ran_in_batch: bool) -> None:
        # a run whose start and end fall in one batch records both at once
        self._record(job, status, 1 if ran_in_batch else 0, "w1")

    @rule(job=jobs)
    def duplicate_runs_late(self, job: str) -> None:
        """A worker whose lease expired reports its run after another finished it."""
        self._record(job, JobStatus.RUNNING, 1, "w-late")
        self._record(job, JobStatus.FAILED, 0, "w-late")

    @rule(job=jobs)
    def cancel(self, job: str) -> None:
        self.master.cancel_job(job)
        model = self.expected[job]
        if model["status"] not in FINAL:
            model["status"] = "cancelled"

    @rule(job=jobs)
    def operator_retries(self, job: str) -> None:
        model = self.expected[job]
        if model["status"] in FINAL:
            self.master.requeue_job(job, due=datetime.now(UTC))
            model["status"] = "queued"

    @invariant()
    def statuses_and_runs_match(self) -> None:
        for job_id, model in self.expected.items():
            row = self.master.get_job(job_id)
            assert row is not None
            assert row["status"] == model["status"], job_id
            assert row["attempts"] == model["runs"], job_id
            before = self.seen.get(job_id, "queued")
            assert row["status"] in ALLOWED[before], (before, row["status"])
            self.seen[job_id] = row["status"]


MASTER: Master


def test_the_job_state_machine() -> None:
    global MASTER
    with tempfile.TemporaryDirectory() as tmp:
        MASTER = Master(f"sqlite:///{Path(tmp) / 'm.db'}", auto_migrate=False)
        MASTER.migrate()
        try:
            JobLife.TestCase.settings = settings(
                max_examples=60, stateful_step_count=25, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
            JobLife.TestCase().runTest()
        finally:
            MASTER.dispose()
