"""The agent contract: the transport that carries jobs from producers to workers.

An agent holds jobs that are due now or soon, split into *buckets* (lane × priority). A
producer ``push``-es messages; a worker ``claim``-s a batch with a lease, then ``ack``-s
each job once its outcome is recorded in the master, ``retry``-s it at a later time, or
``dead_letter``-s it with a reason. A claimed job whose lease is neither acked nor extended
before it expires becomes claimable again: that is how a dead worker's jobs come back.

A new backend is one module with one ``Agent`` subclass that passes the conformance suite
(``tests/integration/test_agent_conformance.py``); ``resolve_agent`` finds it by URL scheme
and imports it only when used.

Every method takes and returns batches: one round trip per batch, never per job. Agents
must be safe to use from several threads of one process, and must not be used across
``fork``: a forked child calls ``App.after_fork`` and opens its own.
"""

from __future__ import annotations

import abc
import importlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from jobmaster.exceptions import ConfigurationError


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
    ``deliveries`` counts how many times it has been claimed, this time included."""

    message: AgentMessage
    receipt: Any = field(compare=False)
    deliveries: int = 1


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message moved aside, with the reason it could not be run."""

    message: AgentMessage
    reason: str
    at: float


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

    def __init__(self, url: str, *, name: str = "main", namespace: str = "jobmaster") -> None:
        self.url = url
        self.name = name
        self.namespace = namespace

    # -- producer side -------------------------------------------------------------
    @abc.abstractmethod
    def push(self, messages: Sequence[AgentMessage]) -> None:
        """Store messages; each becomes claimable at its ``due`` time. A message whose id is
        already held (waiting or claimed) is ignored, so pushing twice is harmless."""

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
        ``wait`` seconds for one before returning an empty list."""

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
        """Move claimed messages aside with the reason they cannot be run."""

    # -- inspection ----------------------------------------------------------------
    @abc.abstractmethod
    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The most recent dead-lettered messages, newest first."""

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


_BACKENDS: dict[str, str] = {
    "memory": "jobmaster.agents.memory:MemoryAgent",
    "sqlite": "jobmaster.agents.sqlite:SQLiteAgent",
    "redis": "jobmaster.agents.redis:RedisAgent",
    "rediss": "jobmaster.agents.redis:RedisAgent",
    "postgresql": "jobmaster.agents.postgres:PostgresAgent",
    "postgres": "jobmaster.agents.postgres:PostgresAgent",
    "postgresql+psycopg": "jobmaster.agents.postgres:PostgresAgent",
    "nats": "jobmaster.agents.nats:NatsAgent",
    "mysql": "jobmaster.agents.mysql:MySQLAgent",
    "mysql+pymysql": "jobmaster.agents.mysql:MySQLAgent",
    "mariadb": "jobmaster.agents.mysql:MySQLAgent",
    "mariadb+pymysql": "jobmaster.agents.mysql:MySQLAgent",
}

_EXTRAS = {
    "redis": "redis",
    "postgres": "postgres",
    "nats": "nats",
    "mysql": "mysql",
}


def agent_class(url: str) -> type[Agent]:
    """The ``Agent`` subclass for a URL, imported on first use."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    target = _BACKENDS.get(scheme)
    if target is None:
        known = ", ".join(sorted({s + "://" for s in _BACKENDS}))
        raise ConfigurationError(
            f"agent URL {redact_url(url)!r} has no known scheme; use one of {known}"
        )
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


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``, for logs and errors."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, _, host = rest.rpartition("@")
    if ":" in creds:
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
