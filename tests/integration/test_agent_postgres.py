"""PostgreSQL agent: what the conformance suite cannot check.

Broken and unreachable servers, LISTEN/NOTIFY wake-ups, fork safety, agents sharing a
namespace, stale receipts. The conformance suite covers the contract itself.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from jobmaster.agents import AgentMessage, resolve_agent
from jobmaster.agents import postgres as pg_module
from jobmaster.agents.postgres import PostgresAgent, postgres_conninfo
from jobmaster.exceptions import AgentError, ConfigurationError
from tests.agent_backends import leaks, sql_malformed
from tests.services import POSTGRES_URL, require

T = TypeVar("T")


# -- fixtures and helpers -------------------------------------------------------------
@pytest.fixture(scope="session", autouse=True)
def _drop_test_tables() -> Iterator[None]:
    """At the end of the session, drop the empty ``jmt*`` tables test agents left behind
    (every conformance test uses a fresh namespace). Tables still holding jobs are kept:
    a concurrent test session may be using them."""
    yield
    try:
        conn = psycopg.connect(postgres_conninfo(POSTGRES_URL), autocommit=True)
    except psycopg.Error:
        return
    with conn:
        conn.execute("SET lock_timeout = '2s'")
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                r" AND tablename LIKE 'jmt%\_agent\_jobs'"
            )
        ]
        for jobs in tables:
            dead = jobs[: -len("jobs")] + "dead"
            try:
                with conn.transaction():
                    conn.execute(f"LOCK TABLE {jobs} IN ACCESS EXCLUSIVE MODE")
                    if conn.execute(f"SELECT EXISTS (SELECT 1 FROM {jobs})").fetchone() == (False,):
                        conn.execute(f"DROP TABLE IF EXISTS {jobs}, {dead}")
            except psycopg.Error:
                continue  # busy: the next session drops it


@pytest.fixture
def namespace() -> str:
    return f"jmt{uuid.uuid4().hex[:10]}"


def _agent(namespace: str, name: str = "pgtest") -> PostgresAgent:
    agent = resolve_agent(POSTGRES_URL, name=name, namespace=namespace)
    assert isinstance(agent, PostgresAgent)
    return agent


@pytest.fixture
def agent(namespace: str) -> Iterator[PostgresAgent]:
    require("postgres")
    a = _agent(namespace)
    a.purge()
    try:
        yield a
    finally:
        a.purge()
        a.close()


@pytest.fixture
def producer(namespace: str, agent: PostgresAgent) -> Iterator[PostgresAgent]:
    """A second agent object on the same agent: its own connections, like another process."""
    p = _agent(namespace)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def admin() -> Iterator[psycopg.Connection]:
    require("postgres")
    with psycopg.connect(postgres_conninfo(POSTGRES_URL), autocommit=True) as conn:
        yield conn


def kill_sessions(admin: psycopg.Connection, namespace: str) -> int:
    """Terminate every session the agents of ``namespace`` hold (their application_name)."""
    rows = admin.execute(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
        " WHERE application_name = %s AND pid <> pg_backend_pid()",
        (f"jobmaster-agent:{namespace}",),
    ).fetchall()
    return len(rows)


def tolerating_one_error(call: Callable[[], T]) -> T:
    """The contract for a broken connection: the call succeeds (transparent reconnect) or
    raises a clear AgentError, and then the next call succeeds."""
    try:
        return call()
    except AgentError as exc:
        assert "postgres" in str(exc).lower()
        return call()


def msg(lane: str = "default", priority: int = 2, due: float | None = None) -> AgentMessage:
    return AgentMessage(
        uuid.uuid4().hex, lane, priority, time.time() if due is None else due, b"body"
    )


def claim(agent: PostgresAgent, *, lease: float = 30.0, wait: float = 0.0, consumer: str = "c"):
    return agent.claim(["default"], 100, lease_seconds=lease, consumer=consumer, wait=wait)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- URLs and names ---------------------------------------------------------------
def test_every_postgres_scheme_resolves_without_connecting() -> None:
    for scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        a = resolve_agent(f"{scheme}://u:pw@127.0.0.1:{free_port()}/db", namespace="jm")
        assert isinstance(a, PostgresAgent)
        assert "pw" not in repr(a)
        a.close()


@pytest.mark.parametrize("namespace", ["bad-name", "1abc", "x" * 41, ""])
def test_namespace_must_be_an_identifier(namespace: str) -> None:
    with pytest.raises(ConfigurationError, match="namespace"):
        PostgresAgent(POSTGRES_URL, namespace=namespace)


# -- broken and unreachable servers -----------------------------------------------
def test_killed_connection_is_replaced_and_nothing_pushed_is_lost(
    agent: PostgresAgent, admin: psycopg.Connection, namespace: str
) -> None:
    first = [msg() for _ in range(5)]
    agent.push(first)
    assert kill_sessions(admin, namespace) >= 1
    second = [msg() for _ in range(5)]
    tolerating_one_error(lambda: agent.push(second))
    assert kill_sessions(admin, namespace) >= 1
    claimed = tolerating_one_error(lambda: claim(agent))
    assert {c.message.id for c in claimed} == {m.id for m in first + second}
    assert kill_sessions(admin, namespace) >= 1
    tolerating_one_error(lambda: agent.ack(claimed))
    assert agent.length() == 0


def test_every_operation_survives_a_killed_connection(
    agent: PostgresAgent, admin: psycopg.Connection, namespace: str
) -> None:
    def killed(call: Callable[[], T]) -> T:
        kill_sessions(admin, namespace)
        return tolerating_one_error(call)

    m1, m2, m3 = msg(), msg(), msg()
    killed(lambda: agent.push([m1, m2, m3]))
    assert killed(agent.length) == 3
    claimed = killed(lambda: claim(agent))
    assert len(claimed) == 3
    c1, c2, c3 = sorted(claimed, key=lambda c: [m1.id, m2.id, m3.id].index(c.message.id))
    killed(lambda: agent.extend([c1, c2, c3], 60))
    killed(lambda: agent.retry([(c1, AgentMessage(m1.id, "default", 2, time.time(), b"v2"))]))
    killed(lambda: agent.dead_letter([(c2, "bad")]))
    killed(lambda: agent.ack([c3]))
    assert [d.message.id for d in killed(agent.dead_letters)] == [m2.id]
    [again] = killed(lambda: claim(agent))
    assert (again.message.id, again.message.body, again.deliveries) == (m1.id, b"v2", 2)
    killed(lambda: agent.ack([again]))
    assert killed(agent.purge) == 0


def test_unreachable_server_raises_a_clear_error_quickly(namespace: str) -> None:
    url = f"postgresql+psycopg://jm:sekrit@127.0.0.1:{free_port()}/test"
    agent = resolve_agent(url, namespace=namespace)
    started = time.monotonic()
    with pytest.raises(AgentError) as info:
        agent.push([msg()])
    assert time.monotonic() - started < 5
    text = str(info.value)
    assert "jm:***@127.0.0.1" in text
    assert "sekrit" not in text
    assert "running" in text  # the hint


def test_connect_timeout_bounds_a_server_that_never_answers(namespace: str) -> None:
    with socket.socket() as silent:  # accepts TCP connections (backlog) but never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        agent = resolve_agent(
            f"postgresql://jm@127.0.0.1:{port}/test?connect_timeout=2", namespace=namespace
        )
        started = time.monotonic()
        with pytest.raises(AgentError, match="127.0.0.1"):
            agent.length()
        assert time.monotonic() - started < 15


# -- LISTEN/NOTIFY ----------------------------------------------------------------
@pytest.fixture
def no_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the one-second re-check longer than any wait: only a NOTIFY (or a known due
    time) can wake a waiting claim."""
    monkeypatch.setattr(pg_module, "_RECHECK", 60.0)


