"""Every agent backend the conformance suite runs against, with the service it needs."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable

from tests.services import MYSQL_URL, NATS_URL, POSTGRES_URL, REDIS_URL, require


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
}
