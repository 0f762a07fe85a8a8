"""JobContext: what a running job knows about itself and tells its worker."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from jobmaster import JobContext
from jobmaster.envelope import Envelope


def make(**extra: Any) -> tuple[JobContext, list[tuple[str, int, str | None]]]:
    reports: list[tuple[str, int, str | None]] = []
    ctx = JobContext(
        job_id="job-1", definition_id="report", attempt=1, max_retries=2, lane="default",
        priority=2, metadata={"a": 1}, enqueued_at=datetime(2026, 1, 1, tzinfo=UTC),
        _progress=lambda job_id, pct, msg: reports.append((job_id, pct, msg)), **extra,
    )
    return ctx, reports


@pytest.mark.parametrize(
    ("percent", "expected"),
    [(0, 0), (50, 50), (100, 100), (-5, 0), (150, 100), (42.7, 42), (99.99, 99),
     (-0.5, 0), (math.inf, 100), (-math.inf, 0)],
)
def test_report_progress_clamps(percent: float, expected: int) -> None:
    ctx, reports = make()
    ctx.report_progress(percent, "msg")
    assert reports == [("job-1", expected, "msg")]


def test_report_progress_message_optional_and_truncated() -> None:
    ctx, reports = make()
    ctx.report_progress(10)
    ctx.report_progress(20, "x" * 1000)
    ctx.report_progress(30, 123)  # type: ignore[arg-type]
    assert reports[0] == ("job-1", 10, None)
    assert reports[1][2] == "x" * 500
    assert reports[2][2] == "123"


@pytest.mark.parametrize("bad", ["50", None, True, False, [50], b"5"], ids=repr)
def test_report_progress_refuses_non_numbers(bad: Any) -> None:
    ctx, reports = make()
    with pytest.raises(TypeError, match="percent"):
        ctx.report_progress(bad)
    assert reports == []


def test_report_progress_refuses_nan() -> None:
    ctx, reports = make()
    with pytest.raises((TypeError, ValueError), match="percent"):
        ctx.report_progress(math.nan)
    assert reports == []


def test_report_progress_without_a_worker_is_a_no_op() -> None:
    ctx = JobContext("j", "d", 1, 0, "default", 2, {}, datetime.now(UTC))
    ctx.report_progress(50, "fine")  # nothing to report to: no error


def test_should_stop_with_a_passed_deadline() -> None:
    ctx, _ = make(deadline=time.monotonic() - 1.0)
    assert ctx.should_stop() is True
    assert ctx.time_left == 0.0


def test_should_stop_with_a_future_deadline() -> None:
    ctx, _ = make(deadline=time.monotonic() + 100.0)
    assert ctx.should_stop() is False
    assert ctx.time_left is not None
    assert 99.0 < ctx.time_left <= 100.0


def test_no_deadline() -> None:
    ctx, _ = make()
    assert ctx.deadline is None
    assert ctx.time_left is None
    assert ctx.should_stop() is False


def test_should_stop_when_the_worker_asks() -> None:
    stop = [False]
    ctx, _ = make(_stop_flag=lambda: stop[0], deadline=time.monotonic() + 100.0)
    assert ctx.should_stop() is False
    stop[0] = True
    assert ctx.should_stop() is True


def test_is_retry() -> None:
    ctx, _ = make()
    assert ctx.is_retry is False
    ctx.attempt = 2
    assert ctx.is_retry is True


def test_for_envelope() -> None:
    env = Envelope.from_fields(id="abc", cluster="c", definition_id="d", lane="emails", priority=3,
                   encoding="json", payload=b"{}", created_at=1_767_225_600.5, due=0.0,
                   attempt=2, max_retries=4, metadata={"k": "v"})
    ctx = JobContext.for_envelope(env, deadline=123.0)
    assert (ctx.job_id, ctx.definition_id, ctx.attempt, ctx.max_retries, ctx.lane,
            ctx.priority) == ("abc", "d", 2, 4, "emails", 3)
    assert ctx.metadata == {"k": "v"} and ctx.metadata is not env.options.metadata
    assert ctx.enqueued_at == datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)
    assert ctx.deadline == 123.0
    assert ctx.is_retry


def test_repr_hides_callbacks() -> None:
    ctx, _ = make()
    assert "_progress" not in repr(ctx) and "lambda" not in repr(ctx)
    assert "job-1" in repr(ctx)
