"""The chaos verdict on hand-made ledgers, side effects and timelines (no processes)."""

from __future__ import annotations

from tests.chaos.ledger import Ledger, SideEffect, Timeline, Window, classify

LEASE, BEAT = 4.0, 4.0 / 3


def _run(token: str, worker: int, start: float, job: str | None = None) -> SideEffect:
    return SideEffect(token, job or f"j-{token}", 1, worker, worker + 1, start, start + 0.01)


def _ledger(*tokens: str, intended: tuple[str, ...] = (), failed: tuple[str, ...] = ()
            ) -> Ledger:
    ledger = Ledger()
    for t in (*tokens, *intended, *failed):
        ledger.intended[t] = 0.0
    ledger.acked = {t: f"j-{t}" for t in tokens}
    ledger.failed = dict.fromkeys(failed, "AgentError: down")
    return ledger


def test_each_token_lands_in_one_category() -> None:
    ledger = _ledger("a", "b", "c", intended=("d",), failed=("e",))
    runs = [_run("a", 100, 1.0), _run("c", 100, 2.0), _run("d", 100, 3.0),
            _run("e", 100, 4.0), _run("x", 100, 5.0)]
    master = {f"j-{t}": "succeeded" for t in "acdex"} | {"j-b": "queued"}
    verdict = classify(ledger, runs, master, Timeline(), lease=LEASE, heartbeat=BEAT)
    assert verdict.ok == 2
    assert verdict.lost == [("b", "j-b", "queued")]
    assert [(u[0], u[2]) for u in verdict.unexpected] == [("d", True), ("e", True),
                                                         ("x", False)]
    assert verdict.mismatches == [] and verdict.duplicated == []
    assert verdict.failed


def test_a_run_the_master_does_not_call_succeeded_is_a_mismatch() -> None:
    verdict = classify(_ledger("a", "b"), [_run("a", 100, 1.0)],
                       {"j-a": "running", "j-b": "succeeded"}, Timeline(), lease=LEASE,
                       heartbeat=BEAT)
    assert [(m.job_id, m.status) for m in verdict.mismatches] == [
        ("j-a", "running"), ("j-b", "succeeded")]
    assert verdict.failed


def test_a_killed_worker_explains_a_rerun_only_after_its_lease() -> None:
    timeline = Timeline(worker_kills={100: 10.5})
    late = classify(_ledger("a"), [_run("a", 100, 10.0), _run("a", 200, 14.0)],
                    {"j-a": "succeeded"}, timeline, lease=LEASE, heartbeat=BEAT)
    early = classify(_ledger("a"), [_run("a", 100, 10.0), _run("a", 200, 11.0)],
                     {"j-a": "succeeded"}, timeline, lease=LEASE, heartbeat=BEAT)
    assert [d.kind for d in late.duplicated] == ["killed-worker-lease-expired"]
    assert late.unexplained == [] and not late.failed
    assert [d.kind for d in early.duplicated] == ["killed-worker-inside-lease"]
    assert early.unexplained == early.duplicated


def test_a_stale_claim_run_after_a_partition_is_explained() -> None:
    timeline = Timeline(partitions=[Window(10.0, 16.0, worker=200, what="blackhole")])
    verdict = classify(_ledger("a"), [_run("a", 100, 14.0), _run("a", 200, 16.1)],
                       {"j-a": "succeeded"}, timeline, lease=LEASE, heartbeat=BEAT)
    assert [d.kind for d in verdict.duplicated] == ["partition-stale-claim"]


def test_a_rerun_with_no_fault_is_unexplained() -> None:
    verdict = classify(_ledger("a"), [_run("a", 100, 10.0), _run("a", 200, 10.5)],
                       {"j-a": "succeeded"}, Timeline(), lease=LEASE, heartbeat=BEAT)
    assert [d.kind for d in verdict.unexplained] == ["inside-live-lease"]
