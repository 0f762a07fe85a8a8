"""The agent contract: the transport that carries jobs from producers to workers.

An agent holds jobs that are due now or soon, split into *buckets* (lane × priority). A
producer ``push``-es messages; a worker ``claim``-s a batch with a lease, then ``ack``-s
each job once its outcome is recorded in the master, ``retry``-s it at a later time, or
``dead_letter``-s it with a reason. A claimed job whose lease is neither acked nor extended
before it expires becomes claimable again: that is how a dead worker's jobs come back.

A new backend is one module with one ``Agent`` subclass that passes the conformance suite
(``jobmaster.testing.agent_conformance``); ``resolve_agent`` finds it by URL scheme, among
the built-in backends and then the ``jobmaster.agents`` entry points, and imports it only
when used.

Every method takes and returns batches: one round trip per batch, never per job. Agents
must be safe to use from several threads of one process, and must not use a parent's
connections after ``fork``: each registers with ``jobmaster.forking.after_fork`` to drop
them in a child, which opens its own on first use.

Nothing read back from a backend is trusted: ``read_message`` turns a stored record into an
``AgentMessage`` or says what is wrong with it, and a claim moves such a record to the dead
letters (``Malformed``) instead of returning or raising it. ``storable_reason`` makes any
reason storable, and ``redact_url``/``redact_text`` keep credentials out of errors and logs.
"""

from __future__ import annotations

import abc
import importlib
import importlib.metadata
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, TypeVar
from urllib.parse import unquote

from jobmaster.exceptions import ConfigurationError

N = TypeVar("N", int, float)

log = logging.getLogger(__name__)

MAX_PRIORITY = 4
"""Priorities run from 0 (``Priority.VERY_LOW``) to this (``Priority.CRITICAL``)."""

ENTRY_POINT_GROUP = "jobmaster.agents"
"""Entry-point group of third-party agents: name = URL scheme, value = ``module:Class``."""

POLL_MIN = 0.002
"""First pause of an agent that polls for jobs (``poll_claims``), in seconds."""

POLL_MAX = 0.05
"""Longest pause of an agent that polls for jobs, in seconds."""

AGAIN_AFTER_MALFORMED = 100
"""How many times in a row a claim whose batch held only malformed records (moved to the
dead letters meanwhile) looks again at once, before it waits as if nothing were due."""


class Bucket(NamedTuple):
    """One shard of an agent: the jobs of one lane at one priority."""

    lane: str
    priority: int


