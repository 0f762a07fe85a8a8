"""The contract every agent backend keeps, run against each real backend.

A new agent passes this file unchanged; nothing else is asked of it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from jobmaster.agents import Agent, AgentMessage, Bucket, resolve_agent
from tests.agent_backends import AGENT_BACKENDS


@pytest.fixture(params=sorted(AGENT_BACKENDS))
def agent(request: pytest.FixtureRequest) -> Iterator[Agent]:
    url = AGENT_BACKENDS[request.param]()
    namespace = f"jmt{uuid.uuid4().hex[:10]}"
    a = resolve_agent(url, name="conformance", namespace=namespace)
    a.purge()
    try:
        yield a
    finally:
        a.purge()
        a.close()


def msg(lane: str = "default", priority: int = 2, due: float | None = None, body: bytes = b"x"):
    return AgentMessage(uuid.uuid4().hex, lane, priority, time.time() if due is None else due, body)


def claim(agent: Agent, lanes=("default",), limit=10, lease=30.0, consumer="c1", wait=0.0):
    return agent.claim(list(lanes), limit, lease_seconds=lease, consumer=consumer, wait=wait)


def test_push_then_claim_returns_the_message_intact(agent: Agent) -> None:
    body = bytes(range(256)) * 4
    m = msg(body=body)
    agent.push([m])
    [c] = claim(agent)
    assert c.message.id == m.id
    assert c.message.body == body
    assert (c.message.lane, c.message.priority) == ("default", 2)
    assert c.deliveries == 1


def test_claim_orders_by_priority_then_push_order(agent: Agent) -> None:
    now = time.time() - 1
    low, high, mid1, mid2, crit = (msg(priority=p, due=now) for p in (1, 3, 2, 2, 4))
    for m in (low, high, mid1, mid2, crit):
        agent.push([m])
    got = [c.message.id for c in claim(agent, limit=10)]
    assert got == [crit.id, high.id, mid1.id, mid2.id, low.id]


def test_priority_order_holds_across_separate_claims(agent: Agent) -> None:
    now = time.time() - 1
    ms = [msg(priority=p, due=now) for p in (0, 1, 2, 3, 4)]
    agent.push(ms)
    got = [claim(agent, limit=1)[0].message.priority for _ in range(5)]
    assert got == [4, 3, 2, 1, 0]


def test_lanes_are_isolated(agent: Agent) -> None:
    a, b = msg(lane="emails"), msg(lane="reports")
    agent.push([a, b])
    assert [c.message.id for c in claim(agent, lanes=["emails"])] == [a.id]
    assert claim(agent, lanes=["emails"]) == []
    assert [c.message.id for c in claim(agent, lanes=["reports", "other"])] == [b.id]


def test_length_counts_per_bucket_and_in_total(agent: Agent) -> None:
    agent.push([msg(lane="a", priority=1), msg(lane="a", priority=1), msg(lane="a", priority=3)])
    agent.push([msg(lane="b", priority=1)])
    assert agent.length(Bucket("a", 1)) == 2
    assert agent.length(Bucket("a", 3)) == 1
    assert agent.length(Bucket("b", 1)) == 1
    assert agent.length(Bucket("b", 4)) == 0
    assert agent.length() == 4


def test_claimed_message_is_invisible_until_its_lease_expires(agent: Agent) -> None:
    m = msg()
    agent.push([m])
    assert len(claim(agent, lease=1.0, consumer="first")) == 1
    assert claim(agent, consumer="second") == []
    time.sleep(1.3)
    [again] = claim(agent, consumer="second")
    assert again.message.id == m.id
    assert again.deliveries == 2


def test_extend_keeps_a_claim_past_its_first_lease(agent: Agent) -> None:
    agent.push([msg()])
    [c] = claim(agent, lease=1.0)
    time.sleep(0.6)
    agent.extend([c], 3.0)
    time.sleep(0.8)  # past the first lease, inside the extended one
    assert claim(agent, consumer="other") == []
    agent.ack([c])
    assert agent.length() == 0


def test_ack_removes_the_message(agent: Agent) -> None:
    agent.push([msg(), msg()])
    claimed = claim(agent)
    assert agent.length() == 2
    agent.ack(claimed)
    assert agent.length() == 0
    assert claim(agent) == []


def test_pushing_the_same_id_twice_keeps_one(agent: Agent) -> None:
    m = msg()
    agent.push([m])
    agent.push([m])
    assert agent.length() == 1


def test_future_message_is_not_claimable_before_due(agent: Agent) -> None:
    soon = msg(due=time.time() + 1.0)
    agent.push([soon])
    assert claim(agent) == []
    time.sleep(1.2)
    assert [c.message.id for c in claim(agent)] == [soon.id]


def test_retry_replaces_the_body_and_honours_the_new_due_time(agent: Agent) -> None:
    m = msg(body=b"attempt-1")
    agent.push([m])
    [c] = claim(agent)
    later = AgentMessage(m.id, m.lane, m.priority, time.time() + 1.0, b"attempt-2")
    agent.retry([(c, later)])
    assert claim(agent) == []
    assert agent.length() == 1
    time.sleep(1.2)
    [again] = claim(agent)
    assert again.message.body == b"attempt-2"


def test_retry_now_hands_a_job_back_at_once(agent: Agent) -> None:
    m = msg()
    agent.push([m])
    [c] = claim(agent)
    agent.retry([(c, AgentMessage(m.id, m.lane, m.priority, time.time(), m.body))])
    [again] = claim(agent, consumer="other")
    assert again.message.id == m.id


def test_dead_letter_keeps_the_reason_and_leaves_the_queue(agent: Agent) -> None:
    m = msg(body=b"not json")
    agent.push([m])
    [c] = claim(agent)
    agent.dead_letter([(c, "undecodable envelope: not json")])
    assert agent.length() == 0
    assert claim(agent) == []
    [dead] = agent.dead_letters()
    assert dead.message.id == m.id
    assert dead.message.body == b"not json"
    assert dead.reason == "undecodable envelope: not json"


def test_batch_push_and_batch_claim(agent: Agent) -> None:
    agent.push([msg(body=str(i).encode()) for i in range(500)])
    assert agent.length() == 500
    first = claim(agent, limit=100)
    assert len(first) == 100
    assert [int(c.message.body) for c in first] == list(range(100))
    rest = []
    while batch := claim(agent, limit=150):
        rest.extend(batch)
    assert len(rest) == 400
    agent.ack(first + rest)
    assert agent.length() == 0


def test_no_message_is_claimed_by_two_consumers_at_once(agent: Agent) -> None:
    total = 300
    agent.push([msg() for _ in range(total)])
    seen: dict[str, list[str]] = {"a": [], "b": [], "c": []}

    def consume(name: str) -> None:
        while batch := claim(agent, limit=7, consumer=name):
            seen[name].extend(c.message.id for c in batch)
            agent.ack(batch)

    threads = [threading.Thread(target=consume, args=(n,)) for n in seen]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ids = [i for got in seen.values() for i in got]
    assert len(ids) == total
    assert len(set(ids)) == total


def test_claim_waits_for_a_message_pushed_meanwhile(agent: Agent) -> None:
    m = msg()
    timer = threading.Timer(0.3, agent.push, args=([m],))
    timer.start()
    try:
        got = claim(agent, wait=5.0)
    finally:
        timer.join()
    assert [c.message.id for c in got] == [m.id]


def test_claim_with_wait_returns_empty_when_nothing_comes(agent: Agent) -> None:
    started = time.monotonic()
    assert claim(agent, wait=0.3) == []
    assert time.monotonic() - started >= 0.25


def test_purge_drops_everything(agent: Agent) -> None:
    agent.push([msg(), msg(lane="other")])
    assert agent.purge() == 2
    assert agent.length() == 0
