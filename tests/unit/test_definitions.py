"""Job definitions: decorating, ids, context injection, argument binding, per-call options."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jobmaster import (
    App,
    ArgumentsError,
    ConfigurationError,
    DefinitionError,
    EnqueueError,
    JobContext,
    JobDefinition,
    JobHandle,
    JobStatus,
    Priority,
    UnknownDefinitionError,
)
from jobmaster.envelope import Envelope

UNREACHABLE_MASTER = "postgresql+psycopg://nobody@127.0.0.1:1/x"
UNREACHABLE_AGENT = "redis://127.0.0.1:1/0"


@pytest.fixture(autouse=True)
def _no_jobmaster_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("JOBMASTER_"):
            monkeypatch.delenv(key)


def make_app(tmp_path: Path, **options: Any) -> App:
    return App("unit-defs", master=f"sqlite:///{tmp_path}/m.db",
               agents=options.pop("agents", {"main": f"memory://{uuid.uuid4().hex}"}),
               **options)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    a = make_app(tmp_path)
    yield a
    a.close()


@pytest.fixture
def add(app: App) -> JobDefinition[Any, int]:
    @app.job(definition_id="add")
    def add(x: int, y: int) -> int:
        return x + y

    return add


def assert_nothing_stored(app: App) -> None:
    assert app.agent().length() == 0
    app.flush()
    assert app.jobs.list() == []


def pushed(app: App, agent: str | None = None) -> list[Envelope]:
    claims = app.agent(agent).claim(["default", "batch", "emails"], 100, lease_seconds=30.0,
                                    consumer="test")
    return [Envelope.from_bytes(c.message.body) for c in claims]


def multiply(a: int, b: int = 2) -> int:
    return a * b


# -- decorating does no I/O -------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network I/O attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.usefixtures("no_network")
def test_decorating_does_no_io() -> None:
    app = App("offline", master=UNREACHABLE_MASTER, agents={"main": UNREACHABLE_AGENT,
                                                            "other": UNREACHABLE_AGENT})

    @app.job(definition_id="send-email", lane="emails", priority=Priority.HIGH, timeout=30,
             max_retries=3, retry_delay=10, retry_backoff=2.0, metadata={"category": "mail"},
             agent="other")
    def send_email(to: str, subject: str = "") -> str:
        return f"{to}:{subject}"

    @app.job
    def bare(x: int) -> int:
        return x

    @app.job()
    def report(ctx: JobContext, day: str) -> str:
        return day

    assert app.definition("send-email") is send_email
    assert send_email.lane == "emails"
    assert send_email.priority == Priority.HIGH
    assert send_email.timeout == 30.0
    assert send_email.max_retries == 3
    assert send_email.retry_delay == 10.0
    assert send_email.retry_backoff == 2.0
    assert send_email.metadata == {"category": "mail"}
    assert send_email.agent == "other"
    assert send_email.bind(("a@b.c",)) == {"to": "a@b.c"}
    assert send_email("a@b.c", subject="hi") == "a@b.c:hi"
    assert bare(3) == 3
    assert report(day="mon") == "mon"
    assert app._master is None and app._agents == {}
    assert set(app.definitions) == {"send-email", f"{__name__}.test_decorating_does_no_io."
                                    "<locals>.bare", f"{__name__}.test_decorating_does_no_io."
                                    "<locals>.report"}


@pytest.mark.usefixtures("no_network")
def test_making_an_app_and_reading_its_config_does_no_io() -> None:
    app = App("offline", master=UNREACHABLE_MASTER, agents=UNREACHABLE_AGENT)
    assert app.config.agents == {"main": UNREACHABLE_AGENT}
    assert app.name == "offline"
    assert "offline" in repr(app)
    assert app.serializer.name == "json"


# -- definition ids ---------------------------------------------------------------------


def test_default_definition_id_is_module_dot_qualname(app: App) -> None:
    definition = app.job(multiply)
    assert definition.definition_id == f"{__name__}.multiply"
    assert definition.definition_id.endswith("test_definitions.multiply")
    assert app.definition(f"{__name__}.multiply") is definition

    @app.job()
    def inner() -> None: ...

    assert inner.definition_id == f"{__name__}.test_default_definition_id_is_module_dot_qualname" \
        ".<locals>.inner"


def test_definition_keeps_the_function_identity(app: App) -> None:
    definition = app.job(multiply)
    assert definition.__name__ == "multiply"
    assert definition.__qualname__ == "multiply"
    assert definition.__module__ == __name__
    assert definition.__wrapped__ is multiply
    assert definition.func is multiply
    assert "multiply" in repr(definition)


def test_duplicate_definition_id_names_both(app: App) -> None:
    @app.job(definition_id="dup")
    def first_handler() -> None: ...

    with pytest.raises(DefinitionError) as info:

        @app.job(definition_id="dup")
        def second_handler() -> None: ...

    message = str(info.value)
    assert "'dup'" in message
    assert "first_handler" in message
    assert "second_handler" in message
    assert "definition_id" in message
    assert app.definition("dup").func is first_handler.func


def test_same_function_registered_twice_is_not_a_duplicate(app: App) -> None:
    first = app.job(definition_id="same")(multiply)
    second = app.job(definition_id="same")(multiply)
    assert first.func is second.func is multiply
    assert app.definition("same") is second


@pytest.mark.parametrize("bad", ["", "   ", "x" * 201, 5], ids=["empty", "blank", "long", "int"])
def test_bad_definition_id_is_refused(app: App, bad: Any) -> None:
    with pytest.raises(DefinitionError, match="definition_id"):
        app.job(definition_id=bad)(multiply)


def test_decorating_something_not_callable_is_refused(app: App) -> None:
    with pytest.raises(DefinitionError, match="functions"):
        app.job(definition_id="x")(42)  # type: ignore[call-overload]


def test_unknown_definition_lookup_lists_known(app: App, add: JobDefinition[Any, int]) -> None:
    with pytest.raises(UnknownDefinitionError) as info:
        app.definition("nope")
    assert "'nope'" in str(info.value)
    assert "add" in str(info.value)


# -- context injection ------------------------------------------------------------------


def test_context_parameter_is_detected_and_excluded_from_binding(app: App) -> None:
    @app.job(definition_id="report")
    def report(ctx: JobContext, day: str, pages: int = 3) -> str:
        return f"{day}/{pages}"

    assert report.context_param == "ctx"
    assert list(report.signature.parameters) == ["day", "pages"]
    assert report.bind(("mon",)) == {"day": "mon"}
    assert report.bind((), {"day": "mon", "pages": 4}) == {"day": "mon", "pages": 4}
    with pytest.raises(ArgumentsError, match="ctx"):
        report.bind((), {"day": "mon", "ctx": None})


def test_context_parameter_may_have_any_name_and_position(app: App) -> None:
    @app.job(definition_id="late-ctx")
    def late(day: str, job_context: JobContext) -> str:
        return f"{day}:{job_context.job_id}"

    assert late.context_param == "job_context"
    assert late.bind(("tue",)) == {"day": "tue"}
    assert late("tue") == "tue:local"


def test_no_context_parameter(app: App, add: JobDefinition[Any, int]) -> None:
    assert add.context_param is None


def test_calling_directly_injects_a_local_context(app: App) -> None:
    seen: list[JobContext] = []

    @app.job(definition_id="report", lane="reports", priority="high",
             metadata={"team": "ops"})
    def report(ctx: JobContext, day: str) -> str:
        seen.append(ctx)
        return day

    assert report(day="mon") == "mon"
    [ctx] = seen
    assert isinstance(ctx, JobContext)
    assert ctx.job_id == "local"
    assert ctx.definition_id == "report"
    assert ctx.attempt == 1
    assert ctx.lane == "reports"
    assert ctx.priority == int(Priority.HIGH)
    assert ctx.metadata == {"team": "ops"}
    assert ctx.enqueued_at.tzinfo is not None


def test_calling_directly_with_positional_argument_after_context(app: App) -> None:
    """``report("mon")`` type-checks (the ParamSpec excludes ctx), so it must run."""

    @app.job(definition_id="report")
    def report(ctx: JobContext, day: str) -> str:
        return f"{ctx.job_id}:{day}"

    assert report("mon") == "local:mon"


def test_calling_directly_with_an_explicit_context(app: App) -> None:
    @app.job(definition_id="report")
    def report(ctx: JobContext, day: str) -> str:
        return ctx.job_id

    mine = JobContext("abc", "report", 2, 3, "default", 2, {}, datetime.now(UTC))
    assert report(ctx=mine, day="mon") == "abc"


def test_calling_the_definition_runs_the_function(app: App, add: JobDefinition[Any, int]
                                                 ) -> None:
    assert add(1, 2) == 3
    assert add(x=2, y=5) == 7
    assert app._agents == {}  # nothing was enqueued
    with pytest.raises(TypeError):
        add(1)  # type: ignore[call-arg]


# -- signatures -------------------------------------------------------------------------


def test_var_positional_refused_at_decoration(app: App) -> None:
    with pytest.raises(DefinitionError) as info:

        @app.job(definition_id="star")
        def star(*items: int) -> int:
            return sum(items)

    assert "*items" in str(info.value)
    assert "'star'" in str(info.value)
    assert "star" not in app.definitions


def test_var_keyword_accepted_and_flattened(app: App) -> None:
    @app.job(definition_id="kw")
    def kw(a: int, **rest: Any) -> dict[str, Any]:
        return {"a": a, **rest}

    assert kw.bind((1,), {"b": 2, "c": 3}) == {"a": 1, "b": 2, "c": 3}
    handle = kw.delay(1, b=2)
    app.flush()
    assert app.jobs.get(handle.id).kwargs == {"a": 1, "b": 2}


def test_defaults_are_not_stored_unless_given(app: App) -> None:
    definition = app.job(definition_id="mul")(multiply)
    assert definition.bind((3,)) == {"a": 3}
    assert definition.bind((3, 4)) == {"a": 3, "b": 4}


# -- priorities -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Priority.LOW, Priority.LOW),
        ("high", Priority.HIGH),
        ("HIGH", Priority.HIGH),
        (" Critical ", Priority.CRITICAL),
        ("very-low", Priority.VERY_LOW),
        ("very low", Priority.VERY_LOW),
        ("VERY_LOW", Priority.VERY_LOW),
        (0, Priority.VERY_LOW),
        (2, Priority.MEDIUM),
        (4, Priority.CRITICAL),
    ],
)
def test_priority_coerce_accepts_names_and_ints(value: Any, expected: Priority) -> None:
    assert Priority.coerce(value) is expected


@pytest.mark.parametrize("bad", ["urgent", "", 5, -1, True, 2.0, None, [2]],
                         ids=repr)
def test_priority_coerce_refuses_others(bad: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        Priority.coerce(bad)
    message = str(info.value)
    assert f"priority={bad!r}" in message
    assert "VERY_LOW" in message and "CRITICAL" in message


def test_priority_coerce_names_the_argument() -> None:
    with pytest.raises(ConfigurationError, match="job_priority='x'"):
        Priority.coerce("x", "job_priority")


def test_priorities_are_ordered() -> None:
    assert Priority.VERY_LOW < Priority.LOW < Priority.MEDIUM < Priority.HIGH < Priority.CRITICAL


# -- decoration options -----------------------------------------------------------------


def test_unknown_agent_name_refused_at_decoration(app: App) -> None:
    with pytest.raises(ConfigurationError) as info:
        app.job(definition_id="x", agent="nope")(multiply)
    assert "'nope'" in str(info.value)
    assert "main" in str(info.value)
    assert "x" not in app.definitions


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"priority": "urgent"}, "priority='urgent'"),
        ({"lane": "a b"}, "lane='a b'"),
        ({"lane": ""}, "lane=''"),
        ({"timeout": -1}, "timeout=-1"),
        ({"timeout": 0}, "timeout=0"),
        ({"timeout": "30"}, "timeout='30'"),
        ({"max_retries": -1}, "max_retries=-1"),
        ({"max_retries": 1.5}, "max_retries=1.5"),
        ({"retry_delay": -1}, "retry_delay=-1"),
        ({"retry_backoff": 0.5}, "retry_backoff=0.5"),
        ({"metadata": {"tags": ["a"]}}, "metadata['tags']"),
        ({"metadata": {1: "a"}}, "metadata keys"),
        ({"metadata": ["a"]}, "metadata must be a dict"),
    ],
    ids=lambda v: str(v),
)
def test_bad_decoration_options_refused(app: App, options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        app.job(definition_id="x", **options)(multiply)
    assert named in str(info.value)
    assert "x" not in app.definitions


def test_durations_accept_timedelta_at_decoration(app: App) -> None:
    definition = app.job(definition_id="td", timeout=timedelta(minutes=1),
                         retry_delay=timedelta(seconds=1.5))(multiply)
    assert definition.timeout == 60.0
    assert definition.retry_delay == 1.5


# -- enqueue: binding and refusals ------------------------------------------------------


def test_delay_returns_a_handle_and_pushes(app: App, add: JobDefinition[Any, int]) -> None:
    handle = add.delay(x=1, y=2)
    assert isinstance(handle, JobHandle)
    assert handle.definition_id == "add"
    assert uuid.UUID(handle.id).version == 7
    assert handle.status() is JobStatus.QUEUED
    [env] = pushed(app)
    assert env.id == handle.id
    assert env.definition_id == "add"
    assert app.serializer.loads(env.payload) == {"x": 1, "y": 2}


def test_positional_args_bind_to_names(app: App, add: JobDefinition[Any, int]) -> None:
    h1 = add.delay(1, 2)
    h2 = add.delay(3, y=4)
    h3 = add.apply((5, 6))
    h4 = app.enqueue("add", kwargs={"y": 8, "x": 7})
    app.flush()
    kwargs = {h.id: app.jobs.get(h.id).kwargs for h in (h1, h2, h3, h4)}
    assert kwargs == {h1.id: {"x": 1, "y": 2}, h2.id: {"x": 3, "y": 4},
                      h3.id: {"x": 5, "y": 6}, h4.id: {"x": 7, "y": 8}}


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda d, a: d.delay(x=1), "'y'"),
        (lambda d, a: d.delay(1), "'y'"),
        (lambda d, a: d.delay(x=1, y=2, z=3), "'z'"),
        (lambda d, a: d.delay(1, 2, 3), "too many positional"),
        (lambda d, a: d.delay(1, x=1, y=2), "multiple values for argument 'x'"),
        (lambda d, a: d.apply(kwargs={"x": 1}), "'y'"),
        (lambda d, a: d.apply((1, 2, 3)), "too many positional"),
        (lambda d, a: d.apply(kwargs={"x": 1, "y": 2, "q": 0}), "'q'"),
        (lambda d, a: d.apply_after(5, x=1), "'y'"),
        (lambda d, a: d.apply_at(datetime.now(UTC), x=1, y=2, w=2), "'w'"),
        (lambda d, a: a.enqueue("add", kwargs={"x": 1}), "'y'"),
        (lambda d, a: a.enqueue("add", kwargs={"x": 1, "y": 2, "k": 1}), "'k'"),
        (lambda d, a: d.delay_many([{"x": 1, "y": 2}, {"x": 1}]), "'y'"),
    ],
    ids=["missing", "missing-positional", "unknown", "too-many", "twice", "apply-missing",
         "apply-too-many", "apply-unknown", "apply_after", "apply_at", "enqueue-missing",
         "enqueue-unknown", "delay_many"],
)
def test_arguments_that_do_not_bind_are_refused(app: App, add: JobDefinition[Any, int],
                                                call: Any, named: str) -> None:
    with pytest.raises(ArgumentsError) as info:
        call(add, app)
    assert named in str(info.value)
    assert "'add'" in str(info.value)
    assert isinstance(info.value, EnqueueError)
    assert_nothing_stored(app)


def test_enqueue_unknown_id_is_refused(app: App, add: JobDefinition[Any, int]) -> None:
    with pytest.raises(UnknownDefinitionError) as info:
        app.enqueue("unknown-id", kwargs={"x": 1})
    message = str(info.value)
    assert "'unknown-id'" in message
    assert "@app.job" in message
    assert "cluster=" in message
    assert_nothing_stored(app)


def test_enqueue_unknown_id_on_own_cluster_name_is_refused(app: App) -> None:
    with pytest.raises(UnknownDefinitionError, match="unknown-id"):
        app.enqueue("unknown-id", cluster=app.name)


def test_enqueue_on_an_unconfigured_cluster_is_refused(app: App) -> None:
    with pytest.raises(ConfigurationError, match="cluster='elsewhere'"):
        app.enqueue("anything", kwargs={}, cluster="elsewhere")
    assert_nothing_stored(app)


def test_enqueue_by_id_applies_the_definition(app: App) -> None:
    @app.job(definition_id="send-email", lane="emails", priority=Priority.HIGH,
             max_retries=3, metadata={"category": "mail"})
    def send_email(to: str, subject: str = "") -> None: ...

    handle = app.enqueue("send-email", kwargs={"to": "a@b.c"})
    [env] = pushed(app)
    assert env.id == handle.id
    assert env.lane == "emails"
    assert env.priority == int(Priority.HIGH)
    assert env.options.max_retries == 3
    assert env.options.metadata == {"category": "mail"}


# -- per-call options -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"priority": "urgent"}, ConfigurationError, "priority='urgent'"),
        ({"priority": 9}, ConfigurationError, "priority=9"),
        ({"lane": "a b"}, ConfigurationError, "lane='a b'"),
        ({"lane": "x" * 101}, ConfigurationError, "lane="),
        ({"timeout": -1}, ConfigurationError, "timeout=-1"),
        ({"timeout": "soon"}, ConfigurationError, "timeout='soon'"),
        ({"max_retries": -1}, ConfigurationError, "max_retries=-1"),
        ({"max_retries": True}, ConfigurationError, "max_retries=True"),
        ({"retry_delay": -2}, ConfigurationError, "retry_delay=-2"),
        ({"retry_backoff": 0}, ConfigurationError, "retry_backoff=0"),
        ({"metadata": {"tags": ["a", "b"]}}, ConfigurationError, "metadata['tags']"),
        ({"metadata": {"nested": {"a": 1}}}, ConfigurationError, "metadata['nested']"),
        ({"metadata": "source=api"}, ConfigurationError, "metadata must be a dict"),
        ({"at": datetime.now(UTC), "after": 5}, EnqueueError, "at= or after="),
        ({"at": "tomorrow"}, EnqueueError, "at='tomorrow'"),
        ({"after": -5}, ConfigurationError, "after=-5"),
        ({"job_key": ""}, EnqueueError, "job_key=''"),
        ({"job_key": "k" * 201}, EnqueueError, "job_key="),
        ({"job_key": 12}, EnqueueError, "job_key=12"),
        ({"agent": "nope"}, ConfigurationError, "agent='nope'"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
@pytest.mark.parametrize("how", ["apply", "enqueue"])
def test_bad_per_call_options_refused_and_nothing_stored(
    app: App, add: JobDefinition[Any, int], how: str, options: dict[str, Any],
    error: type[Exception], named: str,
) -> None:
    with pytest.raises(error) as info:
        if how == "apply":
            add.apply(kwargs={"x": 1, "y": 2}, **options)
        else:
            app.enqueue("add", kwargs={"x": 1, "y": 2}, **options)
    assert named in str(info.value)
    assert_nothing_stored(app)


def test_per_call_options_override_the_definition(tmp_path: Path) -> None:
    app = make_app(tmp_path, agents={"main": f"memory://{uuid.uuid4().hex}",
                                     "bulk": f"memory://{uuid.uuid4().hex}"})

    @app.job(definition_id="add", lane="emails", priority="high", timeout=5, max_retries=1,
             metadata={"a": 1})
    def add(x: int, y: int) -> int:
        return x + y

    handle = add.apply(kwargs={"x": 1, "y": 2}, priority=Priority.LOW, lane="batch",
                       metadata={"source": "api"}, timeout=10, max_retries=0,
                       retry_delay=timedelta(seconds=3), retry_backoff=1.5, agent="bulk")
    assert app.agent().length() == 0
    [env] = pushed(app, "bulk")
    assert env.id == handle.id
    assert env.lane == "batch"
    assert env.priority == int(Priority.LOW)
    assert env.timeout == 10.0
    assert env.options.max_retries == 0
    assert env.options.retry_delay == 3.0
    assert env.options.retry_backoff == 1.5
    assert env.options.metadata == {"a": 1, "source": "api"}
    assert env.agent == "bulk"
    app.close()


def test_priority_by_name_per_call(app: App, add: JobDefinition[Any, int]) -> None:
    add.apply(kwargs={"x": 1, "y": 2}, priority="critical")
    [env] = pushed(app)
    assert env.priority == int(Priority.CRITICAL)


def test_job_key_dedupes(app: App, add: JobDefinition[Any, int]) -> None:
    first = add.apply(kwargs={"x": 1, "y": 2}, job_key="add-1-2")
    second = add.apply(kwargs={"x": 1, "y": 2}, job_key="add-1-2")
    assert second.id == first.id
    assert app.agent().length() == 1
    assert [j.id for j in app.jobs.list()] == [first.id]


def test_far_future_job_waits_in_the_master(app: App, add: JobDefinition[Any, int]) -> None:
    handle = add.apply_after(timedelta(hours=1), x=1, y=2)
    assert app.agent().length() == 0
    assert handle.status() is JobStatus.SCHEDULED
    naive = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=1)
    at = add.apply_at(naive, x=1, y=2)  # naive = UTC
    job = app.jobs.get(at.id)
    assert job.status is JobStatus.SCHEDULED
    assert job.scheduled_at is not None
    assert abs((job.scheduled_at - naive.replace(tzinfo=UTC)).total_seconds()) < 1