def _push_later(agent: PostgresAgent, message: AgentMessage, delay: float) -> threading.Timer:
    timer = threading.Timer(delay, agent.push, args=([message],))
    timer.start()
    return timer


def test_waiting_claim_is_woken_by_a_push_from_another_connection(
    agent: PostgresAgent, producer: PostgresAgent, no_polling: None
) -> None:
    assert agent.capabilities.notify
    claim(agent)  # connections and tables ready
    m = msg()
    timer = _push_later(producer, m, 0.3)
    started = time.monotonic()
    got = claim(agent, wait=5.0)
    elapsed = time.monotonic() - started
    timer.join()
    assert [c.message.id for c in got] == [m.id]
    assert elapsed < 4.0  # woken by the NOTIFY, not by the end of the wait


def test_a_push_for_another_lane_does_not_end_the_wait(
    agent: PostgresAgent, producer: PostgresAgent, no_polling: None
) -> None:
    other = msg(lane="elsewhere")
    mine = msg()
    t1 = _push_later(producer, other, 0.1)
    t2 = _push_later(producer, mine, 0.4)
    got = claim(agent, wait=5.0)
    t1.join()
    t2.join()
    assert [c.message.id for c in got] == [mine.id]
    assert agent.length() == 2


def test_waiting_claim_wakes_for_a_job_pushed_with_a_later_due_time(
    agent: PostgresAgent, producer: PostgresAgent, no_polling: None
) -> None:
    m = msg(due=time.time() + 0.8)
    timer = _push_later(producer, m, 0.2)
    started = time.monotonic()
    got = claim(agent, wait=5.0)
    elapsed = time.monotonic() - started
    timer.join()
    assert [c.message.id for c in got] == [m.id]
    assert 0.6 < elapsed < 4.0


