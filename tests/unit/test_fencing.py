"""``jobmaster.fencing.fence``: which deliveries run, which are dropped, which are left to
their lease — decided from what the master holds, without I/O."""

from __future__ import annotations

import pytest

from jobmaster.fencing import Holder, fence
from jobmaster.models import JobStatus
from jobmaster.outcomes import AgentAction, RetryPolicy, Superseded, decide, explain

NOW = 1_000_000.0
ME = "w@host:1"


def judge(holder: Holder | None, *, holding: bool = False,
          settled_here: JobStatus | None = None) -> Superseded | None:
    return fence(holder, me=ME, holding=holding, now=NOW, alive_seconds=30.0,
                 settled_here=settled_here)


def test_unknown_queued_and_retrying_jobs_run() -> None:
    assert judge(None) is None
    assert judge(Holder(JobStatus.QUEUED)) is None
    assert judge(Holder(JobStatus.RETRYING, "other", NOW)) is None
    assert judge(Holder(JobStatus.SCHEDULED)) is None


@pytest.mark.parametrize("status", [JobStatus.SUCCEEDED, JobStatus.FAILED])
def test_a_settled_job_is_acknowledged_not_run(status: JobStatus) -> None:
    verdict = judge(Holder(status, "other", NOW - 5))
    assert verdict == Superseded(status)
    decision = decide(verdict, attempt=1, policy=RetryPolicy(0, 0, 1), now=NOW)
    assert decision.action is AgentAction.ACK and decision.status is status
    assert explain(verdict, decision, attempt=1, max_retries=0) == (
        f"delivered again after it ended ({status}): not run")


def test_a_cancelled_job_is_left_to_the_workers_cancellation() -> None:
    # it ends "cancelled" without running the way every cancelled job does, so
    # middleware (a workflow, say) hears of it
    assert judge(Holder(JobStatus.CANCELLED, "other", NOW)) is None


def test_a_job_running_under_a_live_worker_is_left_to_its_lease() -> None:
    verdict = judge(Holder(JobStatus.RUNNING, "other", NOW - 29.0))
    assert verdict == Superseded(JobStatus.RUNNING, held_by="other")
    decision = decide(verdict, attempt=1, policy=RetryPolicy(0, 0, 1), now=NOW)
    assert decision.action is AgentAction.LEAVE


def test_a_job_running_under_a_worker_not_seen_lately_runs() -> None:
    assert judge(Holder(JobStatus.RUNNING, "other", NOW - 31.0)) is None
    assert judge(Holder(JobStatus.RUNNING, "other", None)) is None
    assert judge(Holder(JobStatus.RUNNING, None, NOW)) is None


def test_a_job_recorded_running_here_but_not_held_runs() -> None:
    # this worker's record of it is older than what it holds now (it let the claim go)
    assert judge(Holder(JobStatus.RUNNING, ME, NOW)) is None


def test_a_job_this_worker_holds_is_left_alone_whatever_the_master_says() -> None:
    for holder in (None, Holder(JobStatus.QUEUED), Holder(JobStatus.SUCCEEDED)):
        assert judge(holder, holding=True) == Superseded(JobStatus.RUNNING, held_by=ME)


def test_a_version_this_worker_settled_is_dropped_before_the_master_knows() -> None:
    # its record waits in the writer: the master still says queued or running
    for holder in (None, Holder(JobStatus.QUEUED), Holder(JobStatus.RUNNING, ME, NOW)):
        assert judge(holder, settled_here=JobStatus.SUCCEEDED) == Superseded(
            JobStatus.SUCCEEDED)
    # a cancellation is the worker's own business, as above
    assert judge(None, settled_here=JobStatus.CANCELLED) is None
