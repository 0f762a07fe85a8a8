"""Agent on NATS JetStream (``nats://host:4222``; several servers: ``nats://a:4222,nats://b:4222``).

Layout, with ``<ns>``, ``<name>`` and ``<lane>`` made subject-safe by ``subject_token``
(letters, digits and ``-`` are kept, any other character becomes ``_XX`` per UTF-8 byte)::

    stream   JM_<ns>_<name>             work queue; subjects <ns>.<name>.jobs.<lane>.<priority>
    consumer <lane>_<priority>          durable pull consumer per bucket, filtered by its subject
    stream   JM_<ns>_<name>_DLQ         dead letters (limits retention), subjects
                                        <ns>.<name>.dead.<job id> (and <ns>.<name>.dead,
                                        where versions before lookup by id put them)
    subject  <ns>.<name>.wake.<lane>    core NATS wake-ups, not stored

A pushed job is one message: its body is the payload, ``Jm-Id`` the job id, ``Nats-Msg-Id``
the id plus a digest of the body (so the stream's duplicate window drops a second push of the
same message, but not the same job pushed again with another body) and ``Jm-Due`` its due time.
A batch is published with pipelined acknowledgements: every message, then every PubAck, one
round trip. Streams and consumers are created on first use; ``purge`` deletes the streams.

``claim`` asks the stream which of its buckets hold messages (one request), then pulls
(``no_wait``) from those, priorities 4..0 and, within a priority, lanes in the order given,
until it has ``limit``: never more messages than it returns, so nothing is taken only to be
handed back. A message pulled before its ``Jm-Due`` is NAK-ed with a delay of the time left
and skipped (its due time is announced on the wake-up subject). If nothing was due, the claim
waits on an ``asyncio.Event`` set by its lanes' wake-up subject (producers publish there after
each push, so a waiting claim wakes within about a millisecond), until a known due time, or
for at most ``RECHECK_SECONDS``: the server does not announce expired leases, so an idle claim
looks again that often.

The lease is the consumer's ``ack_wait``: an agent sets it (creating or updating the bucket's
consumer) from the ``lease_seconds`` of its first claim on the bucket and does not change it
afterwards, so workers sharing an agent should use one lease. ``extend`` sends "in progress",
which restarts a full ``ack_wait`` whatever its ``lease_seconds``. ``retry`` publishes the new
version (``Nats-Msg-Id``: id and old stream sequence, ``Jm-Deliveries``: the count so far)
and then acks the old one; ``dead_letter`` publishes to the dead-letter stream with the reason
in a header (percent-quoted, at most 1 KiB before quoting, so the header stays small), then
acks. Acks are confirmed by the server (``+ACK`` with a reply subject).

A pulled message without a ``Jm-Id`` or ``Jm-Due`` header, or whose due time is not a finite
number (``Jm-Due: abc``), is never returned: the claim moves it to the dead letters with the
reason and returns the other messages it pulled.

nats-py is asyncio: each agent runs one event loop in a daemon thread and its synchronous
methods submit coroutines to it, so it is safe to use from several threads (the hand-over
costs about 0.1 ms per call). After ``fork`` the child drops the parent's loop and connection
without closing them (``jobmaster.forking``) and starts its own on first use. A first
connection that fails raises ``AgentError`` at once; a connection lost later is
re-established in the background, and calls made meanwhile raise ``AgentError`` after
``?timeout=``.

Known limits, from JetStream itself: an id is deduplicated only within the stream's
duplicate window (``?duplicate_window=`` seconds, default 120), and within that window a job
id pushed again *after* it was acked is dropped too; an ack (or retry) from a consumer whose
lease expired still acts on the message (JetStream acks by stream sequence); ``deliveries``
counts NATS deliveries and subtracts one early pull of a job published before its due time,
so it can be one off (one low when such a job was first pulled after its due time and then
redelivered). Priorities are 0..4.

URL options: ``?storage=file|memory`` (default file), ``?replicas=N``, ``?duplicate_window=S``,
``?timeout=S`` (JetStream API and connect timeout, default 5). Security: ``tls://host:4222``
(or ``?ca=FILE``) for TLS, ``?ca=`` a CA bundle to trust, ``?cert=FILE&key=FILE`` a client
certificate, ``?tls_hostname=`` the name to check the server's certificate against;
``nats://user:password@host`` or ``nats://token@host``, ``?creds=FILE`` a credentials file
(JWT and nkey), ``?nkey=FILE`` an nkey seed file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import math
import os
import ssl
import string
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, unquote, urlsplit

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from jobmaster.agents.base import (
    AGAIN_AFTER_MALFORMED,
    Agent,
    AgentMessage,
    Bucket,
    Capabilities,
    Claimed,
    DeadLetter,
    Malformed,
    check_messages,
    read_message,
    redact_text,
    redact_url,
    salvage_message,
    storable_reason,
    stored_number,
    unburied,
)
from jobmaster.exceptions import AgentError, AgentUnreachableError, ConfigurationError
from jobmaster.forking import after_fork

T = TypeVar("T")

log = logging.getLogger(__name__)

PRIORITIES = (4, 3, 2, 1, 0)
"""The priorities a bucket can have, claimed in this order."""

RECHECK_SECONDS = 1.0
"""Longest an idle claim waits before pulling again (expired leases are not announced)."""

DEAD_LETTER_CAP = 100_000
"""Dead letters kept per agent (the oldest are dropped)."""

FENCE_LEASES = 2.0
FENCE_MIN_SECONDS = 10.0
"""Claims made within ``max(FENCE_LEASES × lease, FENCE_MIN_SECONDS)`` of the client's
(re)connection are fenced (``Claimed.fence``): a server that was killed can hand out again,
on restart or up to a lease later, messages whose acks or deliveries it had not yet written
to disk, and a client cannot tell a restart from a dropped connection."""

SWEEP_SECONDS = 5.0
"""Least time between two sweeps of one bucket's acknowledged leftovers."""