def test_waiting_claim_survives_its_listening_connection_being_killed(
    agent: PostgresAgent,
    producer: PostgresAgent,
    admin: psycopg.Connection,
    namespace: str,
    no_polling: None,
) -> None:
    m = msg()
    result: list[object] = []
    waiter = threading.Thread(target=lambda: result.append(claim(agent, wait=8.0)))
    waiter.start()
    time.sleep(0.5)
    assert kill_sessions(admin, namespace) >= 1
    time.sleep(0.3)
    producer.push([m])
    waiter.join(10)
    [got] = result
    assert [c.message.id for c in got] == [m.id]  # type: ignore[attr-defined]


# -- sharing, receipts, batches, fork ---------------------------------------------
def test_agents_sharing_a_namespace_keep_their_jobs_apart(
    agent: PostgresAgent, namespace: str
) -> None:
    other = _agent(namespace, name="other")
    try:
        agent.push([msg(), msg()])
        other.push([msg()])
        assert (agent.length(), other.length()) == (2, 1)
        assert len(claim(other)) == 1
        assert other.purge() == 1
        assert agent.length() == 2
    finally:
        other.purge()
        other.close()


def test_a_stale_receipt_touches_nothing(agent: PostgresAgent) -> None:
    m = msg()
    agent.push([m])
    [stale] = claim(agent, lease=0.3, consumer="slow")
    time.sleep(0.5)
    [fresh] = claim(agent, consumer="fast")
    assert fresh.deliveries == 2
    agent.ack([stale])
    agent.extend([stale], 60)
    agent.retry([(stale, AgentMessage(m.id, m.lane, m.priority, time.time(), b"stale"))])
    agent.dead_letter([(stale, "stale")])
    assert agent.length() == 1
    assert agent.dead_letters() == []
    assert claim(agent, consumer="third") == []  # still leased to "fast"
    agent.ack([fresh])
    assert agent.length() == 0


def test_a_big_push_split_into_statements_is_kept_whole_and_in_order(
    agent: PostgresAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_module, "_CHUNK_ROWS", 300)
    now = time.time() - 1
    messages = [
        AgentMessage(uuid.uuid4().hex, "default", 2, now, str(i).encode()) for i in range(1000)
    ]
    agent.push(messages + messages[:10])  # duplicates ignored
    assert agent.length() == 1000
    got = [
        int(c.message.body) for c in agent.claim(["default"], 1000, lease_seconds=30, consumer="c")
    ]
    assert got == list(range(1000))


def test_forked_child_opens_its_own_connections(
    agent: PostgresAgent, caplog: pytest.LogCaptureFixture
) -> None:
    agent.push([msg()])  # the parent now holds a pooled connection
    caplog.set_level(logging.WARNING, logger="jobmaster.agents.postgres")
    pid = os.fork()
    if pid == 0:  # child: use the agent, drop every reference, collect, exit
        code = 1
        try:
            agent.push([msg()])
            code = 0 if agent.length() == 2 else 2
            agent.close()
            import gc

            gc.collect()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert agent.length() == 2
    assert not [r for r in caplog.records if "connection lost" in r.getMessage()]


