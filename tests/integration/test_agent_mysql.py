"""MySQL/MariaDB agent: what the conformance suite cannot check.

Broken and unreachable servers, fork safety, agents sharing a namespace, stale receipts,
URL parsing. The conformance suite covers the contract itself.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pymysql
import pytest

from jobmaster.agents import AgentMessage, resolve_agent
from jobmaster.agents.base import storable_reason
from jobmaster.agents.mysql import MySQLAgent, mysql_connect_args
from jobmaster.exceptions import AgentError, ConfigurationError
from tests.agent_backends import leaks, sql_malformed
from tests.services import MYSQL_URL, require

T = TypeVar("T")


# -- fixtures and helpers -------------------------------------------------------------
def _admin_connection() -> Any:
    args = mysql_connect_args(MYSQL_URL)
    args.pop("max_allowed_packet", None)
    return pymysql.connect(**args)


@pytest.fixture(scope="session", autouse=True)
def _drop_test_tables() -> Iterator[None]:
    """At the end of the session, drop the empty ``jmt*`` tables test agents left behind
    (every conformance test uses a fresh namespace). Tables still holding jobs are kept:
    a concurrent test session may be using them."""
    yield
    try:
        conn = _admin_connection()
    except pymysql.MySQLError:
        return
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = 2")
            cur.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = DATABASE() AND table_name LIKE %s",
                (r"jmt%\_agent\_jobs",),
            )
            tables = [r[0] for r in cur.fetchall()]
            for jobs in tables:
                dead = jobs[: -len("jobs")] + "dead"
                try:
                    cur.execute(f"SELECT EXISTS (SELECT 1 FROM {jobs})")
                    if cur.fetchone() == (0,):
                        cur.execute(f"DROP TABLE IF EXISTS {jobs}, {dead}")
                except pymysql.MySQLError:
                    continue  # busy: the next session drops it
    finally:
        conn.close()


@pytest.fixture
def namespace() -> str:
    return f"jmt{uuid.uuid4().hex[:10]}"


def _agent(namespace: str, name: str = "mytest") -> MySQLAgent:
    agent = resolve_agent(MYSQL_URL, name=name, namespace=namespace)
    assert isinstance(agent, MySQLAgent)
    return agent


@pytest.fixture
def agent(namespace: str) -> Iterator[MySQLAgent]:
    require("mysql")
    a = _agent(namespace)
    a.purge()
    try:
        yield a
    finally:
        a.purge()
        a.close()


@pytest.fixture
def admin() -> Iterator[Any]:
    require("mysql")
    conn = _admin_connection()
    try:
        yield conn
    finally:
        conn.close()


def kill_sessions(admin: Any, agent: MySQLAgent) -> int:
    """KILL every connection the agent holds in this process (its idle pool)."""
    ids = [conn.thread_id() for conn in agent._pool.idle]
    with admin.cursor() as cur:
        for server_id in ids:
            cur.execute(f"KILL {int(server_id)}")
    time.sleep(0.05)  # let the server close the sockets
    return len(ids)


def tolerating_one_error(call: Callable[[], T]) -> T:
    """The contract for a broken connection: the call succeeds (transparent reconnect) or
    raises a clear AgentError, and then the next call succeeds."""
    try:
        return call()
    except AgentError as exc:
        assert "mysql" in str(exc).lower()
        return call()


def msg(lane: str = "default", priority: int = 2, due: float | None = None) -> AgentMessage:
    return AgentMessage(
        uuid.uuid4().hex, lane, priority, time.time() if due is None else due, b"body"
    )


def claim(agent: MySQLAgent, *, lease: float = 30.0, wait: float = 0.0, consumer: str = "c"):
    return agent.claim(["default"], 100, lease_seconds=lease, consumer=consumer, wait=wait)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- URLs and names ---------------------------------------------------------------
def test_every_mysql_scheme_resolves_without_connecting() -> None:
    for scheme in ("mysql", "mysql+pymysql", "mariadb", "mariadb+pymysql"):
        a = resolve_agent(f"{scheme}://u:p%40ss@db.example:3307/jobs", namespace="jm")
        assert isinstance(a, MySQLAgent)
        assert "p%40ss" not in repr(a)
        a.close()
    args = mysql_connect_args("mysql://u:p%40ss@db.example:3307/jobs?connect_timeout=2")
    assert (args["host"], args["port"], args["user"], args["password"]) == (
        "db.example",
        3307,
        "u",
        "p@ss",
    )
    assert (args["database"], args["connect_timeout"]) == ("jobs", 2)


@pytest.mark.parametrize(
    "url",
    ["mysql://127.0.0.1", "mysql://127.0.0.1/test?bogus=1", "mysql://127.0.0.1:x/test"],
)
def test_bad_urls_are_refused_at_construction(url: str) -> None:
    with pytest.raises(ConfigurationError):
        MySQLAgent(url)


@pytest.mark.parametrize("namespace", ["bad-name", "1abc", "x" * 41, ""])
def test_namespace_must_be_an_identifier(namespace: str) -> None:
    with pytest.raises(ConfigurationError, match="namespace"):
        MySQLAgent(MYSQL_URL, namespace=namespace)


# -- broken and unreachable servers -----------------------------------------------
def test_killed_connection_is_replaced_and_nothing_pushed_is_lost(
    agent: MySQLAgent, admin: Any
) -> None:
    first = [msg() for _ in range(5)]
    agent.push(first)
    assert kill_sessions(admin, agent) >= 1
    second = [msg() for _ in range(5)]
    tolerating_one_error(lambda: agent.push(second))
    assert kill_sessions(admin, agent) >= 1
    claimed = tolerating_one_error(lambda: claim(agent))
    assert {c.message.id for c in claimed} == {m.id for m in first + second}
    assert kill_sessions(admin, agent) >= 1
    tolerating_one_error(lambda: agent.ack(claimed))
    assert agent.length() == 0


def test_every_operation_survives_a_killed_connection(agent: MySQLAgent, admin: Any) -> None:
    def killed(call: Callable[[], T]) -> T:
        kill_sessions(admin, agent)
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
    url = f"mysql+pymysql://jm:sekrit@127.0.0.1:{free_port()}/test"
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
            f"mysql://jm@127.0.0.1:{port}/test?connect_timeout=1", namespace=namespace
        )
        started = time.monotonic()
        with pytest.raises(AgentError, match="127.0.0.1"):
            agent.length()
        assert time.monotonic() - started < 10


# -- waiting, sharing, receipts, batches, fork ------------------------------------
def test_waiting_claim_polls_until_a_job_arrives(agent: MySQLAgent) -> None:
    assert not agent.capabilities.notify
    m = msg()
    producer = _agent(agent.namespace)
    timer = threading.Timer(0.3, producer.push, args=([m],))
    timer.start()
    try:
        got = claim(agent, wait=5.0)
    finally:
        timer.join()
        producer.close()
    assert [c.message.id for c in got] == [m.id]


def test_agents_sharing_a_namespace_keep_their_jobs_apart(
    agent: MySQLAgent, namespace: str
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


def test_ids_and_lanes_are_case_sensitive(agent: MySQLAgent) -> None:
    now = time.time()
    agent.push(
        [AgentMessage("Job", "Lane", 2, now, b"1"), AgentMessage("job", "lane", 2, now, b"2")]
    )
    assert agent.length() == 2
    [c] = agent.claim(["Lane"], 10, lease_seconds=30, consumer="c")
    assert (c.message.id, c.message.body) == ("Job", b"1")


def test_overlong_lanes_are_refused_before_anything_is_pushed(agent: MySQLAgent) -> None:
    with pytest.raises(AgentError, match="191"):
        agent.push([msg(), msg(lane="x" * 192)])
    assert agent.length() == 0


def test_a_stale_receipt_touches_nothing(agent: MySQLAgent) -> None:
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


def test_a_big_push_split_into_statements_is_kept_whole_and_in_order(agent: MySQLAgent) -> None:
    agent.push([msg()])  # connect, so the statement size can be lowered
    agent._statement_bytes = 20_000  # several INSERT statements, one transaction
    now = time.time() - 1
    messages = [
        AgentMessage(uuid.uuid4().hex, "default", 2, now, str(i).encode()) for i in range(1000)
    ]
    agent.push(messages + messages[:10])  # duplicates ignored
    assert agent.length() == 1001
    got = agent.claim(["default"], 2000, lease_seconds=30, consumer="c")
    assert [int(c.message.body) for c in got if c.message.body != b"body"] == list(range(1000))


def test_forked_child_opens_its_own_connections(
    agent: MySQLAgent, caplog: pytest.LogCaptureFixture
) -> None:
    agent.push([msg()])  # the parent now holds a pooled connection
    caplog.set_level(logging.WARNING, logger="jobmaster.agents.mysql")
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
        (None, {"priority": 7}, "priority 7, not an int 0..4"),
        (None, {"priority": -1}, "priority -1, not an int 0..4"),
        (None, {"id": ""}, "id '', not a non-empty string"),
        ("priority INT NULL", {"priority": None}, "priority None, not an int 0..4"),
        ("body LONGBLOB NULL", {"body": None}, "body of type NoneType, not bytes"),
    ],
    ids=["priority 7", "priority -1", "empty id", "NULL priority", "NULL body"],
)
def test_a_malformed_row_is_dead_lettered_and_the_good_ones_are_claimed(
    agent: MySQLAgent,
    admin: Any,
    alter: str | None,
    columns: dict[str, object],
    words: str,
) -> None:
    first, last = msg(), msg()
    agent.push([first])
    if alter is not None:  # a column that lost its NOT NULL (an operator's hand)
        with admin.cursor() as cur:
            cur.execute(f"ALTER TABLE {agent._jobs} MODIFY {alter}")
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


def test_a_waiting_claim_is_not_ended_by_malformed_rows(agent: MySQLAgent) -> None:
    for _ in range(3):
        sql_malformed(agent, "default", priority=7)
    good = msg(priority=0)
    timer = threading.Timer(0.2, agent.push, args=([good],))
    timer.start()
    got = agent.claim(["default"], 1, lease_seconds=30, consumer="c", wait=5.0)
    timer.join()
    assert [c.message.id for c in got] == [good.id]
    assert len(agent.dead_letters()) == 3


@pytest.mark.parametrize(
    "reason",
    ["nul \x00 and lone \udc80", "é" * 40_000, "x" * 1_000_000],
    ids=["nul and surrogate", "80 KB of two-byte text", "one megabyte"],
)
def test_any_reason_fits_the_text_column(agent: MySQLAgent, reason: str) -> None:
    agent.push([msg()])
    [c] = claim(agent)
    agent.dead_letter([(c, reason)])
    [dead] = agent.dead_letters()
    assert dead.reason == storable_reason(reason, 65_535)
    assert len(dead.reason.encode()) <= 65_535
    assert agent.length() == 0


# -- credentials -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "mysql+pymysql://jm:sekrit9@127.0.0.1:{port}/test",
        "mysql://jm:sekrit9@127.0.0.1:{port}/test?bogus=1",
        "mysql://jm:sekrit9@127.0.0.1:{port}/test?connect_timeout=soon",
        "mysql://jm:sekrit9@127.0.0.1:badport/test",
    ],
    ids=["unreachable", "bad option", "bad timeout", "bad port"],
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


def test_a_refused_password_is_not_shown(namespace: str, caplog: pytest.LogCaptureFixture) -> None:
    require("mysql")
    args = mysql_connect_args(MYSQL_URL)
    url = (f"mysql://{args['user']}:Wr0ngSekrit@{args['host']}:{args['port']}"
           f"/{args['database']}")
    caplog.set_level(logging.DEBUG)
    agent = resolve_agent(url, namespace=namespace)
    with pytest.raises(AgentError, match="Access denied") as info:
        agent.length()
    assert leaks("Wr0ngSekrit", info.value, caplog.records) == []
