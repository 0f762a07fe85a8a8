"""What a batch of job records adds to the per-minute totals: a pure function."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobmaster.master.stats import totals

T0 = datetime(2026, 11, 26, 7, 0, 10, tzinfo=UTC)


def _row(job: str, status: str, *, starts: int = 1, wait: float = 0.5, run: float | None = 2.0,
         worker: str = "w1", definition: str = "send") -> dict[str, object]:
    started = T0 + timedelta(seconds=wait)
    return {"id": job, "cluster": "c", "definition_id": definition, "worker": worker,
            "status": status, "attempts": starts, "scheduled_at": T0, "started_at": started,
            "finished_at": None if run is None else started + timedelta(seconds=run),
            "updated_at": started}


def test_starts_and_outcomes_are_summed_per_minute_definition_and_worker() -> None:
    out = totals([_row("a", "succeeded"), _row("b", "failed", wait=1.5),
                  _row("c", "running", run=None), _row("d", "succeeded", worker="w2")])
    assert [(t["worker"], t["started"], t["succeeded"], t["failed"], t["wait_ms"], t["run_ms"])
            for t in out] == [("w1", 3, 1, 1, 2500, 4000), ("w2", 1, 1, 0, 500, 2000)]
    assert {t["minute"] for t in out} == {datetime(2026, 11, 26, 7, 0, tzinfo=UTC)}


def test_an_outcome_without_a_start_in_this_batch_adds_no_wait() -> None:
    [total] = totals([_row("a", "retrying", starts=0)])
    assert (total["started"], total["retried"], total["wait_ms"]) == (0, 1, 0)


def test_a_record_without_start_or_outcome_adds_nothing() -> None:
    assert totals([_row("a", "queued", starts=0, run=None)]) == []


def test_naive_times_are_utc_and_a_job_counts_in_the_minute_it_ended() -> None:
    row = _row("a", "succeeded", run=60.0)
    row = {k: v.replace(tzinfo=None) if isinstance(v, datetime) else v for k, v in row.items()}
    [total] = totals([row])
    assert total["minute"] == datetime(2026, 11, 26, 7, 1, tzinfo=UTC)