@dataclass(frozen=True, slots=True)
class AgentMessage:
    """One job as an agent carries it: routing fields plus an opaque body.

    ``due`` is a Unix timestamp (seconds); the job is not claimable before it.
    ``body`` is the encoded envelope (``jobmaster.envelope``); agents never look inside.
    """

    id: str
    lane: str
    priority: int
    due: float
    body: bytes

    @property
    def bucket(self) -> Bucket:
        """The bucket this message lives in."""
        return Bucket(self.lane, self.priority)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A message claimed under a lease. ``receipt`` is the agent's own handle for it;
    ``deliveries`` counts how many times it has been claimed, this time included.
    ``fence``: the agent cannot promise that no other claim of the message is live (a
    NATS server restarted meanwhile may hand out messages it already gave), so the worker
    checks the master before running it (``jobmaster.fencing``), as it does for every
    delivery after the first."""

    message: AgentMessage
    receipt: Any = field(compare=False)
    deliveries: int = 1
    fence: bool = False


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message moved aside, with the reason it could not be run and when (``at``, a Unix
    timestamp). ``key`` is the backend's own handle for this one dead letter (a row's seq,
    a stream entry's id...): ``remove_dead_letters`` and paging go by it, so a message
    dead-lettered again under the same id is a different dead letter."""

    message: AgentMessage
    reason: str
    at: float
    key: Any = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do beyond the contract's minimum.

    ``notify``: claims wake up as soon as a job arrives (no polling delay).
    ``delayed``: holds jobs with a future ``due`` and releases them on time.
    ``durable``: pushed jobs survive a restart of the backend.
    ``shared``: several machines can use it (an embedded file or memory agent cannot).
    """

    notify: bool = False
    delayed: bool = True
    durable: bool = True
    shared: bool = True


class Agent(abc.ABC):
    """Base class of every agent backend. See the module docstring for the contract."""

    capabilities: Capabilities = Capabilities()

    reason_limit_bytes: ClassVar[int] = 64 * 1024
    """Longest dead-letter reason the backend stores, in UTF-8 bytes; ``dead_letter``
    passes every reason through ``storable_reason`` with this limit."""

    def __init__(self, url: str, *, name: str = "main", namespace: str = "jobmaster") -> None:
        self.url = url
        self.name = name
        self.namespace = namespace

    # -- producer side -------------------------------------------------------------
    @abc.abstractmethod
    def push(self, messages: Sequence[AgentMessage]) -> None:
        """Store messages; each becomes claimable at its ``due`` time. A message whose id is
        already held (waiting or claimed) is ignored, so pushing twice is harmless. A
        malformed message (see ``check_messages``) refuses the whole batch."""

    # -- consumer side -------------------------------------------------------------
    @abc.abstractmethod
    def claim(
        self,
        lanes: Sequence[str],
        limit: int,
        *,
        lease_seconds: float,
        consumer: str,
        wait: float = 0.0,
    ) -> list[Claimed]:
        """Claim up to ``limit`` due messages from ``lanes``, highest priority first, then
        earliest due, then first pushed. Each stays invisible to other claims for
        ``lease_seconds`` unless acked, retried or extended. If none is due, wait up to
        ``wait`` seconds for one before returning an empty list.

        A stored record that is not a well-formed message (``read_message``) is never
        returned and never raised: the agent moves it to its dead letters with the reason,
        or deletes it with an ERROR log when it cannot tell which job it was."""

    @abc.abstractmethod
    def ack(self, claims: Sequence[Claimed]) -> None:
        """Forget claimed messages: their outcome is recorded elsewhere."""

    @abc.abstractmethod
    def retry(self, items: Sequence[tuple[Claimed, AgentMessage]]) -> None:
        """Replace each claimed message with a new version (new body, new ``due``) and
        release the lease. With the same message and ``due`` now, this hands a job back."""

    @abc.abstractmethod
    def extend(self, claims: Sequence[Claimed], lease_seconds: float) -> None:
        """Renew the leases of claims still being worked on (the worker's heartbeat)."""

    @abc.abstractmethod
    def dead_letter(self, items: Sequence[tuple[Claimed, str]]) -> None:
        """Move claimed messages aside with the reason they cannot be run. Any ``str`` is a
        valid reason: it is stored as ``storable_reason(reason, self.reason_limit_bytes)``."""

    # -- dead letters ----------------------------------------------------------------
    # Operators list, requeue and purge dead letters. Requeueing is "push, then remove":
    # ``push`` ignores an id still held, so repeating a requeue cut short between the two
    # never holds a job twice, and a crash in between leaves the message in the dead
    # letters as well as in the queue (it may run again: at-least-once), never in neither.
    # ``remove_dead_letters`` goes by ``DeadLetter.key``, so a job requeued, run and
    # dead-lettered again before the removal keeps its new dead letter.
    @abc.abstractmethod
    def dead_letters(
        self, limit: int = 100, *, before: DeadLetter | None = None
    ) -> list[DeadLetter]:
        """The most recent dead-lettered messages, newest first, at most ``limit``; with
        ``before`` (the last dead letter of a previous page), the ones older than it. One
        round trip per page."""

    def find_dead_letters(self, ids: Sequence[str]) -> list[DeadLetter]:
        """The dead letters of these message ids, newest first (none for an id without
        one; a backend may return only the newest of several under one id). One round trip
        per batch."""
        raise NotImplementedError(f"{type(self).__name__} cannot look up dead letters by id")

    def remove_dead_letters(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        """Delete these dead letters (matched by ``key``, as ``dead_letters`` or
        ``find_dead_letters`` returned them); return those that were still there, so each
        is removed by one caller only. One round trip per batch."""
        raise NotImplementedError(f"{type(self).__name__} cannot remove dead letters")

    def purge_dead_letters(self, before: float | None = None) -> int:
        """Delete every dead letter, or those dead-lettered before ``before`` (a Unix
        timestamp); return how many."""
        raise NotImplementedError(f"{type(self).__name__} cannot purge dead letters")

    # -- inspection ----------------------------------------------------------------
    def scan(self, after: str | None = None, limit: int = 500
             ) -> tuple[list[tuple[str, bytes]], str | None]:
        """A page of the messages held, as ``(id, body)``, and the cursor of the next page
        (``None`` after the last). Beat reads the agents this way to find jobs that reached
        an agent but not the master. A backend without a way to list what it holds raises
        ``NotImplementedError``."""
        raise NotImplementedError(f"{type(self).__name__} cannot list the messages it holds")


    @abc.abstractmethod
    def length(self, bucket: Bucket | None = None) -> int:
        """Messages held (waiting or claimed) in one bucket, or in the whole agent."""

    @abc.abstractmethod
    def purge(self) -> int:
        """Drop every message and dead letter of this agent's namespace; return how many
        messages were dropped. For tests and operators, never called by jobmaster itself."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. The agent may not be used afterwards."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {redact_url(self.url)}>"


# -- what a message must be -------------------------------------------------------------
_INF = math.inf


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def message_problem(
    id: object,  # noqa: A002 - the field's name
    lane: object,
    priority: object,
    due: object,
    body: object,
) -> str | None:
    """What keeps these fields from making a well-formed ``AgentMessage`` (``None`` if
    nothing): id a non-empty ``str``, lane a ``str``, priority an ``int`` 0..4, due a finite
    number, body bytes."""
    if not isinstance(id, str) or not id:
        return f"id {_show(id)}, not a non-empty string"
    if not isinstance(lane, str):
        return f"lane {_show(lane)}, not a string"
    if isinstance(priority, bool) or not isinstance(priority, int):
        return f"priority {_show(priority)}, not an int 0..{MAX_PRIORITY}"
    if not 0 <= priority <= MAX_PRIORITY:
        return f"priority {_show(priority)}, not an int 0..{MAX_PRIORITY}"
    if isinstance(due, bool) or not isinstance(due, int | float):
        return f"due time {_show(due)}, not a number"
    if not -_INF < due < _INF:
        return f"due time {_show(due)}, not a finite number"
    if not isinstance(body, bytes | bytearray | memoryview):
        return f"body of type {type(body).__name__}, not bytes"
    return None


def check_messages(messages: Sequence[AgentMessage]) -> None:
    """Refuse a batch holding a malformed message (``ConfigurationError`` naming it and what
    is wrong) before anything of it is stored. Agents call it first thing in ``push`` and
    ``retry``."""
    for m in messages:
        if (
            type(m.id) is str
            and m.id
            and type(m.lane) is str
            and type(m.body) is bytes
            and type(m.due) is float
            and -_INF < m.due < _INF
            and type(m.priority) is int
            and 0 <= m.priority <= MAX_PRIORITY
        ):
            continue  # the common case, checked quickly
        problem = message_problem(m.id, m.lane, m.priority, m.due, m.body)
        if problem is not None:
            raise ConfigurationError(
                f"message {_show(m.id)} has {problem}; nothing of this batch was stored"
            )


_PRIORITIES = frozenset(range(MAX_PRIORITY + 1))


@dataclass(frozen=True, slots=True)
class Malformed:
    """A stored record that is not a well-formed message.

    ``reason`` says what is wrong ("stored record has priority 'x', not an int 0..4");
    ``message`` is what can be kept of it for the dead letters (unusable fields replaced:
    text decoded with replacement characters, priority 0, due 0.0, body empty)."""

    message: AgentMessage
    reason: str


def read_message(
    id: object,  # noqa: A002 - the field's name
    lane: object,
    priority: object,
    due: object,
    body: object,
) -> AgentMessage | Malformed:
    """The message a stored record holds, or ``Malformed`` saying what is wrong with it."""
    if (
        type(id) is str
        and id
        and type(lane) is str
        and type(priority) is int
        and 0 <= priority <= MAX_PRIORITY
        and type(due) is float
        and -_INF < due < _INF
        and type(body) is bytes
    ):
        return AgentMessage(id, lane, priority, due, body)  # the common case, checked quickly
    problem = message_problem(id, lane, priority, due, body)
    if problem is None:  # well-formed, in other types (an int due, a memoryview body...)
        assert isinstance(id, str) and isinstance(lane, str)
        assert isinstance(priority, int) and isinstance(due, int | float)
        assert isinstance(body, bytes | bytearray | memoryview)
        return AgentMessage(id, lane, int(priority), float(due), bytes(body))
    return Malformed(salvage_message(id, lane, priority, due, body), "stored record has " + problem)


def salvage_message(
    id: object,  # noqa: A002 - the field's name
    lane: object,
    priority: object,
    due: object,
    body: object,
) -> AgentMessage:
    """What can be kept of a malformed record, as a message any backend can store."""
    keep_priority = (
        priority
        if isinstance(priority, int) and not isinstance(priority, bool) and priority in _PRIORITIES
        else 0
    )
    keep_due = (
        float(due)
        if isinstance(due, int | float) and not isinstance(due, bool) and -_INF < due < _INF
        else 0.0
    )
    return AgentMessage(_salvage_text(id), _salvage_text(lane), int(keep_priority), keep_due,
                        _salvage_bytes(body))


def stored_number(raw: object, kind: Callable[[Any], N]) -> N | None:
    """``kind(raw)`` (``int`` or ``float`` of a stored text or bytes), or ``None`` if
    ``raw`` is missing or not such a number; for reading records back leniently."""
    if raw is None:
        return None
    try:
        return kind(raw)
    except (TypeError, ValueError, OverflowError):
        return None


def _salvage_text(value: object) -> str:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else repr(value)


def _salvage_bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return b"" if value is None else repr(value).encode()


def bury_malformed(
    agent: Agent,
    items: Sequence[tuple[Claimed, str]],
    bury: Callable[[Sequence[tuple[Claimed, str]]], None],
) -> bool:
    """Move the malformed records a claim met to the dead letters with ``bury`` (the
    agent's own dead-lettering); True if that worked. If it fails, ``unburied`` logs it and
    the records stay leased (the claim after their lease meets them again), so the claim
    still returns its well-formed jobs."""
    try:
        bury(items)
    except Exception as exc:  # noqa: BLE001 - whatever failed, the good jobs are returned
        unburied(agent, items, exc)
        return False
    return True


def unburied(agent: Agent, items: Sequence[tuple[Claimed, str]], exc: BaseException) -> None:
    """Log (ERROR) that malformed records could not be moved to the dead letters."""
    log.error(
        "%r could not move %d malformed record(s) to its dead letters (%s): %s; they are "
        "met again when their lease ends",
        agent,
        len(items),
        redact_text(str(exc) or type(exc).__name__, agent.url),
        "; ".join(reason for _, reason in items[:5]),
    )


# -- reasons -------------------------------------------------------------------------------
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # every control character but \t \n
_SURROGATE = re.compile("[\ud800-\udfff]")


def storable_reason(reason: str, limit_bytes: int) -> str:
    """``reason`` as any backend can store it: control characters other than ``\\n`` and
    ``\\t`` removed (NUL included), characters UTF-8 cannot encode (lone surrogates) replaced
    by U+FFFD, and at most ``limit_bytes`` of UTF-8, cut on a character boundary and ended
    with a marker saying how long it was."""
    text = reason if isinstance(reason, str) else str(reason)
    text = _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))
    if len(text) * 4 <= limit_bytes:
        return text  # short enough whatever its characters
    data = text.encode()
    if len(data) <= limit_bytes:
        return text
    marker = f"\n… [reason cut: {len(data)} bytes in all]"
    keep = limit_bytes - len(marker.encode())
    if keep <= 0:
        return data[: max(limit_bytes, 0)].decode("utf-8", "ignore")
    return data[:keep].decode("utf-8", "ignore") + marker


# -- waiting -------------------------------------------------------------------------------

def poll_claims(claim_once: Callable[[], tuple[list[Claimed], bool]], wait: float) -> list[Claimed]:
    """Call ``claim_once`` until it claims something or ``wait`` seconds have passed, pausing
    ``POLL_MIN`` seconds at first and backing off to ``POLL_MAX``.

    ``claim_once`` returns its claims and whether it moved malformed records aside; a batch
    that held only those is followed by another claim at once (they are gone now), so a
    claim returns empty only when nothing well-formed was due."""
    deadline = time.monotonic() + wait
    pause = POLL_MIN
    again = AGAIN_AFTER_MALFORMED
    while True:
        claimed, removed = claim_once()
        if claimed:
            return claimed
        if removed and again > 0:
            again -= 1
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return []
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, POLL_MAX)


# -- finding a backend ---------------------------------------------------------------------
_BACKENDS: dict[str, str] = {
    "memory": "jobmaster.agents.memory:MemoryAgent",
    "sqlite": "jobmaster.agents.sqlite:SQLiteAgent",
    "redis": "jobmaster.agents.redis:RedisAgent",
    "rediss": "jobmaster.agents.redis:RedisAgent",
    "postgresql": "jobmaster.agents.postgres:PostgresAgent",
    "postgres": "jobmaster.agents.postgres:PostgresAgent",
    "postgresql+psycopg": "jobmaster.agents.postgres:PostgresAgent",
    "nats": "jobmaster.agents.nats:NatsAgent",
    "tls": "jobmaster.agents.nats:NatsAgent",
    "mysql": "jobmaster.agents.mysql:MySQLAgent",
    "mysql+pymysql": "jobmaster.agents.mysql:MySQLAgent",
    "mariadb": "jobmaster.agents.mysql:MySQLAgent",
    "mariadb+pymysql": "jobmaster.agents.mysql:MySQLAgent",
}

_EXTRAS = {
    "redis": "redis",
    "postgres": "postgres",
    "nats": "nats",
    "tls": "nats",
    "mysql": "mysql",
}


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Installed third-party agents by URL scheme (lower case); the first one wins."""
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name.lower(), ep)
    return found


def agent_class(url: str) -> type[Agent]:
    """The ``Agent`` subclass for a URL, imported on first use: a built-in backend, else
    the ``jobmaster.agents`` entry point named by the URL's scheme."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    target = _BACKENDS.get(scheme)
    if target is not None:
        return _import_builtin(scheme, target)
    installed = _entry_points()
    ep = installed.get(scheme) if scheme else None
    if ep is None:
        builtin = ", ".join(sorted(s + "://" for s in _BACKENDS))
        others = ", ".join(f"{s}:// ({e.value})" for s, e in sorted(installed.items()))
        raise ConfigurationError(
            f"agent URL {redact_url(url)!r} has no known scheme; built-in: {builtin}; "
            f"installed through the {ENTRY_POINT_GROUP!r} entry points: {others or 'none'}"
        )
    try:
        loaded = ep.load()
    except Exception as exc:  # an ImportError, or anything its import raised
        raise ConfigurationError(
            f"the {scheme}:// agent ({ep.value}, entry point {ep.name!r} in group "
            f"{ENTRY_POINT_GROUP!r}) cannot be loaded: {type(exc).__name__}: {exc}"
        ) from exc
    if not (isinstance(loaded, type) and issubclass(loaded, Agent)):
        raise ConfigurationError(
            f"the {scheme}:// agent entry point {ep.name!r} names {ep.value}, which is not a "
            "subclass of jobmaster.agents.Agent"
        )
    return loaded


def _import_builtin(scheme: str, target: str) -> type[Agent]:
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = _EXTRAS.get(module_name.rsplit(".", 1)[-1])
        hint = f"; install it with: pip install 'jobmaster[{extra}]'" if extra else ""
        raise ConfigurationError(
            f"the {scheme}:// agent needs a library that is not installed ({exc.name}){hint}"
        ) from exc
    cls: type[Agent] = getattr(module, class_name)
    return cls


def resolve_agent(url: str, *, name: str = "main", namespace: str = "jobmaster") -> Agent:
    """Build the agent a URL names (``redis://...``, ``sqlite:///file.db``, ``memory://``...)."""
    return agent_class(url)(url, name=name, namespace=namespace)


_NAMESPACE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}\Z")


def table_prefix(namespace: str) -> str:
    """The table-name prefix of a namespace for SQL agents (validated, lower case)."""
    if not _NAMESPACE.match(namespace):
        raise ConfigurationError(
            f"namespace={namespace!r} must start with a letter or _, hold only letters, "
            "digits and _, and be at most 40 characters (it prefixes table names)"
        )
    return namespace.lower()


# -- credentials out of sight ----------------------------------------------------------------
_SECRET_PARAM = re.compile(r"pass|pwd|token|secret|key|auth|cred|sig", re.IGNORECASE)

# Schemes whose userinfo without a colon is a secret (a password or token), not a user name.
_BARE_SECRET_SCHEMES = frozenset(
    {"redis", "rediss", "valkey", "valkeys", "nats", "tls", "ws", "wss"}
)


def _split_url(url: str) -> tuple[str, str | None, str, str] | None:
    """``scheme``, ``userinfo`` (``None`` without an ``@``), the rest of the authority and
    the path, and the query of one URL; ``None`` if it has no ``scheme://``. Userinfo runs to
    the last ``@`` before the query (so an unescaped ``/`` in a password stays inside it)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    q = rest.find("?")
    end = len(rest) if q < 0 else q
    at = rest.rfind("@", 0, end)
    if at < 0 and q >= 0:
        last = rest.rfind("@")
        if last > q and "=" not in rest[q:last]:  # an unescaped '?' inside the password
            at = last
            q = rest.find("?", at)
            end = len(rest) if q < 0 else q
    userinfo = rest[:at] if at >= 0 else None
    return scheme, userinfo, rest[at + 1 : end], rest[end:]


def _urls(text: str) -> list[str]:
    """The URLs of a comma-separated server list (``nats://a:4222,nats://b:4222``)."""
    if "," in text and text.count("://") > 1:
        return text.split(",")
    return [text]


def redact_url(url: str) -> str:
    """The URL with its credentials replaced by ``***``, for logs, errors and reprs.

    A password (``user:pw@``) becomes ``user:***@``; a userinfo without a colon is kept
    as a user name, except for schemes where it is the secret itself (``redis://pw@``,
    ``nats://token@``); query parameters named like a credential (``password``, ``token``,
    ``secret``, ``key``, ``auth``...) keep their name only. A comma-separated list of
    URLs is redacted URL by URL."""
    if "://" not in url:
        return url
    parts = _urls(url)
    if len(parts) > 1:
        return ",".join(redact_url(part) for part in parts)
    split = _split_url(url)
    if split is None:
        return url
    scheme, userinfo, hostpath, query = split
    out = f"{scheme}://"
    if userinfo is not None:
        user, colon, password = userinfo.partition(":")
        if colon:
            out += f"{user}:***@" if password else f"{user}:@"
        elif scheme.lower() in _BARE_SECRET_SCHEMES and user:
            out += "***@"
        else:
            out += f"{user}@"
    out += hostpath
    if query:
        out += _redact_query(query)
    return out


def _redact_query(query: str) -> str:
    """``?a=1&password=x#frag`` with the values of credential-like names replaced."""
    mark, body = query[:1], query[1:]
    body, hash_, fragment = body.partition("#")
    items = []
    for item in body.split("&"):
        name, eq, value = item.partition("=")
        if eq and value and _SECRET_PARAM.search(unquote(name)):
            item = f"{name}=***"
        items.append(item)
    return mark + "&".join(items) + hash_ + fragment


def url_secrets(url: str) -> list[str]:
    """The credentials a URL holds (each as written and percent-decoded), longest first."""
    found: set[str] = set()
    for one in _urls(url):
        split = _split_url(one)
        if split is None:
            continue
        scheme, userinfo, _, query = split
        user, colon, password = (userinfo or "").partition(":")
        if colon:
            found.add(password)
        elif scheme.lower() in _BARE_SECRET_SCHEMES:
            found.add(user)
        for item in query[1:].partition("#")[0].split("&"):
            name, eq, value = item.partition("=")
            if eq and _SECRET_PARAM.search(unquote(name)):
                found.add(value)
    values = {v for s in found for v in (s, unquote(s)) if len(v) >= 2}
    return sorted(values, key=len, reverse=True)


def redact_text(text: str, url: str) -> str:
    """``text`` (a driver's error message, say) with every credential of ``url`` replaced
    by ``***``."""
    for secret in url_secrets(url):
        text = text.replace(secret, "***")
    return text
