"""A short chaos run per agent, in the test suite: about 300 jobs through real workers
while a couple of them are killed with SIGKILL and the agent's server is killed and
restarted once (the SQLite agent has no server: every worker holding its file is killed
at once instead). Nothing acknowledged may be lost, every duplicate must come from a
worker that could not settle its job (killed, or its ack lost with the agent) and ran
again only after its lease expired, and the master must say ``succeeded`` exactly for the
jobs that ran.

The servers are private instances the harness starts (``tests.chaos.servers``): a missing
binary skips locally and fails in CI.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.__main__ import details
from tests.chaos.run import Settings, run_one
from tests.chaos.servers import Missing, Services
from tests.services import in_ci

SETTLED_LATE = {"killed-worker-lease-expired", "agent-restart-lease-expired"}
"""A worker killed, or alive but its ack lost with the agent's server: the job ran again
once the lease ran out."""


@pytest.fixture(scope="module")
def services() -> Iterator[Services]:
    made = Services()
    try:
        yield made
    finally:
        made.close()


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["redis", "postgres", "sqlite"])
def test_nothing_acknowledged_is_lost_under_kills_and_a_broker_restart(
        agent: str, services: Services, tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = Settings(jobs=300, duration=14.0, workers=3, concurrency=2, lease=3.0,
                        work_ms=10.0, drain_timeout=60.0, seed=7)
    try:
        result = run_one(agent, "short", ("worker-kill", "broker-restart"), settings,
                         services, tmp_path_factory.mktemp(f"chaos-{agent}"))
    except Missing as exc:
        if in_ci():
            pytest.fail(f"{exc}; CI needs every server the chaos runs use")
        pytest.skip(str(exc))
    report = details(result)
    assert result.error is None, report
    counts = result.timeline.counts
    assert counts["worker-kill"] >= 2, report
    restarts = counts["all-workers-kill"] if agent == "sqlite" else counts["agent-down"]
    assert restarts >= 1, report
    verdict = result.verdict
    assert verdict is not None
    assert result.drained, report
    assert verdict.acked >= 250, report
    assert verdict.lost == [], report
    assert verdict.mismatches == [], report
    assert [d for d in verdict.duplicated if d.kind not in SETTLED_LATE] == [], report
    assert [u for u in verdict.unexpected if not u[2]] == [], report


@pytest.mark.slow
def test_nats_restarted_with_kill_9_runs_no_job_inside_a_live_lease_and_keeps_no_leftovers(
        services: Services, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The NATS restart case: a killed nats-server can forget acks and in-flight
    deliveries and hand those messages out again at once, inside the first worker's live
    lease, and keep acknowledged messages in the stream. The workers fence such deliveries
    against the master (``jobmaster.fencing``) and the agent sweeps the leftovers."""
    settings = Settings(jobs=400, duration=16.0, workers=3, concurrency=2, lease=3.0,
                        work_ms=10.0, drain_timeout=60.0, seed=11)
    try:
        result = run_one("nats", "restart", ("broker-restart",), settings, services,
                         tmp_path_factory.mktemp("chaos-nats-restart"))
    except Missing as exc:
        if in_ci():
            pytest.fail(f"{exc}; CI needs every server the chaos runs use")
        pytest.skip(str(exc))
    report = details(result)
    assert result.error is None, report
    assert result.timeline.counts["agent-down"] >= 1, report
    verdict = result.verdict
    assert verdict is not None
    assert result.drained, report
    assert verdict.acked >= 350, report
    assert verdict.lost == [] and verdict.mismatches == [], report
    assert [d for d in verdict.duplicated if d.kind not in SETTLED_LATE] == [], report
    assert not [n for n in result.notes if "still holds" in n], report
