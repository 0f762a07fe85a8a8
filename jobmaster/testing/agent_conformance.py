"""The agent conformance suite: the contract every agent backend keeps, as pytest tests.

A backend passes it unchanged; nothing else is asked of it. Subclass ``AgentConformance``
in a test module of your project and override the ``make_agent`` fixture::

    import pytest
    from jobmaster.testing.agent_conformance import AgentConformance
    from myq_agent import MyQueueAgent

    class TestMyQueueAgent(AgentConformance):
        @pytest.fixture
        def make_agent(self):
            def make(namespace: str) -> MyQueueAgent:
                return MyQueueAgent("myq://localhost:7000", name="conformance",
                                    namespace=namespace)
            return make

then run ``pytest -k TestMyQueueAgent``. Every test gets an agent of a fresh namespace,
purged before and after it. Override ``store_malformed`` too (see its docstring) and the
suite also checks that a malformed record stored in the backend is dead-lettered by
``claim`` rather than returned or raised.

The tests take a few seconds each at most (leases of one second run out); they need
nothing but the agent, and the server it talks to.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence

import pytest

from jobmaster.agents.base import (
    Agent,
    AgentMessage,
    Bucket,
    Claimed,
    storable_reason,
)

__all__ = ["AgentConformance", "AgentFactory", "MalformedStore", "claim", "claim_within", "message"]

AgentFactory = Callable[[str], Agent]
"""Builds the agent under test for a namespace (each test uses a fresh one)."""

MalformedStore = Callable[[Agent, str], str]
"""Stores one malformed record in a lane of an agent, directly in the backend; returns
words the reason of its dead letter must contain."""


def message(
    lane: str = "default", priority: int = 2, due: float | None = None, body: bytes = b"x"
) -> AgentMessage:
    """A message with a fresh id, due now unless ``due`` says otherwise."""
    return AgentMessage(uuid.uuid4().hex, lane, priority, time.time() if due is None else due, body)


def claim(
    agent: Agent,
    lanes: Sequence[str] = ("default",),
    limit: int = 10,
    lease: float = 30.0,
    consumer: str = "c1",
    wait: float = 0.0,
) -> list[Claimed]:
    """``agent.claim`` with the suite's defaults."""
    return agent.claim(list(lanes), limit, lease_seconds=lease, consumer=consumer, wait=wait)


def _bury(agent: Agent, body: bytes = b"x", reason: str = "poison") -> AgentMessage:
    """Push a message, claim it and dead-letter it with ``reason``; return it."""
    m = message(body=body)
    agent.push([m])
    [c] = claim_within(agent, 5)
    assert c.message.id == m.id
    agent.dead_letter([(c, reason)])
    return m


def claim_within(agent: Agent, timeout: float, **options: float | str) -> list[Claimed]:
    """Claim until something comes, polling for at most ``timeout`` seconds; fail if
    nothing does."""
    deadline = time.monotonic() + timeout
    while True:
        got = claim(agent, **options)  # type: ignore[arg-type]
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"nothing became claimable within {timeout:g} s")
        time.sleep(0.02)


# Reasons a worker may hand to ``dead_letter``: every one must be storable.
_AWKWARD_REASONS = {
    "nul": "before\x00after",
    "controls": "bell\x07 escape\x1b[31m del\x7f c1\x85 tab\t newline\n carriage\r end",
    "surrogates": "lone \ud800 and \udfff surrogates",
    "one megabyte": "x" * 1_000_000,
    "wide text": "é中😀" * 200_000,
    "empty": "",
}

# Messages no agent may store: each makes a whole push fail.
_MALFORMED: dict[str, dict[str, object]] = {
    "priority 9": {"priority": 9},
    "priority -1": {"priority": -1},
    "priority text": {"priority": "2"},
    "priority bool": {"priority": True},
    "due nan": {"due": math.nan},
    "due inf": {"due": math.inf},
    "due text": {"due": "now"},
    "empty id": {"id": ""},
    "id not text": {"id": 42},
    "body text": {"body": "text"},
}


