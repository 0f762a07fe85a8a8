"""Agent on RabbitMQ (``amqp://user:password@host:5672/vhost``, ``amqps://`` for TLS).

Layout, with ``<p>`` = ``jm.<ns>.<name>`` and names made safe by ``name_token`` (letters,
digits and ``-`` are kept, any other character becomes ``_XX`` per UTF-8 byte)::

    quorum queue  <p>.q.<lane>.<priority>    one per bucket; x-delivery-limit, dead-letters
                                             to exchange <p>.dead
    quorum queue  <p>.delay.<k>              k = 0..LEVELS-1, x-message-ttl 2**k ms
    topic exch.   <p>.delay.<k>              routes by bit k of the delay to queue k or on
    topic exch.   <p>.deliver                the end of the delay chain: to the bucket queue
    stream        <p>.dead                   dead letters, and markers removing them
    stream        <p>.buckets                which buckets exist (for ``length`` and ``purge``)
    fanout exch.  <p>.dead                   the delivery limit's dead letters, to quorum queue
                                             <p>.limit, moved into the stream when it is read

A job is one persistent message: its body is the payload, headers ``jm-id``, ``jm-due``
(a Unix timestamp) and ``jm-deliveries`` (deliveries before this version, for retries). A
push publishes the whole batch on a channel in confirm mode and waits for every confirm
(one round trip per batch, not per message); a message RabbitMQ cannot route (its queue
deleted by a ``purge`` elsewhere) is published again after declaring the queue.

**Due times.** A job due now goes straight to its bucket queue. A job due later goes down a
chain of delay queues (the layout NServiceBus uses): its routing key spells the delay in
milliseconds as ``LEVELS`` binary digits followed by a digest of its bucket queue's name;
level ``k``'s exchange sends it to delay queue ``k`` (a TTL of ``2**k`` ms, then dead-lettered
to level ``k-1``) if bit ``k`` is set, else straight to level ``k-1``, and the last level's
``deliver`` exchange routes it to its bucket queue by the digest. Every delay queue holds
messages of one TTL, so they expire in order. A delay longer than the chain (``2**LEVELS``
ms, about 4.7 hours) arrives early; a claim that meets a job before its due time sends it
down the chain again for the time left, so jobs are never claimed early.

**Leases.** ``claim`` looks at the count of waiting messages of each bucket (highest
priority first, lanes in the order given) and takes them unacknowledged, with
``basic.get`` for one and with a consumer whose prefetch is the number wanted for more:
RabbitMQ hands them to nobody else while this connection holds them. The lease is kept by
the agent: a claim not acked, retried, dead-lettered or extended within ``lease_seconds``
is returned to its queue (``basic.nack`` with requeue) by the next call on the agent, so
it is claimed again with ``x-delivery-count`` raised. If the process dies, its connection
closes and RabbitMQ requeues its claims at once; if the machine is lost or frozen,
RabbitMQ does when AMQP heartbeats stop (``?heartbeat=``, default 15 s: twice that).
``extend`` renews the agent's deadline (no round trip). RabbitMQ's ``consumer_timeout``
(30 minutes by default) still closes a channel holding one message longer: jobs that run
longer need it raised in ``rabbitmq.conf``.

**Delivery limit.** Each bucket queue has ``x-delivery-limit`` (``?delivery_limit=``,
default 20): a job delivered more often is dead-lettered by RabbitMQ to ``<p>.limit`` (a
stream cannot be a dead-letter target), moved to the dead-letter stream by the next read of
the dead letters and listed with the reason ``delivery limit reached``.

**Dead letters** are messages of the stream ``<p>.dead`` (the job's body, its fields and the
reason in headers, at most 16 KiB of reason); a dead letter's key is its stream offset.
Streams cannot delete one message: ``remove_dead_letters`` and ``purge_dead_letters`` append a
marker that hides what it removes, and a read goes through the stream up to a marker of its
own, so the stream's order decides which of two removals of one dead letter took it. The
stream keeps at most ``DEAD_LETTER_BYTES`` (the oldest segments are dropped).

A stored message without ``jm-id`` or with a ``jm-due`` that is not a finite number is never
returned by a claim: it is moved to the dead letters with the reason, and the rest of the
batch is returned.

Known limits: a second push of a job is ignored only when the same agent object pushed the
same message (id and body) within ``?dedupe_window=`` seconds (default 120): RabbitMQ
itself has no deduplication. ``length()`` counts waiting and delayed messages, and only
the claims of this agent object (RabbitMQ does not count a queue's unacknowledged messages
over AMQP); ``length(bucket)`` leaves out delayed messages.

**TLS.** ``amqps://`` (port 5671 by default) checks the server's certificate and host name
against the system's CAs. pika's ``ssl_options`` URL option, a URL-encoded Python dict,
names a CA of your own and a client certificate:
``?ssl_options={'ca_certs': '/etc/ssl/ca.pem', 'certfile': ..., 'keyfile': ...}`` (also
``server_hostname``); it is passed to pika unchanged, like pika's other options.

pika's ``BlockingConnection`` is used under a lock (one connection per agent and process);
publisher confirms are pipelined through the channel's underlying pika ``Channel``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from jobmaster.agents.base import (
    Agent,
    AgentMessage,
    Bucket,
    Capabilities,
    Claimed,
    DeadLetter,
    Malformed,
    bury_malformed,
    check_messages,
    poll_claims,
    read_message,
    redact_text,
    redact_url,
    salvage_message,
    storable_reason,
    stored_number,
)
from jobmaster.exceptions import AgentError, AgentUnreachableError, ConfigurationError
from jobmaster.forking import after_fork

T = TypeVar("T")

log = logging.getLogger(__name__)

PRIORITIES = (4, 3, 2, 1, 0)
"""The priorities a bucket can have, claimed in this order."""

LEVELS = 24
"""Delay queues in the chain: delays up to ``2**LEVELS`` ms pass through it at once."""

DEAD_LETTER_BYTES = 1 << 30
"""Bytes the dead-letter stream keeps at most (its oldest segments are dropped)."""

TAKE_SECONDS = 0.05
"""Longest a claim waits for the messages a bucket's count promised (others may have taken
them meanwhile)."""

DEFAULT_DELIVERY_LIMIT = 20
"""Deliveries of one job after which RabbitMQ dead-letters it (``?delivery_limit=``)."""

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_ID, _DUE, _BASE, _REASON, _AT, _KIND = (
    "jm-id", "jm-due", "jm-deliveries", "jm-reason", "jm-at", "jm-kind"
)
_LANE, _PRIORITY = "jm-lane", "jm-priority"
_EARLY = 0.001  # a job due within this many seconds is due now
_OPTIONS = ("delivery_limit", "dedupe_window", "timeout")
_ORPHANS: list[object] = []  # a parent's connection, kept (never closed) after fork


def name_token(text: str) -> str:
    """``text`` as one dot-free part of a queue name: letters, digits and ``-`` kept, every
    other character ``_XX`` per UTF-8 byte (so different texts never share a token)."""
    if text and all(c in _SAFE for c in text):
        return text
    if not text:
        return "_"
    return "".join(c if c in _SAFE else "".join(f"_{b:02X}" for b in c.encode()) for c in text)


@dataclass(slots=True, eq=False)
class _Receipt:
    """One delivery this agent holds: its channel, tag, bucket queue and lease deadline."""

    generation: int
    tag: int
    queue: str
    deadline: float
    settled: bool = False


@dataclass(slots=True)
class _State:
    """A live connection and its channel in confirm mode."""

    conn: BlockingConnection
    channel: BlockingChannel
    generation: int
    seq: int = 0
    unconfirmed: set[int] = field(default_factory=set)
    nacked: set[int] = field(default_factory=set)
    returned: set[int] = field(default_factory=set)


class RabbitMQAgent(Agent):
    """Jobs in RabbitMQ quorum queues, one per bucket; see the module docstring."""

    capabilities = Capabilities(notify=False, delayed=True, durable=True, shared=True)
    reason_limit_bytes = 16 * 1024  # a message header, within one AMQP frame

    def __init__(self, url: str, *, name: str = "main", namespace: str = "jobmaster") -> None:
        super().__init__(url, name=name, namespace=namespace)
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        ours = {k: v for k, v in query if k in _OPTIONS}
        theirs = [(k, v) for k, v in query if k not in _OPTIONS]
        if not any(k == "heartbeat" for k, _ in theirs):
            theirs.append(("heartbeat", "15"))
        try:
            self._delivery_limit = int(ours.get("delivery_limit", DEFAULT_DELIVERY_LIMIT))
            self._dedupe_window = float(ours.get("dedupe_window", 120.0))
            self._timeout = float(ours.get("timeout", 10.0))
            if self._delivery_limit < 1 or self._timeout <= 0 or self._dedupe_window < 0:
                raise ValueError("out of range")
            theirs.append(("connection_attempts", "1"))
            theirs.append(("socket_timeout", str(self._timeout)))
            theirs.append(("blocked_connection_timeout", str(self._timeout * 3)))
            self._params = pika.URLParameters(
                urlunsplit(parts._replace(query=urlencode(theirs)))
            )
        except Exception as exc:  # pika raises ValueError, TypeError...
            raise ConfigurationError(
                f"bad RabbitMQ agent URL {redact_url(url)!r} "
                f"({redact_text(str(exc), url)}); the form is "
                "amqp://user:password@host:5672/vhost with pika's options, plus "
                "?delivery_limit=N, ?dedupe_window=SECONDS, ?timeout=SECONDS"
            ) from exc
        self._prefix = f"jm.{name_token(namespace)}.{name_token(name)}"
        self._dead = f"{self._prefix}.dead"
        self._registry = f"{self._prefix}.buckets"
        self._deliver = f"{self._prefix}.deliver"
        self._limit = f"{self._prefix}.limit"
        self._lock = threading.RLock()
        self._closed = False
        self._generation = 0
        self._reset()
        after_fork(self, RabbitMQAgent._forget)

    def _forget(self) -> None:
        """In a forked child: drop (never close) the parent's connection."""
        _ORPHANS.append(self._state)
        self._lock = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self._state: _State | None = None
        self._declared: set[str] = set()  # bucket queues known to exist
        self._delay_ready = False
        self._base_ready = False
        self._held: dict[int, tuple[_Receipt, Bucket]] = {}  # tag -> held delivery
        self._recent: OrderedDict[tuple[str, bytes], float] = OrderedDict()

    # -- plumbing ------------------------------------------------------------------
    def _where(self) -> str:
        p = self._params
        return f"{p.host}:{p.port} (vhost {p.virtual_host!r})"

    def _clean(self, exc: BaseException) -> str:
        return redact_text(str(exc) or type(exc).__name__, self.url)

    def _connect(self) -> _State:
        if self._state is not None and self._state.conn.is_open and self._state.channel.is_open:
            return self._state
        self._drop()
        try:
            conn = BlockingConnection(self._params)
        except pika.exceptions.ProbableAuthenticationError as exc:
            raise self._auth_error(exc) from None
        except pika.exceptions.ProbableAccessDeniedError as exc:
            raise AgentError(
                f"RabbitMQ agent {self.name!r}: RabbitMQ at {self._where()} refused access "
                f"for user {self._params.credentials.username!r} ({self._clean(exc)}); does "
                "the vhost exist and may this user use it?"
            ) from None
        except pika.exceptions.AuthenticationError as exc:
            raise self._auth_error(exc) from None
        except (pika.exceptions.AMQPError, OSError, ValueError) as exc:
            # ValueError: pika's "Expected connected socket" when the peer resets at once
            raise AgentUnreachableError(
                f"RabbitMQ agent {self.name!r} could not connect to {self._where()} "
                f"({type(exc).__name__}: {self._clean(exc)}); is RabbitMQ running there and "
                "reachable?"
            ) from None
        self._generation += 1
        channel = conn.channel()
        state = _State(conn, channel, self._generation)
        impl = channel._impl  # pipelined confirms: see the module docstring
        impl.add_on_return_callback(functools.partial(self._on_return, state))
        done: list[bool] = []

        def selected(_frame: Any) -> None:
            done.append(True)
            conn.add_callback_threadsafe(lambda: None)  # ends process_data_events

        impl.confirm_delivery(
            ack_nack_callback=functools.partial(self._on_confirm, state), callback=selected
        )
        self._wait(state, lambda: bool(done), "enable publisher confirms")
        self._state = state
        return state

    def _auth_error(self, exc: BaseException) -> AgentError:
        return AgentError(
            f"RabbitMQ agent {self.name!r}: RabbitMQ at {self._where()} refused the "
            f"credentials of user {self._params.credentials.username!r} "
            f"({self._clean(exc)}); check the user and password in the agent URL"
        )

    def _drop(self) -> None:
        """Forget the current connection (closing it); its deliveries are RabbitMQ's again."""
        state, self._state = self._state, None
        self._held.clear()
        if state is not None and state.conn.is_open:
            try:
                state.conn.close()
            except Exception as exc:  # noqa: BLE001 - closing is best effort
                log.debug("RabbitMQ agent %r: close failed: %s", self.name, self._clean(exc))

    def _on_confirm(self, state: _State, frame: Any) -> None:
        method = frame.method
        tags = (
            {t for t in state.unconfirmed if t <= method.delivery_tag}
            if method.multiple else {method.delivery_tag}
        )
        state.unconfirmed -= tags
        if isinstance(method, pika.spec.Basic.Nack):
            state.nacked |= tags
        if not state.unconfirmed:
            state.conn.add_callback_threadsafe(lambda: None)  # ends process_data_events

    def _on_return(self, state: _State, _channel: Any, _method: Any, props: Any,
                   _body: bytes) -> None:
        if props.correlation_id:
            state.returned.add(int(props.correlation_id))

    def _wait(self, state: _State, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self._timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AgentError(
                    f"RabbitMQ agent {self.name!r}: RabbitMQ at {self._where()} did not "
                    f"{what} within {self._timeout:g} s"
                )
            state.conn.process_data_events(time_limit=min(left, 1.0))

    def _run(self, what: str, work: Callable[[_State], T]) -> T:
        """Run ``work`` on the connection under the lock; a connection or channel lost
        meanwhile is opened again and ``work`` run once more. Errors become ``AgentError``."""
        with self._lock:
            if self._closed:
                raise AgentError(f"RabbitMQ agent {self.name!r} is closed")
            for attempt in (1, 2):
                try:
                    return work(self._connect())
                except AgentError:
                    raise
                except (pika.exceptions.AMQPError, OSError) as exc:
                    gone = isinstance(exc, pika.exceptions.ChannelClosedByBroker) and \
                        exc.reply_code == 404
                    self._drop()
                    if gone:  # a queue or exchange deleted by a purge elsewhere
                        self._declared.clear()
                        self._delay_ready = self._base_ready = False
                    if attempt == 2:
                        raise AgentError(
                            f"RabbitMQ agent {self.name!r} could not {what} at "
                            f"{self._where()} ({type(exc).__name__}: {self._clean(exc)})"
                        ) from None
            raise AssertionError("unreachable")

    # -- declarations ----------------------------------------------------------------
    def _queue(self, lane: str, priority: int) -> str:
        return f"{self._prefix}.q.{name_token(lane)}.{int(priority)}"

    def _ensure_base(self, state: _State) -> None:
        """The dead-letter stream and exchange, and the bucket registry."""
        if self._base_ready:
            return
        ch = state.channel
        for stream, size in ((self._dead, DEAD_LETTER_BYTES), (self._registry, 64 << 20)):
            ch.queue_declare(stream, durable=True, arguments={
                "x-queue-type": "stream", "x-max-length-bytes": size,
                "x-stream-max-segment-size-bytes": min(size // 8, 50_000_000),
            })
        ch.exchange_declare(self._dead, "fanout", durable=True)
        ch.queue_declare(self._limit, durable=True, arguments={"x-queue-type": "quorum"})
        ch.queue_bind(self._limit, self._dead)
        self._base_ready = True

    def _collect_limited(self, state: _State) -> None:
        """Move the jobs RabbitMQ dead-lettered for the delivery limit (in ``<p>.limit``: a
        stream cannot be a dead-letter target) to the dead-letter stream, with the reason."""
        taken = self._take(state, self._limit, 10_000)
        if not taken:
            return
        pub = []
        for _, props, body in taken:
            h = dict(props.headers or {})
            letter = _dead_letter(0, h, body)
            h[_REASON] = letter.reason.encode()
            h[_AT] = repr(letter.at or time.time())
            pub.append(("", self._dead, body, h, None))
        self._publish(state, pub, declare=False)
        for method, _, _ in taken:
            state.channel.basic_ack(method.delivery_tag)
        state.conn.process_data_events(time_limit=0)

    def _ensure_buckets(self, state: _State, buckets: Iterable[tuple[str, int]]) -> None:
        """Declare the bucket queues not known to exist, and record them in the registry."""
        new = {(lane, int(p)) for lane, p in buckets if self._queue(lane, p) not in self._declared}
        if not new:
            return
        self._ensure_base(state)
        ch = state.channel
        for lane, priority in sorted(new):
            queue = self._queue(lane, priority)
            ch.queue_declare(queue, durable=True, arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": self._delivery_limit,
                "x-dead-letter-exchange": self._dead,
            })
        self._publish(state, [
            (
                "", self._registry, b"",
                {_LANE: lane.encode("utf-8", "surrogatepass"), _PRIORITY: priority}, None,
            )
            for lane, priority in sorted(new)
        ], declare=False)
        if self._delay_ready:
            for lane, priority in sorted(new):
                self._bind_deliver(state, self._queue(lane, priority))
        self._declared.update(self._queue(*b) for b in new)

    def _digest(self, queue: str) -> str:
        return hashlib.sha1(queue.encode(), usedforsecurity=False).hexdigest()[:20]

    def _bind_deliver(self, state: _State, queue: str) -> None:
        state.channel.queue_bind(queue, self._deliver, "*." * LEVELS + self._digest(queue))

    def _level(self, k: int) -> str:
        return f"{self._prefix}.delay.{k}"

    def _ensure_delay(self, state: _State) -> None:
        """The chain of delay queues and exchanges (on the first delayed push)."""
        if self._delay_ready:
            return
        ch = state.channel
        ch.exchange_declare(self._deliver, "topic", durable=True)
        for k in range(LEVELS):
            ch.exchange_declare(self._level(k), "topic", durable=True)
        for k in range(LEVELS):
            below = self._level(k - 1) if k else self._deliver
            ch.queue_declare(self._level(k), durable=True, arguments={
                "x-queue-type": "quorum",
                "x-message-ttl": 1 << k,
                "x-dead-letter-exchange": below,
            })
            skip = "*." * (LEVELS - 1 - k)
            ch.queue_bind(self._level(k), self._level(k), skip + "1.#")
            ch.exchange_bind(below, self._level(k), skip + "0.#")
        for queue in self._declared:
            self._bind_deliver(state, queue)
        self._delay_ready = True

    # -- publishing ------------------------------------------------------------------
    def _publish(
        self,
        state: _State,
        items: Sequence[tuple[str, str, bytes, dict[str, Any], str | None]],
        *,
        declare: bool = True,
    ) -> None:
        """Publish ``(exchange, routing key, body, headers, message id)`` persistently and
        wait for every confirm. Messages RabbitMQ returned as unroutable (a queue deleted
        elsewhere) are published again once, after declaring the queues anew."""
        impl = state.channel._impl
        by_seq: dict[int, int] = {}
        for index, (exchange, key, body, headers, message_id) in enumerate(items):
            state.seq += 1
            by_seq[state.seq] = index
            state.unconfirmed.add(state.seq)
            impl.basic_publish(exchange, key, body, pika.BasicProperties(
                delivery_mode=2, headers=headers, message_id=message_id,
                correlation_id=str(state.seq),
            ), mandatory=True)
        self._wait(state, lambda: not (state.unconfirmed & by_seq.keys()), "confirm a publish")
        nacked = state.nacked & by_seq.keys()
        returned = state.returned & by_seq.keys()
        state.nacked -= nacked
        state.returned -= returned
        if nacked:
            raise AgentError(
                f"RabbitMQ agent {self.name!r}: RabbitMQ refused {len(nacked)} of "
                f"{len(items)} message(s) (basic.nack); nothing was lost that was confirmed"
            )
        if returned:
            if not declare:
                raise AgentError(
                    f"RabbitMQ agent {self.name!r}: {len(returned)} message(s) could not be "
                    "routed to their queue"
                )
            self._declared.clear()
            self._delay_ready = self._base_ready = False
            again = [items[by_seq[s]] for s in sorted(returned)]
            self._ensure_base(state)
            self._ensure_buckets(state, {self._bucket_of(i) for i in again})
            if any(i[0] != "" for i in again):
                self._ensure_delay(state)
            self._publish(state, again, declare=False)

    def _bucket_of(self, item: tuple[str, str, bytes, dict[str, Any], str | None]) -> tuple[
            str, int]:
        headers = item[3]
        return headers[_LANE].decode("utf-8", "surrogatepass"), int(headers[_PRIORITY])

    def _job_item(
        self, m: AgentMessage, base: int = 0, now: float | None = None
    ) -> tuple[str, str, bytes, dict[str, Any], str | None]:
        """How to publish a job: straight to its bucket queue, or down the delay chain."""
        headers = {
            _ID: m.id.encode("utf-8", "surrogatepass"),
            _DUE: repr(float(m.due)),
            _BASE: int(base),
            _LANE: m.lane.encode("utf-8", "surrogatepass"),
            _PRIORITY: int(m.priority),
        }
        queue = self._queue(m.lane, m.priority)
        delay = m.due - (time.time() if now is None else now)
        if delay <= _EARLY:
            return "", queue, m.body, headers, m.id
        ms = min(math.ceil(delay * 1000), (1 << LEVELS) - 1)
        bits = ".".join("1" if ms >> k & 1 else "0" for k in range(LEVELS - 1, -1, -1))
        return self._level(LEVELS - 1), f"{bits}.{self._digest(queue)}", m.body, headers, m.id

    def _send_jobs(self, state: _State, items: Sequence[tuple[AgentMessage, int]]) -> None:
        now = time.time()
        pub = [self._job_item(m, base, now) for m, base in items]
        self._ensure_buckets(state, {(m.lane, m.priority) for m, _ in items})
        if any(p[0] for p in pub):
            self._ensure_delay(state)
        self._publish(state, pub)

    # -- producer side -------------------------------------------------------------
    def push(self, messages: Sequence[AgentMessage]) -> None:
        """Publish the messages (each confirmed) to their bucket queues, or down the delay
        chain for those due later; a message this agent pushed within the dedupe window
        (same id and body) is left out."""
        check_messages(messages)
        if not messages:
            return
        with self._lock:
            now = time.monotonic()
            while self._recent and next(iter(self._recent.values())) < now:
                self._recent.popitem(last=False)
            fresh, keys = [], []
            for m in messages:
                key = (m.id, hashlib.sha1(m.body, usedforsecurity=False).digest())
                if key in self._recent or key in keys:
                    continue
                fresh.append((m, 0))
                keys.append(key)
            if not fresh:
                return
            self._run("push", lambda state: self._send_jobs(state, fresh))
            for key in keys:
                self._recent[key] = now + self._dedupe_window

    # -- consumer side -------------------------------------------------------------
    def claim(
        self,
        lanes: Sequence[str],
        limit: int,
        *,
        lease_seconds: float,
        consumer: str,
        wait: float = 0.0,
    ) -> list[Claimed]:
        """Take up to ``limit`` due messages (``_take``), priorities 4..0 and lanes
        in the order given, each leased for ``lease_seconds``; poll until ``wait`` ends."""
        if limit <= 0 or not lanes:
            return []
        lanes = list(dict.fromkeys(lanes))

        def once() -> tuple[list[Claimed], bool]:
            return self._run("claim", lambda state: self._claim(state, lanes, limit,
                                                                 lease_seconds))

        return poll_claims(once, wait)

    def _claim(
        self, state: _State, lanes: Sequence[str], limit: int, lease: float
    ) -> tuple[list[Claimed], bool]:
        self._expire(state)
        self._ensure_buckets(state, {(lane, p) for lane in lanes for p in PRIORITIES})
        ch = state.channel
        now = time.time()
        deadline = time.monotonic() + lease
        out: list[Claimed] = []
        bad: list[tuple[Claimed, str]] = []
        early: list[tuple[AgentMessage, int, _Receipt]] = []
        for priority in PRIORITIES:
            for lane in lanes:
                queue = self._queue(lane, priority)
                for method, props, body in self._take(state, queue, limit - len(out)):
                    receipt = _Receipt(state.generation, method.delivery_tag, queue, deadline)
                    read = _read(props, lane, priority, body)
                    deliveries = _deliveries(props)
                    if isinstance(read, Malformed):
                        self._held[receipt.tag] = (receipt, Bucket(lane, priority))
                        bad.append((Claimed(read.message, receipt, deliveries), read.reason))
                        continue
                    if read.due > now + _EARLY:
                        early.append((read, deliveries - 1, receipt))
                        continue
                    self._held[receipt.tag] = (receipt, Bucket(lane, priority))
                    out.append(Claimed(read, receipt, deliveries))
                if len(out) >= limit:
                    break
            if len(out) >= limit:
                break
        if early:  # down the delay chain again for the time left, then forget this copy
            self._send_jobs(state, [(m, base) for m, base, _ in early])
            for _, _, receipt in early:
                ch.basic_ack(receipt.tag)
        buried = bool(bad) and bury_malformed(
            self, bad, lambda items: self._bury(state, items)
        )
        return out, buried or bool(early)

    def _take(self, state: _State, queue: str, want: int) -> list[tuple[Any, Any, bytes]]:
        """Up to ``want`` deliveries from ``queue``, in queue order. The queue's count of
        waiting messages comes first (a cheap query: an empty bucket costs no more); one
        message is taken with ``basic.get``, more by a consumer with a prefetch of that
        many, cancelled once they came (a quorum queue serves a consumer's whole batch
        from one checkout, but each ``basic.get`` is a write to its log)."""
        if want <= 0:
            return []
        ch = state.channel
        ready = int(ch.queue_declare(queue, passive=True).method.message_count)
        want = min(want, ready)
        if want <= 0:
            return []
        if want == 1:
            method, props, body = ch.basic_get(queue, auto_ack=False)
            return [] if method is None else [(method, props, body)]
        got: list[tuple[Any, Any, bytes]] = []
        ch.basic_qos(prefetch_count=want)
        tag = ch.basic_consume(
            queue, lambda _c, method, props, body: got.append((method, props, body))
        )
        deadline = time.monotonic() + TAKE_SECONDS
        while len(got) < want:
            left = deadline - time.monotonic()
            if left <= 0:
                break  # others took some meanwhile
            state.conn.process_data_events(time_limit=left)
        ch.basic_cancel(tag)  # deliveries not dispatched yet are handed back
        return got

    def _expire(self, state: _State) -> None:
        """Hand back the deliveries whose lease ran out."""
        now = time.monotonic()
        for tag, (receipt, _) in list(self._held.items()):
            if receipt.deadline <= now:
                del self._held[tag]
                receipt.settled = True
                state.channel.basic_nack(tag, requeue=True)

    def _live(self, state: _State, receipts: Iterable[_Receipt]) -> list[_Receipt]:
        """The receipts still held on this connection, lease unexpired."""
        now = time.monotonic()
        out = []
        for r in receipts:
            if r.settled or r.generation != state.generation or r.tag not in self._held:
                continue
            if r.deadline <= now:
                continue  # returned by _expire below
            out.append(r)
        return out

    def _settle(self, state: _State, receipts: Sequence[_Receipt]) -> None:
        for r in receipts:
            r.settled = True
            self._held.pop(r.tag, None)
            state.channel.basic_ack(r.tag)
        state.conn.process_data_events(time_limit=0)  # sends the acks

    def ack(self, claims: Sequence[Claimed]) -> None:
        """Acknowledge claimed messages whose lease this agent still holds."""
        if not claims:
            return

        def work(state: _State) -> None:
            live = self._live(state, [c.receipt for c in claims])
            self._settle(state, live)
            self._expire(state)

        self._run("ack", work)

    def retry(self, items: Sequence[tuple[Claimed, AgentMessage]]) -> None:
        """Publish each new version (confirmed), then acknowledge the claimed one."""
        if not items:
            return
        check_messages([m for _, m in items])

        def work(state: _State) -> None:
            live = set(self._live(state, [c.receipt for c, _ in items]))
            keep = [(c, m) for c, m in items if c.receipt in live]
            if keep:
                self._send_jobs(state, [(m, c.deliveries) for c, m in keep])
                self._settle(state, [c.receipt for c, _ in keep])
            self._expire(state)

        self._run("retry", work)

    def extend(self, claims: Sequence[Claimed], lease_seconds: float) -> None:
        """Renew the leases (no round trip: the agent keeps them)."""
        if not claims:
            return
        with self._lock:
            state = self._state
            if state is None:
                return
            deadline = time.monotonic() + lease_seconds
            for r in self._live(state, [c.receipt for c in claims]):
                r.deadline = deadline
        self._run("extend leases", self._expire)

    def dead_letter(self, items: Sequence[tuple[Claimed, str]]) -> None:
        """Publish each message with its reason to the dead-letter stream, then ack it."""
        if not items:
            return

        def work(state: _State) -> None:
            live = set(self._live(state, [c.receipt for c, _ in items]))
            self._bury(state, [(c, r) for c, r in items if c.receipt in live])
            self._expire(state)

        self._run("dead-letter", work)

    def _bury(self, state: _State, items: Sequence[tuple[Claimed, str]]) -> None:
        if not items:
            return
        self._ensure_base(state)
        at = repr(time.time())
        pub = []
        for claim, reason in items:
            m = claim.message
            headers = {
                _ID: m.id.encode("utf-8", "surrogatepass"),
                _LANE: m.lane.encode("utf-8", "surrogatepass"),
                _PRIORITY: int(m.priority),
                _DUE: repr(float(m.due)),
                _REASON: storable_reason(reason, self.reason_limit_bytes).encode(),
                _AT: at,
            }
            pub.append(("", self._dead, m.body, headers, None))
        self._publish(state, pub, declare=False)
        self._settle(state, [c.receipt for c, _ in items])

    # -- streams -----------------------------------------------------------------------
    def _read_stream(
        self, state: _State, stream: str, marker: dict[str, Any] | None = None
    ) -> list[tuple[int, Any, bytes]]:
        """Append a marker (``marker`` headers, or an empty read marker) to ``stream`` and
        read the stream from its start up to it: ``(offset, properties, body)`` of every
        message before it, then the marker itself last."""
        self._ensure_base(state)
        if stream == self._dead:
            self._collect_limited(state)
        token = uuid.uuid4().hex
        headers = {_KIND: b"read", **(marker or {})}
        self._publish(state, [("", stream, b"", headers, token)], declare=False)
        ch = state.conn.channel()
        got: list[tuple[int, Any, bytes]] = []
        seen: list[bool] = []
        try:
            ch.basic_qos(prefetch_count=1000)

            def on_message(channel: Any, method: Any, props: Any, body: bytes) -> None:
                offset = int((props.headers or {}).get("x-stream-offset", -1))
                got.append((offset, props, body))
                if props.message_id == token:
                    seen.append(True)
                channel.basic_ack(method.delivery_tag)

            ch.basic_consume(stream, on_message, arguments={"x-stream-offset": "first"})
            self._wait(state, lambda: bool(seen), f"read the stream {stream}")
        finally:
            if ch.is_open:
                ch.close()
        end = next(i for i, g in enumerate(got) if g[1].message_id == token)
        return got[: end + 1]

    def _letters(self, records: list[tuple[int, Any, bytes]]) -> tuple[
            dict[int, DeadLetter], set[int]]:
        """The dead letters a stream read holds, every marker applied; and the keys of
        those its own (last) marker removed."""
        letters: dict[int, DeadLetter] = {}
        removed: set[int] = set()
        for index, (offset, props, body) in enumerate(records):
            h = props.headers or {}
            kind = _text(h.get(_KIND))
            mine = index == len(records) - 1
            if kind == "remove":
                for text in _text(h.get("jm-keys")).split(","):
                    if text and letters.pop(int(text), None) is not None and mine:
                        removed.add(int(text))
            elif kind == "purge":
                before = stored_number(_text(h.get("jm-before")), float)
                for key in [k for k, d in letters.items()
                            if before is None or d.at < before]:
                    del letters[key]
                    if mine:
                        removed.add(key)
            elif kind == "read":
                continue
            else:
                letters[offset] = _dead_letter(offset, h, body)
        return letters, removed

    # -- dead letters --------------------------------------------------------------
    def dead_letters(
        self, limit: int = 100, *, before: DeadLetter | None = None
    ) -> list[DeadLetter]:
        """The newest dead letters first (older than ``before`` if given)."""
        if limit <= 0:
            return []
        letters, _ = self._run("read dead letters", lambda s: self._letters(
            self._read_stream(s, self._dead)))
        keys = sorted(letters, reverse=True)
        if before is not None:
            keys = [k for k in keys if k < int(before.key)]
        return [letters[k] for k in keys[:limit]]

    def find_dead_letters(self, ids: Sequence[str]) -> list[DeadLetter]:
        """The dead letters of these job ids, newest first."""
        if not ids:
            return []
        wanted = set(ids)
        letters, _ = self._run("find dead letters", lambda s: self._letters(
            self._read_stream(s, self._dead)))
        return [letters[k] for k in sorted(letters, reverse=True)
                if letters[k].message.id in wanted]

    def remove_dead_letters(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        """Append a marker removing these dead letters; return those it removed (a dead
        letter removed by an earlier marker is not returned)."""
        if not letters:
            return []
        keys = ",".join(str(int(d.key)) for d in letters)

        def work(state: _State) -> list[DeadLetter]:
            marker = {_KIND: b"remove", "jm-keys": keys}
            _, removed = self._letters(self._read_stream(state, self._dead, marker))
            return [d for d in letters if int(d.key) in removed]

        return self._run("remove dead letters", work)

    def purge_dead_letters(self, before: float | None = None) -> int:
        """Append a marker removing every dead letter (or those older than ``before``);
        return how many it removed."""
        marker: dict[str, Any] = {_KIND: b"purge"}
        if before is not None:
            marker["jm-before"] = repr(float(before))

        def work(state: _State) -> int:
            return len(self._letters(self._read_stream(state, self._dead, marker))[1])

        return self._run("purge dead letters", work)

    # -- inspection ----------------------------------------------------------------
    def _buckets(self, state: _State) -> set[tuple[str, int]]:
        found = set()
        for _, props, _ in self._read_stream(state, self._registry)[:-1]:
            h = props.headers or {}
            if _text(h.get(_KIND)) == "read":
                continue
            priority = stored_number(h.get(_PRIORITY), int)
            if priority is not None:
                found.add((_text(h.get(_LANE)), priority))
        return found

    def _ready(self, state: _State, queue: str) -> int | None:
        """Messages waiting in ``queue`` (``None`` if it does not exist), asked on a channel
        of its own (RabbitMQ closes the channel a missing queue is asked about)."""
        probe = state.conn.channel()
        try:
            ok = probe.queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 404:
                raise
            return None
        probe.close()
        return int(ok.method.message_count)

    def length(self, bucket: Bucket | None = None) -> int:
        """Messages waiting (and delayed, for the whole agent) plus this agent's claims."""

        def work(state: _State) -> int:
            if bucket is not None:
                queue = self._queue(bucket.lane, int(bucket.priority))
                held = sum(1 for _, b in self._held.values() if b == bucket)
                return (self._ready(state, queue) or 0) + held
            total = len(self._held)
            for lane, priority in self._buckets(state):
                total += self._ready(state, self._queue(lane, priority)) or 0
            if self._delay_ready or self._ready(state, self._level(0)) is not None:
                total += sum(self._ready(state, self._level(k)) or 0 for k in range(LEVELS))
            return total

        return self._run("count messages", work)

    def purge(self) -> int:
        """Delete every queue, exchange and stream of this agent; return how many job
        messages were dropped (waiting, delayed and this agent's claims)."""

        def work(state: _State) -> int:
            buckets = {(b.lane, b.priority) for _, b in self._held.values()}
            if self._base_ready or self._ready(state, self._registry) is not None:
                buckets |= self._buckets(state)
            delay = self._delay_ready or self._ready(state, self._level(0)) is not None
            count = len(self._held)
            self._drop()
            state = self._connect()
            ch = state.channel
            for lane, priority in buckets:
                count += int(ch.queue_delete(self._queue(lane, priority)).method.message_count)
            if delay:
                for k in range(LEVELS):
                    count += int(ch.queue_delete(self._level(k)).method.message_count)
                    ch.exchange_delete(self._level(k))
                ch.exchange_delete(self._deliver)
            ch.exchange_delete(self._dead)
            for stream in (self._dead, self._registry, self._limit):
                ch.queue_delete(stream)
            self._declared.clear()
            self._delay_ready = self._base_ready = False
            return count

        return self._run("purge", work)

    def close(self) -> None:
        """Close the connection (held claims go back to their queues)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._drop()

    def __repr__(self) -> str:
        return f"<RabbitMQAgent {self.name!r} {redact_url(self.url)}>"


def _text(raw: object) -> str:
    if isinstance(raw, bytes | bytearray):
        return bytes(raw).decode("utf-8", "replace")
    return "" if raw is None else str(raw)


def _deliveries(props: Any) -> int:
    h = props.headers or {}
    base = stored_number(h.get(_BASE), int) or 0
    count = stored_number(h.get("x-delivery-count"), int) or 0
    return max(1, base + count + 1)


def _read(props: Any, lane: str, priority: int, body: bytes) -> AgentMessage | Malformed:
    """The message a delivery's headers and body hold, or ``Malformed``."""
    h = props.headers or {}
    raw_id, raw_due = h.get(_ID), h.get(_DUE)
    job_id: object = raw_id
    if isinstance(raw_id, bytes):
        try:
            job_id = raw_id.decode()
        except UnicodeDecodeError:
            job_id = raw_id
    if raw_id is None or raw_due is None:
        missing = _ID if raw_id is None else _DUE
        return Malformed(
            salvage_message(job_id or props.message_id, lane, priority,
                            stored_number(_text(raw_due), float), body),
            f"stored message has no {missing} header",
        )
    due = stored_number(_text(raw_due), float)
    return read_message(job_id, lane, priority, _text(raw_due) if due is None else due, body)


def _dead_letter(offset: int, h: dict[str, Any], body: bytes) -> DeadLetter:
    """A dead letter from a message of the dead-letter stream: one this agent wrote, or
    one RabbitMQ dead-lettered (``x-death``: the delivery limit)."""
    message = salvage_message(
        _text(h.get(_ID)), _text(h.get(_LANE)), stored_number(h.get(_PRIORITY), int),
        stored_number(_text(h.get(_DUE)), float), body,
    )
    if _REASON in h:
        return DeadLetter(message, _text(h.get(_REASON)),
                          stored_number(_text(h.get(_AT)), float) or 0.0, offset)
    deaths = h.get("x-death") or [{}]
    death = deaths[0] if isinstance(deaths, list) and deaths else {}
    why = _text(death.get("reason")) or "unknown"
    when = death.get("time")
    at = float(when.timestamp()) if isinstance(when, datetime) else 0.0
    reason = ("delivery limit reached: RabbitMQ dead-lettered it after too many deliveries"
              if why == "delivery_limit" else f"dead-lettered by RabbitMQ ({why})")
    return DeadLetter(message, reason, at, offset)
