"""RabbitMQ agent behaviour beyond the conformance suite: connection errors and
credentials, the delay chain, leases and stale receipts, the delivery limit, malformed
messages, retries and deduplication."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator

import pytest

from jobmaster.agents import AgentMessage, Bucket, resolve_agent
from jobmaster.exceptions import AgentError, ConfigurationError
from tests.agent_backends import leaks, rabbitmq_malformed
from tests.conftest import wait_until
from tests.services import RABBITMQ_URL, require

pika = pytest.importorskip("pika")

from jobmaster.agents.rabbitmq import RabbitMQAgent, name_token  # noqa: E402


def msg(lane: str = "default", priority: int = 2, due: float | None = None,
        body: bytes = b"x") -> AgentMessage:
    return AgentMessage(uuid.uuid4().hex, lane, priority, time.time() if due is None else due,
                        body)


def claim(agent: RabbitMQAgent, lanes=("default",), limit=10, lease=30.0, wait=0.0):  # type: ignore[no-untyped-def]
    return agent.claim(list(lanes), limit, lease_seconds=lease, consumer="c1", wait=wait)


def claim_until(agent: RabbitMQAgent, lease: float = 30.0, what: str = "a claim") -> list:
    """Claim until something comes (within 15 s)."""
    got: list = []
    wait_until(lambda: bool(got.extend(claim(agent, lease=lease)) or got), 15, what)
    return got


def _make(url: str = RABBITMQ_URL, **kw: str) -> RabbitMQAgent:
    return RabbitMQAgent(url, name="specific", namespace=f"jmt{uuid.uuid4().hex[:10]}", **kw)


@pytest.fixture
def agent() -> Iterator[RabbitMQAgent]:
    require("rabbitmq")
    a = _make()
    try:
        yield a
    finally:
        a.purge()
        a.close()


def test_the_schemes_resolve_to_the_rabbitmq_agent() -> None:
    for url in ("amqp://h/", "amqps://u:p@h:5671/v", "AMQP://h"):
        assert isinstance(resolve_agent(url), RabbitMQAgent)


def test_a_wrong_password_is_named_as_such_and_never_shown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    require("rabbitmq")
    secret = "not-the-password-42"
    url = RABBITMQ_URL.replace("guest:guest@", f"guest:{secret}@")
    a = _make(url)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AgentError) as info:
        a.push([msg()])
    text = str(info.value)
    assert "refused the credentials" in text and "'guest'" in text
    assert "running" not in text
    assert leaks(secret, info.value, caplog.records) == []
    assert secret not in repr(a)


def test_an_unreachable_server_gives_a_clear_error_quickly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    secret = "hunter2-secret"
    a = RabbitMQAgent(f"amqp://guest:{secret}@127.0.0.1:{port}/%2F?timeout=2")
    started = time.monotonic()
    with pytest.raises(AgentError) as info:
        claim(a)
    assert time.monotonic() - started < 10
    assert "could not connect" in str(info.value) and "is RabbitMQ running" in str(info.value)
    assert leaks(secret, info.value, caplog.records) == []


@pytest.mark.parametrize("query", ["delivery_limit=0", "timeout=x", "dedupe_window=-1"])
def test_bad_url_options_are_refused_without_the_password(query: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RabbitMQAgent(f"amqp://u:pw-secret-9@h/?{query}")
    assert "pw-secret-9" not in str(info.value)


def test_names_are_escaped_into_distinct_tokens() -> None:
    assert name_token("emails") == "emails"
    assert name_token("a.b") != name_token("a_b")
    assert "." not in name_token("a.b*#é")
    assert name_token("") == "_"


def test_a_job_due_later_waits_in_the_delay_chain_and_counts(agent: RabbitMQAgent) -> None:
    later = msg(due=time.time() + 1.5)
    agent.push([later])
    assert agent.length() == 1
    assert agent.length(Bucket("default", 2)) == 0  # delayed jobs are not in a bucket yet
    assert claim(agent) == []
    got = claim_until(agent, what="the delayed job")
    assert time.time() >= later.due
    assert [c.message.id for c in got] == [later.id]


def test_an_expired_lease_comes_back_and_the_stale_receipt_is_ignored(
    agent: RabbitMQAgent,
) -> None:
    m = msg()
    agent.push([m])
    [first] = claim(agent, lease=0.3)
    [second] = claim_until(agent, what="the expired claim")
    assert (second.message.id, second.deliveries) == (m.id, 2)
    agent.ack([first])  # stale: the lease ran out
    agent.extend([first], 30)
    assert agent.length() == 1
    agent.ack([second])
    assert agent.length() == 0


def test_retry_keeps_the_count_of_deliveries(agent: RabbitMQAgent) -> None:
    m = msg()
    agent.push([m])
    [c] = claim(agent)
    agent.retry([(c, AgentMessage(m.id, m.lane, 4, time.time(), b"v2"))])
    [again] = claim(agent)
    assert (again.message.body, again.message.priority, again.deliveries) == (b"v2", 4, 2)


def test_the_delivery_limit_dead_letters_with_its_reason() -> None:
    require("rabbitmq")
    a = _make(RABBITMQ_URL + "?delivery_limit=1")
    try:
        m = msg()
        a.push([m])
        claim_until(a, lease=0.2, what="the first delivery")
        claim_until(a, lease=0.2, what="the second delivery")
        # the next call hands the second back: one delivery more than the limit
        wait_until(lambda: claim(a) == [] and a.find_dead_letters([m.id]) != [], 15,
                   "the dead letter")
        [dead] = a.find_dead_letters([m.id])
        assert "delivery limit" in dead.reason
        assert (dead.message.id, dead.message.body) == (m.id, b"x")
    finally:
        a.purge()
        a.close()


def test_malformed_messages_are_dead_lettered_and_the_rest_claimed(
    agent: RabbitMQAgent,
) -> None:
    good = msg(body=b"good")
    agent.push([good])
    rabbitmq_malformed(agent, "default", None)
    rabbitmq_malformed(agent, "default", {"jm-id": "bad-due", "jm-due": "nan"})
    rabbitmq_malformed(agent, "default", {"jm-id": b"\xff\xfe", "jm-due": "1.0"})
    got = claim(agent)
    assert [c.message.id for c in got] == [good.id]
    reasons = sorted(d.reason for d in agent.dead_letters())
    assert len(reasons) == 3
    assert any("no jm-id header" in r for r in reasons)
    assert any("not a finite number" in r for r in reasons)
    assert any("not a non-empty string" in r for r in reasons)


def test_the_same_message_pushed_twice_is_dropped_but_a_new_version_is_not(
    agent: RabbitMQAgent,
) -> None:
    m = msg(body=b"v1")
    agent.push([m, m])
    agent.push([m])
    assert agent.length() == 1
    agent.push([AgentMessage(m.id, m.lane, m.priority, m.due, b"v2")])
    assert agent.length() == 2


def test_an_agent_recovers_when_another_one_purged_its_queues(agent: RabbitMQAgent) -> None:
    agent.push([msg()])
    other = RabbitMQAgent(RABBITMQ_URL, name=agent.name, namespace=agent.namespace)
    try:
        assert other.purge() == 1
    finally:
        other.close()
    m = msg()
    agent.push([m])  # the queue is declared again
    assert [c.message.id for c in claim(agent)] == [m.id]


def test_a_closed_agent_refuses_work() -> None:
    require("rabbitmq")
    a = _make()
    a.purge()
    a.close()
    with pytest.raises(AgentError, match="closed"):
        a.push([msg()])
