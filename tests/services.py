"""The real services integration tests use, and how a missing one is treated.

Locally a service that is not running skips the tests that need it; in CI (``CI=true``)
it fails them, so a green CI run always exercised every backend.
"""

from __future__ import annotations

import os
import socket

import pytest

POSTGRES_URL = os.environ.get(
    "JOBMASTER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("JOBMASTER_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("JOBMASTER_TEST_REDIS", "redis://127.0.0.1:6379/15")
NATS_URL = os.environ.get("JOBMASTER_TEST_NATS", "nats://127.0.0.1:4222")
RABBITMQ_URL = os.environ.get(
    "JOBMASTER_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/%2F"
)

_PORTS = {"postgres": 5432, "mysql": 3306, "redis": 6379, "nats": 4222, "rabbitmq": 5672}


def in_ci() -> bool:
    """True when running under CI, where every service must be present."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(service: str) -> None:
    """Skip (locally) or fail (in CI) the calling test if ``service`` is not reachable."""
    port = _PORTS[service]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return
    except OSError as exc:
        message = f"{service} is not reachable on 127.0.0.1:{port} ({exc})"
    if in_ci():
        pytest.fail(message + "; CI needs every service running")
    pytest.skip(message)