# -- malformed rows --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("alter", "columns", "words"),
    [
        (None, {"priority": 9}, "priority 9, not an int 0..4"),
        (None, {"priority": -1}, "priority -1, not an int 0..4"),
        (None, {"due": float("-inf")}, "due time -inf, not a finite number"),
        (None, {"id": ""}, "id '', not a non-empty string"),
        ("priority", {"priority": None}, "priority None, not an int 0..4"),
        ("body", {"body": None}, "body of type NoneType, not bytes"),
    ],
    ids=["priority 9", "priority -1", "due -inf", "empty id", "NULL priority", "NULL body"],
)
def test_a_malformed_row_is_dead_lettered_and_the_good_ones_are_claimed(
    agent: PostgresAgent,
    admin: psycopg.Connection,
    alter: str | None,
    columns: dict[str, object],
    words: str,
) -> None:
    first, last = msg(), msg()
    agent.push([first])
    if alter is not None:  # a column that lost its NOT NULL (an operator's hand)
        admin.execute(f"ALTER TABLE {agent._jobs} ALTER COLUMN {alter} DROP NOT NULL")
    bad_id = sql_malformed(agent, "default", **columns)
    agent.push([last])
    got = claim(agent)
    assert sorted(c.message.id for c in got) == sorted([first.id, last.id])
    [dead] = agent.dead_letters()
    assert dead.reason == "stored record has " + words
    assert dead.message.id == bad_id
    assert agent.length() == 2
    agent.ack(got)
    assert agent.length() == 0
    assert claim(agent) == []
    assert len(agent.dead_letters()) == 1


def test_a_waiting_claim_is_not_ended_by_malformed_rows(agent: PostgresAgent) -> None:
    for _ in range(3):
        sql_malformed(agent, "default", priority=9)
    good = msg(priority=0)
    timer = _push_later(agent, good, 0.2)
    got = agent.claim(["default"], 1, lease_seconds=30, consumer="c", wait=5.0)
    timer.join()
    assert [c.message.id for c in got] == [good.id]
    assert len(agent.dead_letters()) == 3


def test_a_reason_with_nul_bytes_and_surrogates_is_stored(agent: PostgresAgent) -> None:
    agent.push([msg()])
    [c] = claim(agent)
    agent.dead_letter([(c, "nul \x00 here, lone \udc80 there")])
    [dead] = agent.dead_letters()
    assert dead.reason == "nul  here, lone \ufffd there"


# -- credentials -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://jm:sekrit9@127.0.0.1:{port}/test",
        "postgresql://127.0.0.1:{port}/test?user=jm&password=sekrit9",
        "postgresql://jm:sekrit9@127.0.0.1:{port}/test?bogus=1",
        "postgresql://jm:sekrit9@127.0.0.1:badport/test",
    ],
    ids=["user and password", "query password", "bad option", "bad port"],
)
def test_errors_never_show_the_password(
    url: str, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    error: BaseException
    try:
        agent = resolve_agent(url.format(port=free_port()), namespace=namespace)
    except ConfigurationError as exc:
        error = exc
    else:
        assert "sekrit9" not in repr(agent)
        with pytest.raises(AgentError) as info:
            agent.push([msg()])
        error = info.value
    assert leaks("sekrit9", error, caplog.records) == []
    assert "***" in str(error)


def test_a_lost_connection_is_logged_without_the_password(
    namespace: str, admin: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    # trust authentication accepts any password: the URL carries one all the same
    parts = urlsplit(POSTGRES_URL)
    if parts.password or "trust" not in _auth_methods(admin):
        pytest.skip("needs a user without a password, trusted by the server")
    netloc = f"{parts.username}:sekrit9@{parts.hostname}:{parts.port or 5432}"
    url = urlunsplit(parts._replace(netloc=netloc))
    agent = resolve_agent(url, namespace=namespace)
    try:
        agent.push([msg()])
        caplog.set_level(logging.DEBUG)
        assert kill_sessions(admin, namespace) >= 1
        assert tolerating_one_error(agent.length) == 1
        assert [r for r in caplog.records if "connection lost" in r.getMessage()]
        assert leaks("sekrit9", None, caplog.records) == []
    finally:
        agent.purge()
        agent.close()


def _auth_methods(admin: psycopg.Connection) -> set[str]:
    """The authentication methods of the server's pg_hba rules (empty if unreadable)."""
    try:
        return {str(r[0]) for r in admin.execute("SELECT auth_method FROM pg_hba_file_rules")}
    except psycopg.Error:
        return set()
