"""Crash recovery on a PostgreSQL master with a RabbitMQ agent: a worker killed with
SIGKILL mid-job loses its connection, RabbitMQ hands its unacknowledged job back, and
another worker runs it again."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from jobmaster import JobStatus
from tests.conftest import Stack
from tests.integration.test_worker import (  # noqa: F401 - collected here on this stack
    test_kill_9_of_worker_mid_job_runs_the_job_again,
)

pytest.importorskip("pika")


@pytest.fixture
def stack(stack_factory: Callable[..., Stack]) -> Stack:
    """A PostgreSQL master with a RabbitMQ agent."""
    return stack_factory("rabbitmq")


def test_jobs_run_on_a_worker_with_a_rabbitmq_agent(stack: Stack) -> None:
    app = stack.app()
    handles = [app.definition("add").delay(x=i, y=1) for i in range(20)]
    stack.worker("-c", "2")
    assert [h.wait(timeout=60).result for h in handles] == [i + 1 for i in range(20)]
    assert {h.status() for h in handles} == {JobStatus.SUCCEEDED}
