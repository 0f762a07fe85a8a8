"""Pure decisions: what follows from how a run ended, with the job's retry policy."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from jobmaster import JobStatus, Retry
from jobmaster.models import JobError
from jobmaster.outcomes import (
    Cancelled,
    Decision,
    Lost,
    Raised,
    RetryPolicy,
    Succeeded,
    TimedOut,
    decide,
    outcome_error,
    retry_delay,
)

NOW = 1_800_000_000.0
POLICY = RetryPolicy(max_retries=3, delay=10.0, backoff=2.0, jitter=0.1)
BOOM = JobError("RuntimeError", "boom", "Traceback ...")


def test_succeeded() -> None:
    d = decide(Succeeded(b"3"), attempt=1, policy=POLICY, now=NOW, rand=0.0)
    assert d == Decision(JobStatus.SUCCEEDED)
    assert d.retry_at is None and d.error is None


def test_succeeded_on_last_attempt_still_succeeds() -> None:
    d = decide(Succeeded(b"null"), attempt=POLICY.max_retries + 1, policy=POLICY, now=NOW)
    assert d.status is JobStatus.SUCCEEDED


def test_cancelled_is_never_retried() -> None:
    d = decide(Cancelled(), attempt=1, policy=POLICY, now=NOW, rand=0.0)
    assert d == Decision(JobStatus.CANCELLED)


def test_raised_with_retries_left_retries_after_the_delay() -> None:
    d = decide(Raised(BOOM), attempt=1, policy=POLICY, now=NOW, rand=0.0)
    assert d.status is JobStatus.RETRYING
    assert d.retry_at == pytest.approx(NOW + 10.0)
    assert d.error == BOOM


def test_timed_out_is_retried_with_a_timeout_error() -> None:
    d = decide(TimedOut(2.5), attempt=1, policy=POLICY, now=NOW, rand=0.0)
    assert d.status is JobStatus.RETRYING
    assert d.retry_at == pytest.approx(NOW + 10.0)
    assert d.error is not None
    assert d.error.type == "TimeoutError"
    assert "2.5 s" in d.error.message


def test_timed_out_without_retries_fails() -> None:
    policy = dataclasses.replace(POLICY, max_retries=0)
    d = decide(TimedOut(1.0), attempt=1, policy=policy, now=NOW, rand=0.0)
    assert d.status is JobStatus.FAILED
    assert d.retry_at is None
    assert d.error is not None and d.error.type == "TimeoutError"
    assert "timeout of 1 s" in d.error.message


def test_lost_is_retried_with_a_worker_lost_error() -> None:
    d = decide(Lost("exited with code 7"), attempt=2, policy=POLICY, now=NOW, rand=0.0)
    assert d.status is JobStatus.RETRYING
    assert d.retry_at == pytest.approx(NOW + 20.0)
    assert d.error == JobError("WorkerLostError", "exited with code 7")


def test_lost_on_last_attempt_fails() -> None:
    d = decide(Lost("killed"), attempt=4, policy=POLICY, now=NOW, rand=0.0)
    assert d.status is JobStatus.FAILED
    assert d.error is not None and d.error.type == "WorkerLostError"


@pytest.mark.parametrize(("attempt", "wait"), [(1, 10.0), (2, 20.0), (3, 40.0)])
def test_backoff_sequence_without_jitter(attempt: int, wait: float) -> None:
    assert retry_delay(POLICY, attempt, 0.0) == pytest.approx(wait)
    d = decide(Raised(BOOM), attempt=attempt, policy=POLICY, now=NOW, rand=0.0)
    assert d.status is JobStatus.RETRYING
    assert d.retry_at == pytest.approx(NOW + wait)


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_jitter_stretches_by_at_most_the_jitter_fraction(attempt: int) -> None:
    base = 10.0 * 2.0 ** (attempt - 1)
    d = decide(Raised(BOOM), attempt=attempt, policy=POLICY, now=NOW, rand=0.999)
    assert d.retry_at is not None
    wait = d.retry_at - NOW
    assert base < wait < base * 1.1
    assert wait == pytest.approx(base * (1 + 0.1 * 0.999))


def test_random_jitter_stays_within_bounds() -> None:
    for _ in range(200):
        d = decide(Raised(BOOM), attempt=1, policy=POLICY, now=NOW)
        assert d.retry_at is not None
        assert 10.0 <= d.retry_at - NOW < 11.0


def test_zero_jitter_and_backoff_one_keeps_a_constant_delay() -> None:
    policy = RetryPolicy(max_retries=5, delay=3.0, backoff=1.0, jitter=0.0)
    assert [retry_delay(policy, a, 0.999) for a in range(1, 6)] == [3.0] * 5


def test_retry_after_is_honoured() -> None:
    outcome = Raised(JobError("Retry", "rate limited"), retry_after=5.0)
    d = decide(outcome, attempt=1, policy=POLICY, now=NOW, rand=0.999)
    assert d.status is JobStatus.RETRYING
    assert d.retry_at == pytest.approx(NOW + 5.0)  # not the policy's 10 s, and no jitter
    assert d.error == JobError("Retry", "rate limited")


def test_retry_after_zero_retries_now() -> None:
    d = decide(Raised(BOOM, retry_after=0.0), attempt=2, policy=POLICY, now=NOW, rand=0.5)
    assert d.status is JobStatus.RETRYING
    assert d.retry_at == pytest.approx(NOW)


def test_retry_after_counts_against_max_retries() -> None:
    outcome = Raised(JobError("Retry", "again"), retry_after=1.0)
    statuses = [decide(outcome, attempt=a, policy=POLICY, now=NOW, rand=0.0).status
                for a in range(1, 6)]
    assert statuses == [JobStatus.RETRYING] * 3 + [JobStatus.FAILED] * 2
    last = decide(outcome, attempt=4, policy=POLICY, now=NOW, rand=0.0)
    assert last.retry_at is None
    assert last.error == JobError("Retry", "again")


def test_non_retryable_fails_at_once() -> None:
    d = decide(Raised(BOOM, retryable=False), attempt=1, policy=POLICY, now=NOW, rand=0.0)
    assert d.status is JobStatus.FAILED
    assert d.retry_at is None
    assert d.error == BOOM


def test_non_retryable_wins_over_retry_after() -> None:
    d = decide(Raised(BOOM, retry_after=1.0, retryable=False), attempt=1, policy=POLICY,
               now=NOW, rand=0.0)
    assert d.status is JobStatus.FAILED


@pytest.mark.parametrize("attempt", [4, 5, 100])
def test_attempt_past_max_retries_fails(attempt: int) -> None:
    d = decide(Raised(BOOM), attempt=attempt, policy=POLICY, now=NOW, rand=0.0)
    assert d == Decision(JobStatus.FAILED, error=BOOM)


def test_last_allowed_retry_is_still_scheduled() -> None:
    d = decide(Raised(BOOM), attempt=3, policy=POLICY, now=NOW, rand=0.0)
    assert d.status is JobStatus.RETRYING


def test_no_retries_fails_on_first_attempt() -> None:
    policy = RetryPolicy(max_retries=0, delay=10.0, backoff=2.0)
    d = decide(Raised(BOOM), attempt=1, policy=policy, now=NOW, rand=0.0)
    assert d.status is JobStatus.FAILED
    assert d.error == BOOM


def test_outcome_error() -> None:
    assert outcome_error(Succeeded(b"1")) is None
    assert outcome_error(Cancelled()) is None
    assert outcome_error(Raised(BOOM)) == BOOM
    assert outcome_error(TimedOut(3.0)) == JobError(
        "TimeoutError", "job exceeded its timeout of 3 s and its process was killed")
    assert outcome_error(Lost("gone")) == JobError("WorkerLostError", "gone")


def test_outcomes_are_frozen_values() -> None:
    outcome = Raised(BOOM, retry_after=1.0)
    assert outcome == Raised(BOOM, retry_after=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.retry_after = 2.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Decision(JobStatus.FAILED).status = JobStatus.SUCCEEDED  # type: ignore[misc]


def test_retry_request_takes_seconds_or_timedelta() -> None:
    assert Retry().after is None
    assert Retry("later", after=5).after == 5.0
    assert Retry("later", after=timedelta(minutes=2)).after == 120.0
    assert str(Retry("rate limited")) == "rate limited"
    assert isinstance(Retry(), Exception)
