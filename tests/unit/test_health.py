"""The worker's probe answers, decided from its vitals alone."""

from __future__ import annotations

from jobmaster.worker.health import Vitals


def test_live_while_the_loop_turns() -> None:
    vitals = Vitals(heartbeat=5.0, tick=100.0)
    assert vitals.live(120.0)[0]
    ok, facts = vitals.live(131.0)
    assert not ok and facts == {"loop_seconds_ago": 31.0}


def test_a_long_heartbeat_gives_the_loop_longer() -> None:
    assert Vitals(heartbeat=20.0, tick=0.0).live(59.0)[0]
    assert not Vitals(heartbeat=20.0, tick=0.0).live(61.0)[0]


def test_ready_needs_agent_and_master_answering_recently() -> None:
    vitals = Vitals(heartbeat=5.0)
    assert not vitals.ready(10.0)[0]  # neither answered yet
    vitals.agent_ok = vitals.master_ok = 10.0
    ok, facts = vitals.ready(20.0)
    assert ok and facts == {"stopping": False, "agent_seconds_ago": 10.0,
                            "master_seconds_ago": 10.0}
    assert not vitals.ready(26.0)[0]  # more than three heartbeats since the master answered
    vitals.stopping = True
    assert not vitals.ready(11.0)[0]