_SAFE = frozenset(string.ascii_letters + string.digits + "-")
_DUE = "Jm-Due"
_ID = "Jm-Id"
_BASE = "Jm-Deliveries"
_MSG_ID = "Nats-Msg-Id"
_NAK_MARGIN = 0.002  # NAK a not-yet-due message this much past its due time
_HINT_GRACE = 0.25  # how long past a known due time idle claims keep looking often
# characters a quoted reason header keeps as they are (not '%', not space: header values
# are stripped, not '=' or '?': no header parser may take them for an encoded word)
_REASON_SAFE = "!#$&'()*+,/:;<>@[]^`{|}"
_ORPHANS: list[object] = []  # a parent's loop and connection, kept (never closed) after fork


def subject_token(text: str) -> str:
    """``text`` as one NATS subject token (and a valid stream or consumer name part).

    Letters, digits and ``-`` are kept; every other character becomes ``_XX`` per UTF-8
    byte, so the mapping is reversible and different texts never share a token.
    """
    if text and all(c in _SAFE for c in text):
        return text
    if not text:
        return "_"
    return "".join(
        c if c in _SAFE else "".join(f"_{b:02X}" for b in c.encode()) for c in text
    )


def token_text(token: str) -> str:
    """The text that ``subject_token`` turned into ``token``."""
    if "_" not in token:
        return token
    if token == "_":  # noqa: S105 - not a password
        return ""
    out = bytearray()
    i = 0
    while i < len(token):
        if token[i] == "_":
            out.append(int(token[i + 1 : i + 3], 16))
            i += 3
        else:
            out += token[i].encode()
            i += 1
    return out.decode()


@dataclass(slots=True)
class _Bucket:
    """One (lane, priority) bucket: its consumer and the inbox its pulls are answered on."""

    lane: str
    priority: int
    subject: str
    consumer: str
    inbox: str = ""
    sub: Subscription | None = None
    queue: asyncio.Queue[Msg] = field(default_factory=asyncio.Queue)
    leftovers: deque[Msg] = field(default_factory=deque)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(slots=True)
class _Batch:
    """Replies awaited for a batch of requests that share one reply subject."""

    expected: int
    done: asyncio.Future[None]
    received: int = 0
    errors: list[str] = field(default_factory=list)


class _Gone(Exception):
    """A stream or consumer this agent used has disappeared (purged elsewhere)."""


class _LoopThread:
    """An asyncio event loop running in a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def stop(self) -> None:
        """Cancel what still runs on the loop (a client's reconnect attempts and readers,
        say), then stop it and its thread."""
        if self.loop.is_running() and threading.current_thread() is not self.thread:
            try:
                self.run(_cancel_tasks(), 2.0)
            except Exception as exc:  # noqa: BLE001 - stopping is best effort
                log.debug("stopping a NATS agent loop: %s", exc)
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self.thread:
            self.thread.join(2.0)


async def _cancel_tasks() -> None:
    """Cancel every other task of the running loop and wait for them to end."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _refused(exc: BaseException | None) -> bool:
    """Whether the server refused the connection's credentials."""
    return isinstance(exc, nats.errors.AuthorizationError) or "Authorization Violation" in \
        str(exc or "")