class AgentConformance:
    """The agent contract as pytest tests. Subclass it (as ``Test...``) and override the
    ``make_agent`` fixture; see the module docstring."""

    # -- fixtures to override ------------------------------------------------------
    @pytest.fixture
    def make_agent(self) -> AgentFactory:
        """Override: return a function that builds the agent under test for a namespace."""
        pytest.fail(
            f"{type(self).__name__} must override the make_agent fixture: return a function "
            "that builds the agent under test for a namespace"
        )

    @pytest.fixture
    def store_malformed(self) -> MalformedStore | None:
        """Override (optional): return a function ``(agent, lane) -> words`` that stores one
        malformed record in ``lane`` of ``agent`` directly in the backend (a garbled due
        time, an out-of-range priority...), due now and claimed before a priority-0 message
        pushed after it, and returns words the reason of its dead letter must contain.
        ``None`` (the default) skips the checks that need it."""
        return None

    @pytest.fixture
    def agent(self, make_agent: AgentFactory) -> Iterator[Agent]:
        """The agent under test, in a fresh namespace, purged before and after the test."""
        a = make_agent(f"jmt{uuid.uuid4().hex[:10]}")
        a.purge()
        try:
            yield a
        finally:
            a.purge()
            a.close()

    # -- push and claim ------------------------------------------------------------
    def test_push_then_claim_returns_the_message_intact(self, agent: Agent) -> None:
        """A claimed message has the id, lane, priority and body pushed, delivered once."""
        body = bytes(range(256)) * 4
        m = message(body=body)
        agent.push([m])
        [c] = claim(agent)
        assert c.message.id == m.id
        assert c.message.body == body
        assert (c.message.lane, c.message.priority) == ("default", 2)
        assert c.message.due == pytest.approx(m.due, abs=1e-3)
        assert c.deliveries == 1

    def test_claim_orders_by_priority_then_push_order(self, agent: Agent) -> None:
        """Highest priority first, then the order of pushes."""
        now = time.time() - 1
        low, high, mid1, mid2, crit = (message(priority=p, due=now) for p in (1, 3, 2, 2, 4))
        for m in (low, high, mid1, mid2, crit):
            agent.push([m])
        got = [c.message.id for c in claim(agent, limit=10)]
        assert got == [crit.id, high.id, mid1.id, mid2.id, low.id]

    def test_priority_order_holds_across_separate_claims(self, agent: Agent) -> None:
        """Claims of one message each still go by priority."""
        now = time.time() - 1
        agent.push([message(priority=p, due=now) for p in (0, 1, 2, 3, 4)])
        got = [claim(agent, limit=1)[0].message.priority for _ in range(5)]
        assert got == [4, 3, 2, 1, 0]

    def test_lanes_are_isolated(self, agent: Agent) -> None:
        """A claim takes only from the lanes it names."""
        a, b = message(lane="emails"), message(lane="reports")
        agent.push([a, b])
        assert [c.message.id for c in claim(agent, lanes=["emails"])] == [a.id]
        assert claim(agent, lanes=["emails"]) == []
        assert [c.message.id for c in claim(agent, lanes=["reports", "other"])] == [b.id]

    def test_length_counts_per_bucket_and_in_total(self, agent: Agent) -> None:
        """``length`` counts one bucket or the whole agent."""
        agent.push(
            [message(lane="a", priority=1), message(lane="a", priority=1),
             message(lane="a", priority=3)]
        )
        agent.push([message(lane="b", priority=1)])
        assert agent.length(Bucket("a", 1)) == 2
        assert agent.length(Bucket("a", 3)) == 1
        assert agent.length(Bucket("b", 1)) == 1
        assert agent.length(Bucket("b", 4)) == 0
        assert agent.length() == 4

    # -- leases ----------------------------------------------------------------------
    def test_claimed_message_is_invisible_until_its_lease_expires(self, agent: Agent) -> None:
        """A claimed message comes back once its lease runs out, delivered twice."""
        m = message()
        agent.push([m])
        started = time.monotonic()
        assert len(claim(agent, lease=1.0, consumer="first")) == 1
        assert claim(agent, consumer="second") == []
        [again] = claim_within(agent, 10.0, consumer="second")
        assert time.monotonic() - started >= 0.9
        assert again.message.id == m.id
        assert again.deliveries == 2

    def test_extend_keeps_a_claim_past_its_first_lease(self, agent: Agent) -> None:
        """An extended lease keeps the message from other consumers past the first lease."""
        agent.push([message()])
        [c] = claim(agent, lease=1.0)
        time.sleep(0.6)
        agent.extend([c], 3.0)
        time.sleep(0.8)  # past the first lease, inside the extended one
        assert claim(agent, consumer="other") == []
        agent.ack([c])
        assert agent.length() == 0

    def test_ack_removes_the_message(self, agent: Agent) -> None:
        """Acked messages are gone."""
        agent.push([message(), message()])
        claimed = claim(agent)
        assert agent.length() == 2
        agent.ack(claimed)
        assert agent.length() == 0
        assert claim(agent) == []

    def test_pushing_the_same_id_twice_keeps_one(self, agent: Agent) -> None:
        """A second push of a message held already is ignored."""
        m = message()
        agent.push([m])
        agent.push([m])
        assert agent.length() == 1

    def test_future_message_is_not_claimable_before_due(self, agent: Agent) -> None:
        """A message pushed for later is claimable at its due time, not before."""
        soon = message(due=time.time() + 1.0)
        agent.push([soon])
        assert claim(agent) == []
        [got] = claim_within(agent, 10.0)
        assert time.time() >= soon.due - 0.05
        assert got.message.id == soon.id

    def test_retry_replaces_the_body_and_honours_the_new_due_time(self, agent: Agent) -> None:
        """A retry holds the new version until its new due time."""
        m = message(body=b"attempt-1")
        agent.push([m])
        [c] = claim(agent)
        later = AgentMessage(m.id, m.lane, m.priority, time.time() + 1.0, b"attempt-2")
        agent.retry([(c, later)])
        assert claim(agent) == []
        assert agent.length() == 1
        [again] = claim_within(agent, 10.0)
        assert time.time() >= later.due - 0.05
        assert again.message.body == b"attempt-2"

    def test_retry_now_hands_a_job_back_at_once(self, agent: Agent) -> None:
        """A retry due now is claimable at once."""
        m = message()
        agent.push([m])
        [c] = claim(agent)
        agent.retry([(c, AgentMessage(m.id, m.lane, m.priority, time.time(), m.body))])
        [again] = claim(agent, consumer="other")
        assert again.message.id == m.id

    # -- dead letters ----------------------------------------------------------------
    def test_dead_letter_keeps_the_reason_and_leaves_the_queue(self, agent: Agent) -> None:
        """A dead-lettered message leaves the queue and is listed with its reason."""
        m = message(body=b"not json")
        agent.push([m])
        [c] = claim(agent)
        agent.dead_letter([(c, "undecodable envelope: not json")])
        assert agent.length() == 0
        assert claim(agent) == []
        [dead] = agent.dead_letters()
        assert dead.message.id == m.id
        assert dead.message.body == b"not json"
        assert dead.reason == "undecodable envelope: not json"

    @pytest.mark.parametrize("kind", sorted(_AWKWARD_REASONS))
    def test_any_reason_can_be_dead_lettered(self, agent: Agent, kind: str) -> None:
        """Any ``str`` is a reason: it is stored as ``storable_reason`` makes it, within the
        agent's ``reason_limit_bytes``, and the message leaves the queue."""
        reason = _AWKWARD_REASONS[kind]
        good, awkward = message(body=b"good"), message(body=b"awkward")
        agent.push([good, awkward])
        claimed = {c.message.id: c for c in claim(agent)}
        agent.dead_letter([(claimed[awkward.id], reason), (claimed[good.id], "plain")])
        assert agent.length() == 0
        assert claim(agent) == []
        dead = {d.message.id: d for d in agent.dead_letters()}
        assert set(dead) == {good.id, awkward.id}
        assert dead[good.id].reason == "plain"
        stored = dead[awkward.id].reason
        assert stored == storable_reason(reason, agent.reason_limit_bytes)
        assert len(stored.encode()) <= agent.reason_limit_bytes
        assert "\x00" not in stored
        assert dead[awkward.id].message.body == b"awkward"

    # -- working with dead letters -----------------------------------------------------
    def test_dead_letters_page_newest_first(self, agent: Agent) -> None:
        """``dead_letters(limit, before=last)`` pages through every dead letter, newest
        first, each exactly once."""
        ids = [_bury(agent, body=f"m{i}".encode()).id for i in range(5)]
        pages, before = [], None
        while True:
            page = agent.dead_letters(2, before=before)
            if not page:
                break
            assert len(page) <= 2
            pages.append([d.message.id for d in page])
            before = page[-1]
            assert len(pages) <= 3, pages
        assert [i for page in pages for i in page] == ids[::-1]
        assert [len(p) for p in pages] == [2, 2, 1]

    def test_find_dead_letters_by_message_id(self, agent: Agent) -> None:
        """``find_dead_letters`` returns the dead letter of each id asked for, with its
        message and reason; an id without one is left out."""
        a = _bury(agent, body=b"a", reason="reason a")
        b = _bury(agent, body=b"b", reason="reason b")
        [found] = agent.find_dead_letters([a.id, "no-such-id"])
        assert found.message == a
        assert found.reason == "reason a"
        assert {d.message.id for d in agent.find_dead_letters([a.id, b.id])} == {a.id, b.id}
        assert agent.find_dead_letters([]) == []

    def test_remove_dead_letters_returns_each_once(self, agent: Agent) -> None:
        """``remove_dead_letters`` deletes the dead letters given and returns those that
        were there: removing again returns nothing, and the others stay."""
        a, b = _bury(agent, body=b"a"), _bury(agent, body=b"b")
        [letter] = agent.find_dead_letters([a.id])
        [gone] = agent.remove_dead_letters([letter])
        assert gone.message == a
        assert agent.remove_dead_letters([letter]) == []
        assert agent.find_dead_letters([a.id]) == []
        assert [d.message.id for d in agent.dead_letters()] == [b.id]

    def test_requeue_push_then_remove_survives_a_crash_in_between(self, agent: Agent) -> None:
        """The requeue protocol: push the message back (as a new version: a fresh attempt
        has a new body), then remove its dead letter. Cut short after the push and done
        again, the job is still held once; when done, it is claimable and no longer dead."""
        m = _bury(agent, body=b"v1")
        [letter] = agent.find_dead_letters([m.id])
        fresh = AgentMessage(m.id, m.lane, m.priority, time.time(), b"v2")
        agent.push([fresh])  # ... and the requeue stops here (a crash)
        assert agent.find_dead_letters([m.id]) != []  # nothing is lost meanwhile
        agent.push([fresh])  # done again from the start
        [letter] = agent.find_dead_letters([m.id])
        assert [d.message.id for d in agent.remove_dead_letters([letter])] == [m.id]
        assert agent.length() == 1
        [c] = claim_within(agent, 5)
        assert (c.message.id, c.message.body) == (m.id, b"v2")
        assert agent.dead_letters() == []

    def test_removing_an_old_dead_letter_keeps_a_new_one_of_the_same_job(
        self, agent: Agent
    ) -> None:
        """A job requeued, claimed and dead-lettered again before its old dead letter is
        removed keeps the new dead letter: removal goes by dead letter, not by job id."""
        m = _bury(agent, body=b"v1", reason="first")
        [old] = agent.find_dead_letters([m.id])
        agent.push([AgentMessage(m.id, m.lane, m.priority, time.time(), b"v2")])
        [c] = claim_within(agent, 5)
        agent.dead_letter([(c, "second")])
        assert [d.reason for d in agent.remove_dead_letters([old])] == ["first"]
        [new] = agent.find_dead_letters([m.id])
        assert (new.reason, new.message.body) == ("second", b"v2")

    def test_purge_dead_letters_older_than_a_time_then_all(self, agent: Agent) -> None:
        """``purge_dead_letters(before)`` drops the dead letters older than ``before`` and
        returns how many; without ``before`` it drops them all. Jobs are not touched."""
        a = _bury(agent, body=b"a")
        b = _bury(agent, body=b"b")
        [da], [db] = agent.find_dead_letters([a.id]), agent.find_dead_letters([b.id])
        assert da.at < db.at
        waiting = message()
        agent.push([waiting])
        assert agent.purge_dead_letters(before=db.at) == 1
        assert [d.message.id for d in agent.dead_letters()] == [b.id]
        assert agent.purge_dead_letters() == 1
        assert agent.dead_letters() == []
        assert agent.find_dead_letters([a.id, b.id]) == []
        assert agent.purge_dead_letters() == 0
        assert agent.length() == 1

    # -- malformed input -------------------------------------------------------------
    @pytest.mark.parametrize("kind", sorted(_MALFORMED))
    def test_a_malformed_message_refuses_the_whole_push(self, agent: Agent, kind: str) -> None:
        """A push holding a malformed message raises ``ValueError`` (jobmaster's
        ``ConfigurationError``) and stores nothing of the batch."""
        good = message()
        fields = {"id": uuid.uuid4().hex, "lane": "default", "priority": 2,
                  "due": time.time(), "body": b"x", **_MALFORMED[kind]}
        bad = AgentMessage(**fields)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            agent.push([good, bad])
        assert agent.length() == 0
        assert claim(agent) == []

    def test_a_malformed_stored_record_is_dead_lettered_not_claimed(
        self, agent: Agent, store_malformed: MalformedStore | None
    ) -> None:
        """``claim`` never returns nor raises a malformed record: it moves it to the dead
        letters with the reason and still returns the good messages of the batch."""
        if store_malformed is None:
            pytest.skip("no store_malformed fixture for this agent")
        first, last = message(body=b"first"), message(body=b"last")
        agent.push([first])
        words = store_malformed(agent, "default")
        agent.push([last])
        got = claim(agent, limit=10)
        assert sorted(c.message.id for c in got) == sorted([first.id, last.id])
        assert all(c.message.body in (b"first", b"last") for c in got)
        [dead] = agent.dead_letters()
        assert words in dead.reason, dead.reason
        agent.ack(got)
        assert agent.length() == 0
        assert claim(agent) == []
        assert len(agent.dead_letters()) == 1

    def test_a_batch_of_only_malformed_records_does_not_end_the_claim(
        self, agent: Agent, store_malformed: MalformedStore | None
    ) -> None:
        """A claim whose first batch held only malformed records looks again and returns
        the good message behind them."""
        if store_malformed is None:
            pytest.skip("no store_malformed fixture for this agent")
        store_malformed(agent, "default")
        good = message(priority=0)  # the lowest priority: after the malformed record
        agent.push([good])
        got = claim(agent, limit=1)
        assert [c.message.id for c in got] == [good.id]
        assert len(agent.dead_letters()) == 1

    # -- batches and concurrency ---------------------------------------------------------
    def test_batch_push_and_batch_claim(self, agent: Agent) -> None:
        """Big batches keep their order and claims take at most ``limit``."""
        agent.push([message(body=str(i).encode()) for i in range(500)])
        assert agent.length() == 500
        first = claim(agent, limit=100)
        assert len(first) == 100
        assert [int(c.message.body) for c in first] == list(range(100))
        rest: list[Claimed] = []
        while batch := claim(agent, limit=150):
            rest.extend(batch)
        assert len(rest) == 400
        agent.ack(first + rest)
        assert agent.length() == 0

    def test_no_message_is_claimed_by_two_consumers_at_once(self, agent: Agent) -> None:
        """Concurrent consumers never share a message."""
        total = 300
        agent.push([message() for _ in range(total)])
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

    # -- waiting -------------------------------------------------------------------------
    def test_claim_waits_for_a_message_pushed_meanwhile(self, agent: Agent) -> None:
        """A waiting claim returns a message pushed while it waits."""
        m = message()
        timer = threading.Timer(0.3, agent.push, args=([m],))
        timer.start()
        try:
            got = claim(agent, wait=5.0)
        finally:
            timer.join()
        assert [c.message.id for c in got] == [m.id]

    def test_claim_with_wait_returns_empty_when_nothing_comes(self, agent: Agent) -> None:
        """A waiting claim with nothing to take returns empty after about ``wait``."""
        started = time.monotonic()
        assert claim(agent, wait=0.3) == []
        assert time.monotonic() - started >= 0.25

    def test_purge_drops_everything(self, agent: Agent) -> None:
        """``purge`` drops every message and returns how many."""
        agent.push([message(), message(lane="other")])
        assert agent.purge() == 2
        assert agent.length() == 0
