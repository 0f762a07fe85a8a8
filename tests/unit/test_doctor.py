"""The doctor's findings from a deployment's facts: a pure function."""

from __future__ import annotations

from jobmaster.doctor import Facts, diagnose


def _levels(facts: Facts) -> dict[str, str]:
    found: dict[str, str] = {}
    for f in diagnose(facts):
        if found.get(f.check) != "warn":
            found[f.check] = f.level
    return found


def test_a_healthy_deployment_is_all_ok() -> None:
    facts = Facts(signs=True, agents={"main": "redis://r:6379/0"}, redis_aof={"main": True},
                  clock_skew=0.1, active_schedules=2, beat_leader_seen=1.0, workers_alive=3)
    assert set(_levels(facts).values()) == {"ok"}


def test_each_warning() -> None:
    facts = Facts(serializer="pickle", signs=False,
                  agents={"main": "redis://r:6379/0"}, redis_aof={"main": False},
                  lease_seconds=10, heartbeat=5, clock_skew=-4.2, active_schedules=1)
    by_check = {f.check: f.message for f in diagnose(facts) if f.level == "warn"}
    assert "replayed under another job id" in by_check["signing"] or \
        "others may write" in by_check["signing"]
    assert "appendonly yes" in by_check["durability"]
    assert "three heartbeats" in by_check["leases"]
    assert "4.2 s ahead of" in by_check["clock"]
    assert "no beat has led ever" in by_check["beat"]
    assert "no worker" in by_check["workers"]


def test_local_agents_need_no_signature_and_failures_fail() -> None:
    facts = Facts(agents={"main": "sqlite:///a.db", "other": "redis://r/0"},
                  agent_errors={"other": "cannot reach redis://r/0"}, master_error="no schema",
                  workers_alive=1)
    levels = _levels(facts)
    assert levels["master"] == "fail" and levels["agent other"] == "fail"
    assert levels["agent main"] == "ok"
    only_local = Facts(agents={"main": "sqlite:///a.db"}, workers_alive=1)
    assert "signing" not in _levels(only_local)


def test_a_redis_agent_beside_a_durable_one_is_not_the_only_copy() -> None:
    facts = Facts(signs=True, agents={"main": "redis://r/0", "pg": "postgresql://db/x"},
                  redis_aof={"main": False}, workers_alive=1)
    assert "durability" not in _levels(facts)