class NatsAgent(Agent):
    """Jobs in a JetStream work-queue stream, one durable pull consumer per bucket."""

    capabilities = Capabilities(notify=True, delayed=True, durable=True, shared=True)
    reason_limit_bytes = 1024  # a header: at most 3 KiB once quoted

    def __init__(self, url: str, *, name: str = "main", namespace: str = "jobmaster") -> None:
        super().__init__(url, name=name, namespace=namespace)
        parts = urlsplit(url)
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self._tls_files = {k: options.pop(k) for k in ("ca", "cert", "key") if k in options}
        self._tls_hostname = options.pop("tls_hostname", None)
        self._creds = options.pop("creds", None)
        self._nkey = options.pop("nkey", None)
        self._tls = parts.scheme.lower() == "tls" or bool(self._tls_files)
        for path in (*self._tls_files.values(), self._creds, self._nkey):
            if path is not None and not os.path.isfile(path):
                raise ConfigurationError(
                    f"NATS agent URL {redact_url(url)!r} names {path!r}, which is not a "
                    "readable file (?ca=, ?cert=, ?key=, ?creds= and ?nkey= take file paths)")
        if ("cert" in self._tls_files) != ("key" in self._tls_files):
            raise ConfigurationError(
                f"NATS agent URL {redact_url(url)!r}: a client certificate needs both "
                "?cert=FILE and ?key=FILE")
        try:
            self._timeout = float(options.pop("timeout", 5.0))
            self._replicas = int(options.pop("replicas", 1))
            self._duplicate_window = float(options.pop("duplicate_window", 120.0))
            storage = options.pop("storage", "file").lower()
            self._storage = {"file": StorageType.FILE, "memory": StorageType.MEMORY}[storage]
        except (KeyError, ValueError) as exc:
            raise ConfigurationError(
                f"bad NATS agent URL option in {redact_url(url)!r} "
                f"({redact_text(str(exc), url)}); use ?storage=file|memory, ?replicas=N, "
                "?duplicate_window=SECONDS, ?timeout=SECONDS, ?ca=, ?cert=, ?key=, "
                "?creds=, ?nkey=, ?tls_hostname="
            ) from exc
        if options:
            raise ConfigurationError(
                f"unknown NATS agent URL option(s) {sorted(options)} in {redact_url(url)!r}"
            )
        self._servers = [s.strip() for s in url.split("?", 1)[0].split(",") if s.strip()]
        ns, nm = subject_token(namespace), subject_token(name)
        self._stream = f"JM_{ns}_{nm}"
        self._dead_stream = f"JM_{ns}_{nm}_DLQ"
        self._subject = f"{ns}.{nm}"
        self._lock = threading.Lock()
        self._closed = False
        self._reset()
        after_fork(self, NatsAgent._forget)

    def _forget(self) -> None:
        """In a forked child: drop (never close) the parent's loop and connection."""
        _ORPHANS.append((self._runner, self._nc))
        self._lock = threading.Lock()  # a parent's thread may have held it
        self._reset()

    def _reset(self) -> None:
        """Fresh loop-side state (first use, or a forked child)."""
        self._runner: _LoopThread | None = None
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._connecting: asyncio.Lock | None = None
        self._streams_ready = False
        self._stream_created = ""  # when the work stream our consumers belong to was made
        self._buckets: dict[tuple[str, int], _Bucket] = {}
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._hints: dict[str, float] = {}  # lane -> earliest due time known to be coming
        self._wake_sub: Subscription | None = None
        self._reply_prefix = ""
        self._batches: dict[str, _Batch] = {}
        self._batch_seq = 0
        self._closing = False
        self._connected_at = -math.inf  # monotonic time of the last (re)connection
        self._swept: dict[tuple[str, int], float] = {}  # bucket -> last orphan sweep

    # -- plumbing ------------------------------------------------------------------
    def _run(self, what: str, make: Callable[[], Awaitable[T]], wait: float = 0.0) -> T:
        """Run ``make()`` on the agent's loop and wait for it; errors become ``AgentError``."""
        with self._lock:
            if self._closed:
                raise AgentError(f"NATS agent {self.name!r} is closed")
            if self._runner is None:
                self._runner = _LoopThread(f"jobmaster-nats-{self.name}")
            runner = self._runner

        async def call() -> T:
            await self._connect()
            try:
                return await make()
            except _Gone:
                self._forget_setup()
                return await make()

        try:
            return runner.run(call(), self._timeout * 3 + wait)
        except AgentError:
            raise
        except _Gone as exc:
            raise AgentError(
                f"NATS agent {self.name!r} could not {what} at {self._where()}: its stream or "
                f"consumer keeps disappearing ({self._clean(exc)}); is something deleting "
                f"{self._stream}?"
            ) from exc
        except (nats.errors.AuthorizationError, nats.errors.NoServersError) as exc:
            if not isinstance(exc, nats.errors.AuthorizationError) and not getattr(
                    self, "_auth_refused", False):
                raise AgentUnreachableError(
                    f"NATS agent {self.name!r} could not {what} at {self._where()} "
                    f"({type(exc).__name__}: {self._clean(exc)}); is nats-server running "
                    "there with JetStream enabled (-js)? The agent reconnects on its own."
                ) from exc
            raise AgentError(
                f"NATS agent {self.name!r}: nats-server at {self._where()} refused the "
                f"credentials ({self._clean(exc)}); check the user, password, token, creds "
                "file or nkey of the agent URL") from exc
        except (TimeoutError, concurrent.futures.TimeoutError, nats.errors.Error) as exc:
            last = getattr(self, "_last_error", None)
            if isinstance(last, ssl.SSLError):
                raise AgentUnreachableError(
                    f"NATS agent {self.name!r} could not {what} at {self._where()}: TLS "
                    f"failed ({self._clean(last)}); if the server's certificate comes from "
                    "your own CA, name it with ?ca=FILE") from exc
            raise AgentUnreachableError(
                f"NATS agent {self.name!r} could not {what} at {self._where()} "
                f"({type(exc).__name__}: {self._clean(exc) if str(exc) else 'timed out'}); "
                "is nats-server running there with JetStream enabled (-js)? The agent "
                "reconnects on its own."
            ) from exc
        except OSError as exc:
            raise AgentUnreachableError(
                f"NATS agent {self.name!r} could not {what} at {self._where()} "
                f"({self._clean(exc)}); is nats-server running there with JetStream enabled "
                "(-js)?"
            ) from exc

    def _where(self) -> str:
        return ",".join(redact_url(s) for s in self._servers)

    def _clean(self, exc: BaseException) -> str:
        """An exception's text without any credential of the URL."""
        return redact_text(str(exc), self.url)

    async def _connect(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            return
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._nc is not None and not self._nc.is_closed:
                return
            self._forget_setup()
            # The first connection fails fast (two tries per server); once connected, the
            # client reconnects on its own, forever, replaying its subscriptions.
            nc = await nats.connect(
                servers=self._servers,
                **self._security(),
                connect_timeout=self._timeout,
                allow_reconnect=True,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.25,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnect,
                reconnected_cb=self._on_reconnect,
            )
            nc.options["max_reconnect_attempts"] = -1
            self._auth_refused = False
            self._connected_at = time.monotonic()
            self._nc = nc
            self._js = nc.jetstream(timeout=self._timeout)
            self._wake_sub = await nc.subscribe(self._subject + ".wake.*", cb=self._on_wake)
            self._reply_prefix = nc.new_inbox() + "."
            await nc.subscribe(self._reply_prefix + "*", cb=self._on_reply)

    def _security(self) -> dict[str, Any]:
        """nats-py's TLS and credential options from the URL: ``tls://`` or ``?ca=`` for
        TLS (``?cert=&key=`` for a client certificate), ``?creds=`` for a credentials file
        (JWT and nkey), ``?nkey=`` for an nkey seed file; user and password or a token in
        the URL itself, as nats-py reads them."""
        found: dict[str, Any] = {}
        if self._tls:
            context = ssl.create_default_context(cafile=self._tls_files.get("ca"))
            if "cert" in self._tls_files:
                context.load_cert_chain(self._tls_files["cert"], self._tls_files["key"])
            found["tls"] = context
            if self._tls_hostname:
                found["tls_hostname"] = self._tls_hostname
        if self._creds:
            found["user_credentials"] = self._creds
        if self._nkey:
            found["nkeys_seed"] = self._nkey
        return found

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = exc
        if _refused(exc):
            self._auth_refused = True  # kept through the errors that follow it
        log.debug("NATS agent %r at %s: %s", self.name, self._where(), self._clean(exc))

    async def _on_disconnect(self) -> None:
        if self._closing:
            return
        log.warning("NATS agent %r lost its connection to %s", self.name, self._where())

    async def _on_reconnect(self) -> None:
        self._connected_at = time.monotonic()
        self._swept.clear()
        log.info("NATS agent %r reconnected to %s", self.name, self._where())

    def _forget_setup(self) -> None:
        """Streams and consumers must be (re)checked before the next use."""
        self._streams_ready = False
        self._stream_created = ""
        for bucket in self._buckets.values():
            if bucket.sub is not None:
                asyncio.ensure_future(self._quietly(bucket.sub.unsubscribe()))
        self._buckets.clear()

    @staticmethod
    async def _quietly(aw: Awaitable[Any]) -> None:
        try:
            await aw
        except Exception:  # noqa: S110 - best-effort clean-up
            pass

    async def _request_all(
        self, requests: Sequence[tuple[str, bytes, dict[str, str] | None]]
    ) -> list[str]:
        """Publish every request with one shared reply subject and wait for all the replies
        (pipelined: one round trip for the batch). Returns the errors replied, if any."""
        if not requests:
            return []
        self._batch_seq += 1
        token = str(self._batch_seq)
        batch = _Batch(len(requests), asyncio.get_running_loop().create_future())
        self._batches[token] = batch
        reply = self._reply_prefix + token
        nc = self._conn
        try:
            for subject, payload, headers in requests:
                await nc.publish(subject, payload, reply=reply, headers=headers)
            await asyncio.wait_for(batch.done, self._timeout + len(requests) / 20_000)
        finally:
            del self._batches[token]
        return batch.errors

    async def _on_reply(self, msg: Msg) -> None:
        batch = self._batches.get(msg.subject[len(self._reply_prefix) :])
        if batch is None:
            return
        batch.received += 1
        status = _status(msg)
        if status == "503":
            batch.errors.append("503 no responders (no stream or consumer for the subject)")
        elif status:
            batch.errors.append(f"status {status}")
        elif msg.data[:1] == b"{" and b'"error"' in msg.data:
            batch.errors.append(msg.data.decode(errors="replace"))
        if batch.received >= batch.expected and not batch.done.done():
            batch.done.set_result(None)

    async def _publish_all(
        self, requests: Sequence[tuple[str, bytes, dict[str, str] | None]]
    ) -> None:
        """Publish to JetStream and wait for every PubAck; a missing stream is ``_Gone``."""
        errors = await self._request_all(requests)
        if errors:
            if any("503" in e or "stream not found" in e for e in errors):
                raise _Gone(errors[0])
            raise AgentError(
                f"NATS agent {self.name!r}: JetStream refused {len(errors)} of "
                f"{len(requests)} messages: {redact_text(errors[0], self.url)}"
            )

    @property
    def _jsc(self) -> JetStreamContext:
        assert self._js is not None  # noqa: S101 - set by _connect
        return self._js

    @property
    def _conn(self) -> Client:
        assert self._nc is not None  # noqa: S101 - set by _connect
        return self._nc

    async def _ensure_streams(self) -> None:
        if self._streams_ready:
            return
        await self._add_stream(
            StreamConfig(
                name=self._stream,
                subjects=[self._subject + ".jobs.*.*"],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=self._storage,
                num_replicas=self._replicas,
                duplicate_window=self._duplicate_window,
            )
        )
        dead_subjects = [self._subject + ".dead", self._subject + ".dead.>"]
        await self._add_stream(
            StreamConfig(
                name=self._dead_stream,
                subjects=dead_subjects,
                retention=RetentionPolicy.LIMITS,
                storage=self._storage,
                num_replicas=self._replicas,
                max_msgs=DEAD_LETTER_CAP,
                discard=DiscardPolicy.OLD,
            )
        )
        info = await self._jsc.stream_info(self._dead_stream)
        if set(dead_subjects) - set(info.config.subjects or []):  # made by an older version
            config = info.config
            config.subjects = sorted(set(config.subjects or []) | set(dead_subjects))
            await self._jsc.update_stream(config)
        self._streams_ready = True

    async def _add_stream(self, config: StreamConfig) -> None:
        try:
            await self._jsc.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            # exists with another configuration (other options, say): use it as it is
            try:
                await self._jsc.stream_info(config.name or "")
            except nats.js.errors.NotFoundError:
                raise AgentError(
                    f"NATS agent {self.name!r} cannot create stream {config.name} for subjects "
                    f"{config.subjects}: {exc.description}"
                ) from exc

    def _job_subject(self, lane: str, priority: int) -> str:
        return f"{self._subject}.jobs.{subject_token(lane)}.{priority}"

    async def _bucket(self, lane: str, priority: int, lease_seconds: float) -> _Bucket:
        bucket = self._buckets.get((lane, priority))
        if bucket is not None:
            return bucket
        await self._ensure_streams()
        bucket = _Bucket(
            lane, priority, self._job_subject(lane, priority), f"{subject_token(lane)}_{priority}"
        )
        config = ConsumerConfig(
            name=bucket.consumer,
            durable_name=bucket.consumer,
            filter_subject=bucket.subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=lease_seconds,
            max_deliver=-1,
            max_ack_pending=-1,
        )
        try:
            await self._jsc.add_consumer(self._stream, config)
        except nats.js.errors.BadRequestError:
            # exists with another ack_wait: keep it (see the module docstring)
            await self._jsc.consumer_info(self._stream, bucket.consumer)
        except nats.js.errors.NotFoundError as exc:
            raise _Gone from exc
        if (lane, priority) in self._buckets:  # another claim set it up meanwhile
            return self._buckets[(lane, priority)]
        bucket.inbox = self._conn.new_inbox()

        async def deliver(msg: Msg, queue: asyncio.Queue[Msg] = bucket.queue) -> None:
            queue.put_nowait(msg)

        bucket.sub = await self._conn.subscribe(bucket.inbox, cb=deliver)
        self._buckets[(lane, priority)] = bucket
        return bucket

    async def _pull(self, bucket: _Bucket, count: int) -> list[Msg]:
        """Up to ``count`` messages of a bucket, without waiting for new ones."""
        async with bucket.lock:
            got: list[Msg] = []
            while bucket.leftovers and len(got) < count:
                got.append(bucket.leftovers.popleft())
            while not bucket.queue.empty():  # answers to an earlier pull that timed out
                msg = bucket.queue.get_nowait()
                if not _status(msg):
                    (got if len(got) < count else bucket.leftovers).append(msg)
            if len(got) >= count:
                return got
            wanted = count - len(got)
            request = b'{"batch":%d,"no_wait":true}' % wanted
            await self._conn.publish(
                f"$JS.API.CONSUMER.MSG.NEXT.{self._stream}.{bucket.consumer}",
                request,
                reply=bucket.inbox,
            )
            queue = bucket.queue
            while wanted > 0:
                if queue.empty():
                    try:
                        msg = await asyncio.wait_for(queue.get(), self._timeout)
                    except TimeoutError:
                        # a deleted consumer does not answer at all
                        try:
                            await self._jsc.consumer_info(self._stream, bucket.consumer)
                        except nats.js.errors.NotFoundError as exc:
                            raise _Gone(bucket.consumer) from exc
                        raise
                else:
                    msg = queue.get_nowait()
                status = _status(msg)
                if not status:
                    got.append(msg)
                    wanted -= 1
                elif status in ("404", "408"):  # no (more) messages
                    break
                elif status == "409":  # consumer deleted, leadership change, ...
                    description = (msg.headers or {}).get("Description", "")
                    if "deleted" in description.lower():
                        raise _Gone(description)
                    break
                elif status != "100":
                    raise AgentError(f"NATS pull failed: {status} {msg.headers}")
            return got

    async def _sweep(self, bucket: _Bucket) -> None:
        """Delete the bucket's messages at or below its consumer's ack floor: every one of
        them is acknowledged, yet a server killed before it removed them keeps them in the
        work queue, where no pull reaches them (at most every ``SWEEP_SECONDS``; one by
        one: a purge would also drop the consumer's pending deliveries)."""
        now = time.monotonic()
        key = (bucket.lane, bucket.priority)
        if now - self._swept.get(key, -math.inf) < SWEEP_SECONDS:
            return
        self._swept[key] = now
        info = await self._jsc.consumer_info(self._stream, bucket.consumer)
        floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
        seq = 1
        while seq <= floor:
            try:
                raw = await self._jsc.get_msg(self._stream, seq=seq, subject=bucket.subject,
                                              next=True)
            except nats.js.errors.Error as exc:
                if _not_found(exc):
                    return
                raise
            if raw.seq is None or raw.seq > floor:
                return
            try:
                await self._jsc.delete_msg(self._stream, raw.seq)
            except nats.js.errors.Error as exc:
                if not _not_found(exc):
                    raise
            log.info("NATS agent %r: removed message %d of %s, acknowledged before its "
                     "server restarted", self.name, raw.seq, bucket.subject)
            seq = raw.seq + 1

    # -- producer ------------------------------------------------------------------
    def push(self, messages: Sequence[AgentMessage]) -> None:
        """Publish messages with pipelined acknowledgements: one round trip per batch."""
        if not messages:
            return
        check_messages(messages)
        self._run("push", lambda: self._push(messages))

    async def _push(self, messages: Sequence[AgentMessage]) -> None:
        await self._ensure_streams()
        subjects: dict[tuple[str, int], str] = {}
        requests = []
        for m in messages:
            subject = subjects.get((m.lane, m.priority))
            if subject is None:
                subject = subjects[(m.lane, m.priority)] = self._job_subject(m.lane, m.priority)
            # dedupe key: the id plus a digest of the body, so pushing the same message twice
            # is dropped, while the same job pushed again later (a manual retry, another
            # due time) is not swallowed by the stream's duplicate window
            digest = hashlib.blake2b(m.body, digest_size=8).hexdigest()
            headers = {_ID: quote(m.id, safe=""), _MSG_ID: f"{quote(m.id, safe='')}:{digest}",
                       _DUE: repr(float(m.due))}
            requests.append((subject, m.body, headers))
        await self._publish_all(requests)
        await self._wake({lane for lane, _ in subjects})

    async def _wake(self, lanes: set[str], payload: bytes = b"") -> None:
        for lane in lanes:
            await self._conn.publish(f"{self._subject}.wake.{subject_token(lane)}", payload)

    async def _on_wake(self, msg: Msg) -> None:
        lane = token_text(msg.subject.rsplit(".", 1)[1])
        if msg.data:
            try:
                due = float(msg.data)
            except ValueError:
                return
            self._hints[lane] = min(due, self._hints.get(lane, due))
        for event in self._waiters.get(lane, ()):
            event.set()

    # -- consumer ------------------------------------------------------------------
    def claim(
        self,
        lanes: Sequence[str],
        limit: int,
        *,
        lease_seconds: float,
        consumer: str,
        wait: float = 0.0,
    ) -> list[Claimed]:
        """Pull up to ``limit`` due messages, priorities 4..0; if none, wait up to ``wait``
        seconds for a wake-up (see the module docstring). ``consumer`` is not used: every
        worker of a bucket shares its durable consumer, and the receipt is the message."""
        if not lanes or limit <= 0:
            return []
        lanes = list(dict.fromkeys(lanes))
        return self._run(
            "claim", lambda: self._claim(lanes, limit, lease_seconds, wait), wait=wait
        )

    async def _claim(
        self, lanes: list[str], limit: int, lease_seconds: float, wait: float
    ) -> list[Claimed]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        event = asyncio.Event()
        for lane in lanes:
            self._waiters.setdefault(lane, set()).add(event)
        try:
            again = AGAIN_AFTER_MALFORMED
            while True:
                event.clear()
                if not self._conn.is_connected:
                    # the server is gone for now (the client reconnects on its own): wait
                    # for it no longer than asked, so the worker goes on recording and
                    # heartbeating the master meanwhile instead of hanging here
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        return []
                    await asyncio.sleep(min(remaining, 0.05))
                    continue
                got, removed = await self._claim_once(lanes, limit, lease_seconds)
                if got:
                    return got
                if removed and again > 0:
                    again -= 1  # only malformed messages, now gone: look again at once
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return got
                pause = min(remaining, RECHECK_SECONDS)
                hints = [self._hints[lane] for lane in lanes if lane in self._hints]
                if hints:
                    # a NAK delay ends on the server's timer: look again just after it,
                    # then every few milliseconds for a little while
                    pause = min(pause, max(0.005, min(hints) + 0.003 - time.time()))
                try:
                    await asyncio.wait_for(event.wait(), pause)
                except TimeoutError:
                    pass
        finally:
            for lane in lanes:
                waiting = self._waiters.get(lane)
                if waiting is not None:
                    waiting.discard(event)
                    if not waiting:
                        del self._waiters[lane]

    async def _claim_once(
        self, lanes: list[str], limit: int, lease_seconds: float
    ) -> tuple[list[Claimed], bool]:
        """Pull up to ``limit`` due messages: the well-formed claims, and whether malformed
        messages were moved to the dead letters."""
        now = time.time()
        for lane in lanes:
            if self._hints.get(lane, now + 1) < now - _HINT_GRACE:
                del self._hints[lane]
        await self._ensure_streams()
        counts = await self._subject_counts(lanes)
        fenced = time.monotonic() - self._connected_at < max(
            FENCE_LEASES * lease_seconds, FENCE_MIN_SECONDS)
        out: list[Claimed] = []
        malformed: list[tuple[Claimed, str]] = []
        early: dict[str, float] = {}
        for priority in PRIORITIES:
            for lane in lanes:
                wanted = limit - len(out)
                if wanted <= 0:
                    break
                if not counts.get(self._job_subject(lane, priority)):
                    continue
                bucket = await self._bucket(lane, priority, lease_seconds)
                pulled = await self._pull(bucket, wanted)
                if not pulled:
                    await self._sweep(bucket)
                for msg in pulled:
                    claimed, problem = _claimed(msg, lane, priority, fenced)
                    if problem is not None:
                        malformed.append((claimed, problem))
                        continue
                    due = claimed.message.due
                    now = time.time()
                    if due > now:
                        await msg.nak(delay=due - now + _NAK_MARGIN)
                        early[lane] = min(due, early.get(lane, due))
                        self._hints[lane] = min(due, self._hints.get(lane, due))
                        continue
                    out.append(claimed)
        if early:
            for lane, due in early.items():
                await self._wake({lane}, repr(due).encode())
        if not malformed:
            return out, False
        try:  # as bury_malformed, on the loop
            await self._dead_letter(malformed)
        except Exception as exc:  # noqa: BLE001 - the good messages are returned anyway
            unburied(self, malformed, exc)
            return out, False
        return out, True

    async def _subject_counts(self, lanes: Sequence[str]) -> dict[str, int]:
        """Messages held per bucket subject of ``lanes`` (one request): buckets without any
        are not pulled from."""
        if len(lanes) == 1:
            subjects = f"{self._subject}.jobs.{subject_token(lanes[0])}.*"
        else:
            subjects = f"{self._subject}.jobs.>"
        response = await self._conn.request(
            f"$JS.API.STREAM.INFO.{self._stream}",
            json.dumps({"subjects_filter": subjects}).encode(),
            timeout=self._timeout,
        )
        info = json.loads(response.data)
        if "error" in info:
            if info["error"].get("err_code") == 10059:  # stream not found
                raise _Gone(info["error"].get("description", ""))
            raise AgentError(f"NATS agent {self.name!r}: stream info failed: {info['error']}")
        created = str(info.get("created", ""))
        if not self._stream_created:
            self._stream_created = created
        elif created != self._stream_created:  # purged and made again elsewhere
            raise _Gone("the stream was deleted and created again")
        counts: dict[str, int] = info.get("state", {}).get("subjects") or {}
        return counts

    def ack(self, claims: Sequence[Claimed]) -> None:
        """Acknowledge claimed messages (each ack confirmed, all in one round trip)."""
        if not claims:
            return
        self._run("ack", lambda: self._ack([c.receipt for c in claims]))

    async def _ack(self, msgs: Sequence[Msg]) -> None:
        # "+ACK" with a reply subject: the server confirms each ack (even a repeated one; a
        # deleted consumer answers "no responders", which needs no ack anyway)
        await self._request_all([(msg.reply, b"+ACK", None) for msg in msgs])

    def retry(self, items: Sequence[tuple[Claimed, AgentMessage]]) -> None:
        """Publish each new version, then acknowledge the claimed one."""
        if not items:
            return
        check_messages([m for _, m in items])
        self._run("retry", lambda: self._retry(items))

    async def _retry(self, items: Sequence[tuple[Claimed, AgentMessage]]) -> None:
        await self._ensure_streams()
        requests = []
        for claim, m in items:
            old: Msg = claim.receipt
            headers = {
                _MSG_ID: f"{quote(m.id, safe='')}:{old.metadata.sequence.stream}",
                _ID: quote(m.id, safe=""),
                _DUE: repr(float(m.due)),
                _BASE: str(claim.deliveries),
            }
            requests.append((self._job_subject(m.lane, m.priority), m.body, headers))
        await self._publish_all(requests)
        await self._ack([claim.receipt for claim, _ in items])
        await self._wake({m.lane for _, m in items})

    def extend(self, claims: Sequence[Claimed], lease_seconds: float) -> None:
        """Send "in progress" for each claim: its lease restarts at the consumer's
        ``ack_wait`` (``lease_seconds`` is not used; see the module docstring)."""
        if not claims:
            return
        self._run("extend leases", lambda: self._extend([c.receipt for c in claims]))

    async def _extend(self, msgs: Sequence[Msg]) -> None:
        for msg in msgs:
            await msg.in_progress()
        if self._conn.is_connected:  # else they wait in the client's buffer for the server
            await self._conn.flush(int(self._timeout + 1))

    def dead_letter(self, items: Sequence[tuple[Claimed, str]]) -> None:
        """Publish each message with its reason to the dead-letter stream, then ack it."""
        if not items:
            return
        self._run("dead-letter", lambda: self._dead_letter(items))

    async def _dead_letter(self, items: Sequence[tuple[Claimed, str]]) -> None:
        await self._ensure_streams()
        requests = []
        at = repr(time.time())
        for claim, reason in items:
            m = claim.message
            headers = {
                _ID: quote(m.id, safe=""),
                "Jm-Lane": quote(m.lane, safe=""),
                "Jm-Priority": str(int(m.priority)),
                _DUE: repr(float(m.due)),
                "Jm-Reason": quote(
                    storable_reason(reason, self.reason_limit_bytes), safe=_REASON_SAFE
                ),
                "Jm-At": at,
            }
            requests.append((self._dead_subject(m.id), m.body, headers))
        await self._publish_all(requests)
        await self._ack([claim.receipt for claim, _ in items])

    # -- dead letters --------------------------------------------------------------
    # A dead letter's key is its stream sequence. Requests of one batch are sent together
    # (``asyncio.gather``: one round trip); requeue is push, then remove (see ``Agent``).
    # ``find_dead_letters`` returns the newest dead letter of each id (the last message of
    # its subject); dead letters stored by versions before lookup by id are not found by
    # it, only listed and purged.
    def _dead_subject(self, job_id: str) -> str:
        return f"{self._subject}.dead.{subject_token(job_id)}"

    def dead_letters(
        self, limit: int = 100, *, before: DeadLetter | None = None
    ) -> list[DeadLetter]:
        """The newest dead letters first (older than ``before`` if given), read back from
        the dead-letter stream: one batch of requests per page, more only where messages
        were removed from the range."""
        if limit <= 0:
            return []
        below = None if before is None else int(before.key)
        return self._run("read dead letters", lambda: self._dead_letters(limit, below))

    async def _dead_letters(self, limit: int, below: int | None) -> list[DeadLetter]:
        try:
            info = await self._jsc.stream_info(self._dead_stream)
        except nats.js.errors.NotFoundError:
            return []
        if not info.state.messages:
            return []
        first = info.state.first_seq
        top = info.state.last_seq if below is None else min(below - 1, info.state.last_seq)
        out: list[DeadLetter] = []
        while len(out) < limit and top >= first:
            want = limit - len(out)
            seqs = range(top, max(first, top - want + 1) - 1, -1)
            out += await self._get_dead(seqs)
            top = seqs[-1] - 1
        return out[:limit]

    async def _get_dead(self, seqs: Sequence[int]) -> list[DeadLetter]:
        """The dead letters at these stream sequences (none for a sequence deleted)."""
        raws = await asyncio.gather(
            *(self._jsc.get_msg(self._dead_stream, seq) for seq in seqs), return_exceptions=True
        )
        return [_dead_letter(raw) for raw in _found(raws)]

    def find_dead_letters(self, ids: Sequence[str]) -> list[DeadLetter]:
        """The newest dead letter of each of these job ids, newest first."""
        if not ids:
            return []
        return self._run("find dead letters", lambda: self._find_dead(ids))

    async def _find_dead(self, ids: Sequence[str]) -> list[DeadLetter]:
        await self._ensure_streams()
        raws = await asyncio.gather(
            *(self._jsc.get_last_msg(self._dead_stream, self._dead_subject(i)) for i in set(ids)),
            return_exceptions=True,
        )
        found = [_dead_letter(raw) for raw in _found(raws)]
        return sorted(found, key=lambda d: -int(d.key))

    def remove_dead_letters(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        """Delete these dead letters (by stream sequence); return those that were there."""
        if not letters:
            return []
        return self._run("remove dead letters", lambda: self._remove_dead(letters))

    async def _remove_dead(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        try:
            await self._jsc.stream_info(self._dead_stream)
        except nats.js.errors.NotFoundError:
            return []
        done = await asyncio.gather(
            *(self._jsc.delete_msg(self._dead_stream, int(d.key)) for d in letters),
            return_exceptions=True,
        )
        gone: list[DeadLetter] = []
        for letter, ok in zip(letters, done, strict=True):
            if isinstance(ok, BaseException):
                if _not_found(ok):
                    continue  # removed already
                raise ok
            if ok:
                gone.append(letter)
        return gone

    def purge_dead_letters(self, before: float | None = None) -> int:
        """Delete every dead letter, or those older than ``before``; return how many.
        With ``before``, the first dead letter not older is found by binary search over
        the stream's sequences (a few requests), and everything below it is purged."""
        return self._run("purge dead letters", lambda: self._purge_dead(before))

    async def _purge_dead(self, before: float | None) -> int:
        try:
            info = await self._jsc.stream_info(self._dead_stream)
        except nats.js.errors.NotFoundError:
            return 0
        held = int(info.state.messages)
        if not held:
            return 0
        if before is None:
            await self._jsc.purge_stream(self._dead_stream)
            return held
        low, high = info.state.first_seq, info.state.last_seq + 1  # the answer is in [low, high]
        while low < high:
            mid = (low + high) // 2
            try:  # the first message at or after mid
                raw = await self._jsc.get_msg(self._dead_stream, mid, subject=">", next=True)
            except nats.js.errors.NotFoundError:
                high = mid
                continue
            at = stored_number((raw.headers or {}).get("Jm-At"), float) or 0.0
            seq = int(raw.seq or mid)
            if at < before:
                low = seq + 1
            else:
                high = mid
        if low <= info.state.first_seq:
            return 0
        await self._jsc.purge_stream(self._dead_stream, seq=low)
        after = await self._jsc.stream_info(self._dead_stream)
        return held - int(after.state.messages)

    # -- inspection ----------------------------------------------------------------

    def length(self, bucket: Bucket | None = None) -> int:
        """Messages held (waiting, delayed or claimed) in one bucket or the whole stream:
        per bucket, what its consumer has not seen acknowledged (so acknowledged leftovers
        of a killed server are not counted), or the stream's count for a bucket no worker
        has claimed from yet."""
        return self._run("count messages", lambda: self._length(bucket))

    async def _length(self, bucket: Bucket | None) -> int:
        subject = None if bucket is None else self._job_subject(bucket.lane, int(bucket.priority))
        try:
            info = await self._jsc.stream_info(self._stream, subjects_filter=subject or ">")
            consumers = await self._jsc.consumers_info(self._stream)
        except nats.js.errors.NotFoundError:
            return 0
        held: dict[str, int] = dict(info.state.subjects or {})
        for consumer in consumers:
            filtered = consumer.config.filter_subject
            if filtered in held:
                held[filtered] = min(held[filtered], int(consumer.num_pending or 0)
                                     + int(consumer.num_ack_pending or 0))
        if subject is None:
            return sum(held.values())
        return held.get(subject, 0)

    def purge(self) -> int:
        """Delete this agent's streams (and so their consumers); they are created again on
        next use. Returns how many job messages were dropped."""
        return self._run("purge", self._purge)

    async def _purge(self) -> int:
        count = 0
        try:
            info = await self._jsc.stream_info(self._stream)
            count = int(info.state.messages)
            await self._jsc.delete_stream(self._stream)
        except nats.js.errors.NotFoundError:
            pass
        try:
            await self._jsc.delete_stream(self._dead_stream)
        except nats.js.errors.NotFoundError:
            pass
        self._forget_setup()
        self._hints.clear()
        return count

    def close(self) -> None:
        """Close the connection and stop the agent's loop (in a forked child, only the
        child's own)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            runner, nc = self._runner, self._nc
            if runner is None:
                return
            self._closing = True
        if nc is not None:
            try:
                runner.run(nc.close(), self._timeout)
            except Exception as exc:  # noqa: BLE001 - closing is best effort
                log.debug("NATS agent %r: close failed: %s", self.name, self._clean(exc))
        runner.stop()


def _status(msg: Msg) -> str:
    """The status code of a JetStream status message ("" for a real message)."""
    if msg.data or not msg.headers:
        return ""
    return str(msg.headers.get("Status", ""))


def _claimed(msg: Msg, lane: str, priority: int, fence: bool = False
             ) -> tuple[Claimed, str | None]:
    """A pulled message as a ``Claimed`` (the receipt is the message itself), and what is
    wrong with it (``None`` if nothing: for a malformed message the claim holds what could
    be kept of it, for the dead letters). ``fence``: see ``Claimed.fence``."""
    h = msg.headers or {}
    md = msg.metadata
    read = _read(h, lane, priority, msg.data)
    if isinstance(read, Malformed):
        return Claimed(read.message, msg, max(1, md.num_delivered)), read.reason
    base = stored_number(h.get(_BASE), int) or 0
    deliveries = base + md.num_delivered
    if md.num_delivered > 1 and read.due > md.timestamp.timestamp():
        deliveries -= 1  # pushed for later: one delivery was (most likely) an early pull
    return Claimed(read, msg, max(1, deliveries), fence), None


def _read(
    headers: dict[str, str], lane: str, priority: int, body: bytes
) -> AgentMessage | Malformed:
    """The message a pulled message's headers and body hold, or ``Malformed``."""
    raw_id, raw_due = headers.get(_ID), headers.get(_DUE)
    if raw_id is None or raw_due is None:
        msg_id = unquote(headers.get(_MSG_ID, "")).rpartition(":")[0]
        missing = _ID if raw_id is None else _DUE
        job_id = msg_id if raw_id is None else unquote(raw_id)
        return Malformed(
            salvage_message(job_id, lane, priority, stored_number(raw_due, float), body),
            f"stored message has no {missing} header",
        )
    due = stored_number(raw_due, float)
    return read_message(unquote(raw_id), lane, priority, raw_due if due is None else due, body)


def _found(raws: Sequence[Any]) -> list[Any]:
    """The messages of gathered ``get_msg`` calls, skipping those not found."""
    out = []
    for raw in raws:
        if isinstance(raw, BaseException):
            if _not_found(raw):
                continue
            raise raw
        out.append(raw)
    return out


def _not_found(exc: BaseException) -> bool:
    """Whether a JetStream API error says the message is not there (err_code 10037
    "no message found" from a get, 10057 from a delete)."""
    return isinstance(exc, nats.js.errors.NotFoundError) or (
        isinstance(exc, nats.js.errors.APIError) and exc.err_code in (10037, 10057)
    )


def _dead_letter(raw: Any) -> DeadLetter:
    """A dead letter from a message of the dead-letter stream."""
    h = raw.headers or {}
    message = salvage_message(
        unquote(h.get(_ID, "")),
        unquote(h.get("Jm-Lane", "")),
        stored_number(h.get("Jm-Priority"), int),
        stored_number(h.get(_DUE), float),
        raw.data or b"",
    )
    reason = unquote(h.get("Jm-Reason", ""))
    return DeadLetter(message, reason, stored_number(h.get("Jm-At"), float) or 0.0, raw.seq)
