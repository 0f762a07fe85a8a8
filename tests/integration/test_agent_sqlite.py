"""SQLite agent behaviour beyond the conformance suite: malformed rows, fork."""

from __future__ import annotations

import math
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobmaster.agents import AgentMessage
from jobmaster.agents.sqlite import SQLiteAgent
from tests.agent_backends import sqlite_malformed


def msg(lane: str = "default", priority: int = 2, body: bytes = b"x") -> AgentMessage:
    return AgentMessage(uuid.uuid4().hex, lane, priority, time.time(), body)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[SQLiteAgent]:
    a = SQLiteAgent(f"sqlite:///{tmp_path}/agent.db", name="specific", namespace="jmt")
    try:
        yield a
    finally:
        a.close()


# -- malformed rows ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("columns", "words"),
    [
        ({"priority": "x"}, "priority 'x', not an int 0..4"),
        ({"priority": 9}, "priority 9, not an int 0..4"),
        ({"priority": -3}, "priority -3, not an int 0..4"),
        ({"due": "abc"}, "due time 'abc', not a number"),
        ({"due": -math.inf}, "due time -inf, not a finite number"),
        ({"id": b"\xffbinary"}, "id b'\\xffbinary', not a non-empty string"),
        ({"id": ""}, "id '', not a non-empty string"),
        ({"body": "text, not bytes"}, "body of type str, not bytes"),
    ],
)
def test_a_malformed_row_is_dead_lettered_and_the_good_ones_are_claimed(
    agent: SQLiteAgent, columns: dict[str, Any], words: str
) -> None:
    first, last = msg(body=b"first"), msg(body=b"last")
    agent.push([first])
    bad_id = sqlite_malformed(agent, "default", **columns)
    agent.push([last])
    got = agent.claim(["default"], 10, lease_seconds=30, consumer="c")
    assert sorted(c.message.id for c in got) == sorted([first.id, last.id])
    [dead] = agent.dead_letters()
    assert dead.reason == "stored record has " + words
    if isinstance(bad_id, str) and bad_id:
        assert dead.message.id == bad_id
    assert agent.length() == 2  # the malformed row is gone from the queue
    agent.ack(got)
    assert agent.length() == 0
    assert agent.claim(["default"], 10, lease_seconds=30, consumer="c") == []
    assert len(agent.dead_letters()) == 1  # moved once, never retried


def test_a_claim_waiting_past_malformed_rows_returns_the_job_behind_them(
    agent: SQLiteAgent,
) -> None:
    for _ in range(3):
        sqlite_malformed(agent, "default", priority="x")
    good = msg(priority=0)
    agent.push([good])
    got = agent.claim(["default"], 1, lease_seconds=30, consumer="c", wait=1.0)
    assert [c.message.id for c in got] == [good.id]
    assert len(agent.dead_letters()) == 3


def test_a_dead_letter_reason_with_nul_bytes_is_stored_without_them(agent: SQLiteAgent) -> None:
    agent.push([msg()])
    [c] = agent.claim(["default"], 1, lease_seconds=30, consumer="c")
    agent.dead_letter([(c, "a\x00b\ud800c")])
    [dead] = agent.dead_letters()
    assert dead.reason == "ab\ufffdc"
    with sqlite3.connect(agent.path) as conn:
        [(stored,)] = conn.execute(f"SELECT reason FROM {agent._dead}").fetchall()
    assert stored == "ab\ufffdc"


# -- fork ----------------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_opens_its_own_connection(agent: SQLiteAgent) -> None:
    agent.push([msg()])
    parent_conn = agent._conn()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            fresh = agent._conn() is not parent_conn
            agent.push([msg()])
            code = 0 if fresh and agent.length() == 2 else 2
            agent.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert agent._conn() is parent_conn  # the parent's connection, untouched
    assert agent.length() == 2
