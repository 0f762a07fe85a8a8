"""The definitions registry: workers register what they run in the master, producers
without the code enqueue by id through it (real worker processes, real masters)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobmaster import App, JobStatus
from jobmaster.exceptions import ArgumentsError, UnknownDefinitionError
from jobmaster.master import Master
from jobmaster.registry import Definitions
from tests.conftest import Stack, wait_until
from tests.integration.test_master import BACKENDS, _fresh_database

MASTERS = ["sqlite", "postgres"]
WORKER_APP = "tests.fixtures.registryapp"


@pytest.fixture(params=sorted(BACKENDS))
def master(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Master]:
    for url in _fresh_database(request.param, tmp_path):
        m = Master(url, auto_migrate=False)
        m.migrate()
        yield m
        m.dispose()


def _row(definition_id: str, at: datetime, **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "cluster": "c1", "definition_id": definition_id,
        "parameters": [{"name": "x", "kind": "POSITIONAL_OR_KEYWORD", "required": True,
                        "annotation": "int"}],
        "options": {"lane": "math"}, "lanes": ["default"], "hostname": "h1",
        "worker": "c1@h1:1", "registered_at": at, "last_seen": at,
    }
    row.update(changes)
    return row


def test_register_upserts_one_batch_per_cluster_and_id(master: Master) -> None:
    first = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    master.register_definitions([_row("add", first), _row("mul", first),
                                 _row("add", first, cluster="c2", hostname="other")])
    later = first + timedelta(minutes=5)
    master.register_definitions([_row("add", later, lanes=["default", "math"],
                                      worker="c1@h2:2", hostname="h2",
                                      options={"lane": "math", "max_retries": 4})])

    rows = master.definitions("c1")
    assert [r["definition_id"] for r in rows] == ["add", "mul"]
    add = master.definition("c1", "add")
    assert add is not None
    assert add["registered_at"] == first  # kept on re-register
    assert add["last_seen"] == later
    assert add["lanes"] == ["default", "math"]
    assert add["options"] == {"lane": "math", "max_retries": 4}
    assert (add["hostname"], add["worker"]) == ("h2", "c1@h2:2")
    assert master.definition("c1", "mul")["last_seen"] == first  # type: ignore[index]
    assert master.definition("c2", "add")["hostname"] == "other"  # type: ignore[index]
    assert master.definition("c1", "nope") is None
    assert master.definitions("c3") == []


@pytest.fixture(params=MASTERS)
def stack(request: pytest.FixtureRequest, stack_factory: Callable[..., Stack]) -> Stack:
    return stack_factory(request.param)


def _registered(app: App, count: int) -> None:
    wait_until(lambda: len(app.definitions.list()) >= count, timeout=60,
               what="the worker to register its definitions")


def test_a_producer_without_the_code_enqueues_through_the_registry(stack: Stack) -> None:
    stack.worker("-c", "1", "--lane", "default,emails", app=WORKER_APP)
    producer = stack.app("tests.fixtures.producerapp")
    try:
        assert isinstance(producer.definitions, Definitions)
        assert dict(producer.definitions) == {}  # no handler code in this process
        _registered(producer, 3)

        # what the worker registered: parameters (no JobContext), options, lanes
        listed = {d.id: d for d in producer.definitions.list()}
        assert sorted(listed) == ["add", "anything", "send-email"]
        email = producer.definitions.get_registered("send-email")
        assert email is not None and email == listed["send-email"]
        assert email.signature == "(to: str, subject: str = 'hello', cc: list[str] | None = None)"
        assert [(p.name, p.kind, p.required) for p in email.parameters] == [
            ("to", "POSITIONAL_OR_KEYWORD", True), ("subject", "POSITIONAL_OR_KEYWORD", False),
            ("cc", "KEYWORD_ONLY", False)]
        assert email.options == {"lane": "emails", "timeout": 30.0, "max_retries": 2,
                                 "retry_delay": 1.5, "metadata": {"category": "mail"}}
        assert email.lanes == ("default", "emails")
        assert email.worker.startswith(f"{producer.name}@")
        assert email.last_seen.tzinfo is not None
        assert email.last_seen >= email.registered_at
        anything = listed["anything"]
        amount = anything.parameters[0]
        assert (amount.name, amount.required, amount.has_default) == ("amount", False, False)
        assert anything.parameters[1].kind == "VAR_KEYWORD"
        assert producer.definitions.get_registered("nope") is None

        # known: runs, with the registered options as the definition's defaults
        handle = producer.enqueue("send-email", kwargs={"to": "a@b.c"})
        job = handle.wait(timeout=60)
        assert job.status is JobStatus.SUCCEEDED, job.error
        assert job.result == "sent 'hello' to a@b.c (attempt 1)"
        assert (job.lane, job.max_retries, job.timeout) == ("emails", 2, 30.0)
        assert job.metadata == {"category": "mail"}

        # call options still override, dict options merge
        job = producer.enqueue("send-email", kwargs={"to": "x@y.z", "subject": "hi"},
                               max_retries=0, metadata={"tenant": "acme"}).wait(timeout=60)
        assert job.result == "sent 'hi' to x@y.z (attempt 1)"
        assert job.max_retries == 0
        assert job.metadata == {"category": "mail", "tenant": "acme"}
        assert producer.enqueue("add", kwargs={"x": 2}).wait(timeout=60).result == 3
        assert producer.enqueue("anything", kwargs={"b": 1, "a": 2}).wait(
            timeout=60).result == ["a", "b"]

        # a typo is refused naming the close match; nothing is enqueued
        with pytest.raises(UnknownDefinitionError, match="did you mean 'send-email'"):
            producer.enqueue("send-emial", kwargs={"to": "a@b.c"})
        # arguments that do not fit the registered parameters are refused, named
        with pytest.raises(ArgumentsError) as refused:
            producer.enqueue("send-email", kwargs={"too": "a@b.c", "subject": "s"})
        assert "missing required argument(s) 'to'" in str(refused.value)
        assert "unexpected argument(s) 'too'" in str(refused.value)
        with pytest.raises(ArgumentsError, match="positional"):
            producer.enqueue("add", args=(1, 2))
        assert producer.jobs.count() == 4  # the refused calls stored nothing

        # the start-up banner names the definitions served, per lane
        log = stack.worker_log(0)
        assert "lane default: add, anything" in log
        assert "lane emails: send-email" in log
    finally:
        producer.close()


def test_unknown_ids_are_refused_with_matches_from_the_registry_and_this_app(
        tmp_path: Path) -> None:
    app = App("c1", master=f"sqlite:///{tmp_path}/m.db", agents=f"sqlite:///{tmp_path}/a.db")
    try:
        @app.job(definition_id="resize-image")
        def resize_image(path: str) -> None: ...

        with pytest.raises(UnknownDefinitionError) as nothing:
            app.enqueue("send-email", kwargs={})
        assert "did you mean" not in str(nothing.value)
        assert "registry" in str(nothing.value)

        now = datetime.now(UTC)
        app.master.register_definitions([_row("send-email", now, options={}),
                                         _row("send-emails-daily", now, cluster="c2")])
        with pytest.raises(UnknownDefinitionError, match="did you mean 'send-email'\\?"):
            app.enqueue("send-emial", kwargs={})
        with pytest.raises(UnknownDefinitionError, match="did you mean 'resize-image'"):
            app.enqueue("resize-imag", kwargs={})
        # another cluster's registry is not this one's
        with pytest.raises(UnknownDefinitionError):
            app.enqueue("send-emails-daily", kwargs={"x": 1})
        handle = app.enqueue("send-email", kwargs={"x": 1})
        app.flush()
        job = app.jobs.get(handle.id)
        assert (job.definition_id, job.kwargs, job.status) == (
            "send-email", {"x": 1}, JobStatus.QUEUED)
    finally:
        app.close()


def test_a_refresh_keeps_registration_cheap_and_current(tmp_path: Path) -> None:
    """A definition first registered by a worker that is gone reappears when a worker
    registering it starts: the registry follows the live workers."""
    from jobmaster.worker.supervisor import Worker

    app = App("c1", master=f"sqlite:///{tmp_path}/m.db", agents=f"sqlite:///{tmp_path}/a.db")
    try:
        @app.job(definition_id="add", lane="math")
        def add(x: int, y: int) -> int:
            return x + y

        worker = Worker(app, pool="solo", lanes=["math"], install_signals=False)
        app.master.ensure_ready()
        worker._register_definitions()
        first = app.definitions.get_registered("add")
        assert first is not None and first.lanes == ("math",)
        assert first.options == {"lane": "math"}
        worker._register_definitions()  # within the refresh interval: no write
        assert app.definitions.get_registered("add") == first
        worker._next_registration = 0.0  # the interval ran out
        worker._register_definitions()
        again = app.definitions.get_registered("add")
        assert again is not None and again.last_seen > first.last_seen
        assert again.registered_at == first.registered_at
    finally:
        app.close()
