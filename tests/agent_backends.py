"""Every agent backend the conformance suite runs against, with the service it needs, and
a way to store a malformed record in each (with the backend's own client)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from jobmaster.agents import Agent
from tests.services import (
    MYSQL_URL,
    NATS_URL,
    POSTGRES_URL,
    RABBITMQ_URL,
    REDIS_URL,
    require,
)


def _sqlite() -> str:
    return f"sqlite:///{tempfile.mkdtemp(prefix='jm-agent-')}/agent.db"


def _memory() -> str:
    return f"memory://{uuid.uuid4().hex}"


def _service(service: str, url: str) -> Callable[[], str]:
    def make() -> str:
        require(service)
        return url

    return make


AGENT_BACKENDS: dict[str, Callable[[], str]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "redis": _service("redis", REDIS_URL),
    "postgres": _service("postgres", POSTGRES_URL),
    "nats": _service("nats", NATS_URL),
    "mysql": _service("mysql", MYSQL_URL),
    "rabbitmq": _service("rabbitmq", RABBITMQ_URL),
}


# -- malformed records, stored behind the agent's back ----------------------------------
# Each stores one record in a lane of an agent, due now and ahead of a priority-0 job, and
# returns words its dead letter's reason must contain (see AgentConformance.store_malformed).
def sqlite_malformed(agent: Any, lane: str, **columns: Any) -> Any:
    """Insert a row into a SQLite agent's table: the given columns over good defaults;
    returns its id."""
    row = {"id": uuid.uuid4().hex, "lane": lane, "priority": 2, "due": time.time() - 1,
           "body": b"malformed", **columns}
    agent._conn()  # the tables exist
    conn = sqlite3.connect(agent.path)
    try:
        with conn:
            marks = ", ".join("?" * len(row))
            conn.execute(
                f"INSERT INTO {agent._jobs} ({', '.join(row)}) VALUES ({marks})",
                list(row.values()),
            )
    finally:
        conn.close()
    return row["id"]


def redis_malformed(agent: Any, lane: str, value: bytes | None, priority: int = 2,
                    member: bytes | None = None) -> bytes:
    """Store a job of a Redis agent as raw keys: hash ``value`` (none if ``None``) and a
    waiting member (``<seq><deliveries>:<id>`` unless given); returns the job id."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    job_id = uuid.uuid4().hex.encode()
    if value is not None:
        client.hset(agent._jobs, job_id, value)
    client.zadd(f"{agent._prefix}w:{lane}:{priority}",
                {member or b"%016d0:%s" % (0, job_id): time.time() - 1})
    client.close()
    return job_id


def sql_malformed(agent: Any, lane: str, **columns: Any) -> Any:
    """Insert a row into a PostgreSQL or MySQL agent's table, on a connection of the agent's
    pool: the given columns over good defaults; returns its id."""
    row = {"agent": agent.name, "id": uuid.uuid4().hex, "lane": lane, "priority": 2,
           "due": time.time() - 1, "body": b"malformed", **columns}
    names = ", ".join(row)
    marks = ", ".join(["%s"] * len(row))
    agent._run("inject", lambda conn: _execute(
        conn, f"INSERT INTO {agent._jobs} ({names}) VALUES ({marks})", list(row.values())
    ))
    return row["id"]


def _execute(conn: Any, statement: str, params: list[Any]) -> None:
    if hasattr(conn, "cursor") and not hasattr(conn, "pgconn"):  # PyMySQL
        with conn.cursor() as cur:
            cur.execute(statement, params)
    else:
        conn.execute(statement, params)


def nats_malformed(agent: Any, lane: str, headers: dict[str, str] | None,
                   priority: int = 2, body: bytes = b"malformed") -> None:
    """Publish a message straight to a NATS agent's work stream, with these headers."""
    import nats

    agent._run("set up streams", agent._ensure_streams)

    async def publish() -> None:
        nc = await nats.connect(NATS_URL)
        try:
            await nc.jetstream().publish(agent._job_subject(lane, priority), body, headers=headers)
        finally:
            await nc.close()

    asyncio.run(publish())


def rabbitmq_malformed(agent: Any, lane: str, headers: dict[str, Any] | None,
                       priority: int = 2, body: bytes = b"malformed") -> None:
    """Publish a message straight to a RabbitMQ agent's bucket queue, with these headers."""
    import pika

    agent._run("declare", lambda state: agent._ensure_buckets(state, [(lane, priority)]))
    conn = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.basic_publish("", agent._queue(lane, priority), body,
                              pika.BasicProperties(delivery_mode=2, headers=headers))
    finally:
        conn.close()


def _sqlite_conformance(agent: Agent, lane: str) -> str:
    sqlite_malformed(agent, lane, priority="x")
    return "priority 'x'"


def _redis_conformance(agent: Agent, lane: str) -> str:
    redis_malformed(agent, lane, b"abc|body")
    return "due time 'abc'"


def _postgres_conformance(agent: Agent, lane: str) -> str:
    sql_malformed(agent, lane, priority=9)
    return "priority 9"


def _mysql_conformance(agent: Agent, lane: str) -> str:
    sql_malformed(agent, lane, priority=7)
    return "priority 7"


def _nats_conformance(agent: Agent, lane: str) -> str:
    nats_malformed(agent, lane, {"Jm-Id": uuid.uuid4().hex, "Jm-Due": "abc"})
    return "due time 'abc'"


def _rabbitmq_conformance(agent: Agent, lane: str) -> str:
    rabbitmq_malformed(agent, lane, {"jm-id": uuid.uuid4().hex, "jm-due": "abc"})
    return "due time 'abc'"


STORE_MALFORMED: dict[str, Callable[[Agent, str], str]] = {
    "sqlite": _sqlite_conformance,
    "redis": _redis_conformance,
    "postgres": _postgres_conformance,
    "mysql": _mysql_conformance,
    "nats": _nats_conformance,
    "rabbitmq": _rabbitmq_conformance,
}
"""How to store a malformed record in each backend (the memory agent holds only messages
checked at push: it has none)."""


# -- credentials ---------------------------------------------------------------------------
def leaks(
    secret: str, error: BaseException | None, records: Iterable[logging.LogRecord]
) -> list[str]:
    """Where ``secret`` shows: in the error with its whole chain of causes and traceback,
    or in a log record's message or exception text."""
    found = []
    if error is not None:
        text = "".join(traceback.format_exception(error)) + repr(error)
        if secret in text:
            found.append(f"error: {text}")
    for record in records:
        text = record.getMessage() + (record.exc_text or "")
        if record.exc_info and record.exc_info[1] is not None:
            text += "".join(traceback.format_exception(record.exc_info[1]))
        if secret in text:
            found.append(f"log {record.name}: {text}")
    return found
