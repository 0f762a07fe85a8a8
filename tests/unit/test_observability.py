"""Observability middleware without workers: what each metric counts, the event log's lines
and rotation (several processes at once), the trace context option, and middleware that
fails without failing an enqueue or a run."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from jobmaster import App
from jobmaster.envelope import Envelope
from jobmaster.exceptions import InvalidOptionError
from jobmaster.middleware import Settled
from jobmaster.middleware.event_log import EventLog
from jobmaster.models import JobError
from jobmaster.options import JobOptions
from jobmaster.outcomes import (
    Cancelled,
    Lost,
    Outcome,
    Raised,
    Rejected,
    Released,
    RetryPolicy,
    Succeeded,
    decide,
)

prometheus_client = pytest.importorskip("prometheus_client")
pytest.importorskip("opentelemetry.sdk")


def envelope(job_id: str = "j1", definition_id: str = "add", attempt: int = 1,
             max_retries: int = 0) -> Envelope:
    return Envelope.from_fields(id=job_id, cluster="c", definition_id=definition_id,
                                encoding="json", payload=b"{}", created_at=100.0, due=100.0,
                                attempt=attempt, max_retries=max_retries)


def settled(outcome: Outcome, env: Envelope | None = None, started: float | None = 101.0,
            finished: float = 103.5) -> Settled:
    attempt = 1 if env is None else env.attempt
    retries = 0 if env is None else env.options.max_retries or 0
    decision = decide(outcome, attempt=attempt, policy=RetryPolicy(retries, 1.0, 1.0),
                      now=finished)
    return Settled("j" if env is None else env.id, env, outcome, decision, "w@h:1", started,
                   finished)


# -- metrics -------------------------------------------------------------------------------
def test_each_ending_counts_in_exactly_one_counter() -> None:
    from jobmaster.middleware.metrics import Metrics

    registry = prometheus_client.CollectorRegistry()
    metrics = Metrics(registry=registry)
    error = JobError("ValueError", "no")
    metrics.after_enqueue(envelope())
    metrics.on_outcome(settled(Succeeded(b"1"), envelope()))
    metrics.on_outcome(settled(Raised(error), envelope("r", max_retries=1)))
    metrics.on_outcome(settled(Raised(error), envelope("f")))
    metrics.on_outcome(settled(Lost("killed"), envelope("l")))
    metrics.on_outcome(settled(Cancelled("expired"), envelope("e"), started=None))
    metrics.on_outcome(settled(Cancelled(), envelope("c"), started=None))
    metrics.on_outcome(settled(Rejected(error), envelope("d"), started=None))
    metrics.on_outcome(settled(Rejected(error), None, started=None))
    metrics.on_outcome(settled(Released(), envelope("x"), started=None))

    def get(name: str, definition: str = "add") -> float:
        lane = "unknown" if definition == "unknown" else "default"
        found = registry.get_sample_value(name, {"definition": definition, "lane": lane})
        return 0.0 if found is None else found

    assert get("jobmaster_jobs_enqueued_total") == 1
    assert get("jobmaster_jobs_succeeded_total") == 1
    assert get("jobmaster_jobs_retried_total") == 1
    assert get("jobmaster_jobs_failed_total") == 2  # raised, and lost with no retries left
    assert get("jobmaster_jobs_expired_total") == 1
    assert get("jobmaster_jobs_cancelled_total") == 1
    assert get("jobmaster_jobs_dead_lettered_total") == 1
    assert get("jobmaster_jobs_dead_lettered_total", "unknown") == 1
    assert get("jobmaster_jobs_started_total") == 4  # the released one never started
    assert get("jobmaster_job_run_seconds_count") == 4
    assert get("jobmaster_job_run_seconds_sum") == pytest.approx(4 * 2.5)
    assert get("jobmaster_job_queue_wait_seconds_sum") == pytest.approx(4 * 1.0)
    assert registry.get_sample_value("jobmaster_job_run_seconds_bucket",
                                     {"definition": "add", "lane": "default", "le": "2.5"}) == 4

    again = Metrics(registry=registry)  # a second Metrics on a registry shares its metrics
    again.on_outcome(settled(Succeeded(b"1"), envelope()))
    assert get("jobmaster_jobs_succeeded_total") == 2


def test_cluster_gauges_read_agents_and_master(tmp_path: Path) -> None:
    from jobmaster.middleware.metrics import ClusterCollector

    app = App("gauges", master=f"sqlite:///{tmp_path}/m.db",
              agents={"main": f"sqlite:///{tmp_path}/a.db"}, auto_migrate=True,
              routes={"mail": "main"})

    @app.job(definition_id="add", lane="math")
    def add(x: int, y: int) -> int:
        return x + y

    add.apply(kwargs={"x": 1, "y": 2}, priority="CRITICAL")
    add.apply(kwargs={"x": 1, "y": 2}, priority="CRITICAL")
    registry = prometheus_client.CollectorRegistry()
    collector = ClusterCollector(app, lanes=["extra,other"], cache_seconds=0)
    registry.register(collector)
    assert set(collector.buckets()) == {("main", lane) for lane in
                                        ("default", "extra", "other", "mail", "math")}
    depth = registry.get_sample_value
    assert depth("jobmaster_queue_depth",
                 {"agent": "main", "lane": "math", "priority": "CRITICAL"}) == 2
    assert depth("jobmaster_queue_depth",
                 {"agent": "main", "lane": "mail", "priority": "LOW"}) == 0
    assert depth("jobmaster_workers_alive", {}) == 0
    app.close()


# -- event log -----------------------------------------------------------------------------
def test_event_log_lines(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "ev")
    env = envelope(max_retries=1)
    log.after_enqueue(env)
    log.on_outcome(settled(Raised(JobError("ValueError", "x" * 5000)), env))
    lines = [json.loads(x) for x in (tmp_path / "ev" / "jobmaster-events.jsonl")
             .read_text().splitlines()]
    assert [e["event"] for e in lines] == ["enqueued", "settled"]
    assert lines[0]["job_id"] == "j1" and lines[0]["lane"] == "default"
    end = lines[1]
    assert end["status"] == "retrying" and end["action"] == "retry"
    assert end["outcome"] == "raised" and end["attempt"] == 1 and end["worker"] == "w@h:1"
    assert end["duration"] == 2.5 and end["queue_wait"] == 1.0
    assert end["error"]["type"] == "ValueError" and len(end["error"]["message"]) == 2000


def test_event_log_rotates_by_size_and_keeps_n(tmp_path: Path) -> None:
    log = EventLog(tmp_path, max_bytes=2000, keep=2)
    for i in range(200):
        log.write({"event": "x", "n": i, "pad": "p" * 50})
    files = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock"))
    assert files == ["jobmaster-events.jsonl", "jobmaster-events.jsonl.1",
                     "jobmaster-events.jsonl.2"]
    numbers = []
    for name in reversed(files):  # oldest first
        text = (tmp_path / name).read_text()
        assert len(text) < 2000 + 100
        numbers += [json.loads(line)["n"] for line in text.splitlines()]
    assert numbers == list(range(numbers[0], 200)), "the newest events, in order, none lost"
    assert numbers[0] > 0, "the oldest were dropped"


def _write_many(directory: str, tag: int) -> None:
    log = EventLog(directory, max_bytes=20_000, keep=1000)
    for i in range(400):
        log.write({"event": "x", "writer": tag, "n": i, "pad": "p" * (i % 97)})


def test_event_log_from_several_processes_loses_and_mixes_nothing(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_many, args=(str(tmp_path), t)) for t in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    seen: dict[int, list[int]] = {t: [] for t in range(4)}
    files = [p for p in tmp_path.iterdir() if p.name.startswith("jobmaster-events.jsonl")
             and not p.name.endswith(".lock")]
    assert len(files) > 3, "it rotated"
    for path in sorted(files, key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit()
                       else 0):
        for line in path.read_text().splitlines():
            event = json.loads(line)  # every line whole
            seen[event["writer"]].append(event["n"])
    for numbers in seen.values():
        assert numbers == list(range(400)), "every line once, each writer's in order"


def test_unwritable_event_log_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                           ) -> None:
    (tmp_path / "file").write_text("")
    log = EventLog(tmp_path / "file" / "dir")
    log.after_enqueue(envelope())
    log.on_outcome(settled(Succeeded(b"1"), envelope()))
    assert "could not write" in caplog.text
    assert caplog.text.count("could not write") == 1, "warned once, not per event"


# -- tracing -------------------------------------------------------------------------------
def _provider() -> tuple[Any, Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_trace_context_rides_in_the_envelope_and_parents_the_run() -> None:
    from opentelemetry import trace

    from jobmaster.middleware.tracing import Tracing

    provider, exporter = _provider()
    tracing = Tracing(provider)
    env = tracing.before_enqueue(envelope())
    assert env is not None and env.options.trace_context is not None
    assert "traceparent" in env.options.trace_context
    tracing.after_enqueue(env)
    received = Envelope.from_bytes(env.to_bytes())  # checked as a worker checks it
    assert received.options.trace_context == env.options.trace_context
    tracing.before_run(received)
    inner = trace.get_current_span()
    tracing.after_run(received, Raised(JobError("ValueError", "bad")))
    assert not trace.get_current_span().get_span_context().is_valid, "context detached"
    enqueue, run = exporter.get_finished_spans()
    assert inner.get_span_context().span_id == run.context.span_id
    assert run.context.trace_id == enqueue.context.trace_id
    assert run.parent is not None and run.parent.span_id == enqueue.context.span_id
    assert run.status.status_code.name == "ERROR" and "ValueError: bad" in run.status.description


def test_a_run_that_never_reached_after_run_is_ended_by_the_next() -> None:
    from jobmaster.middleware.tracing import Tracing

    provider, exporter = _provider()
    tracing = Tracing(provider)
    tracing.before_run(envelope("a"))  # killed by a hard timeout: no after_run
    tracing.before_run(envelope("b"))
    tracing.after_run(envelope("b"), Succeeded(b"1"))
    names = [(s.name, s.attributes["jobmaster.job_id"], s.attributes["jobmaster.outcome"])
             for s in exporter.get_finished_spans()]
    assert names == [("run add", "a", "unknown"), ("run add", "b", "Succeeded")]


@pytest.mark.parametrize("bad", [
    {"traceparent": 1}, {"trace parent": "x"}, {"traceparent": "a\nb"}, ["traceparent"],
    {f"k{i}": "v" for i in range(33)}, {"baggage": "x" * 9000},
])
def test_trace_context_is_checked(bad: Any) -> None:
    with pytest.raises(InvalidOptionError, match="^trace_context"):
        JobOptions.build(trace_context=bad)
    env = envelope()
    header = {**env.header(), "trace_context": bad}
    with pytest.raises(ValueError, match="trace_context"):
        Envelope.from_header(header, b"{}")


# -- failing middleware never fails a job --------------------------------------------------
class _Broken:
    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        return self

    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("broken")


def test_broken_middleware_never_refuses_an_enqueue_or_fails_a_run(tmp_path: Path) -> None:
    from jobmaster.middleware.metrics import Metrics
    from jobmaster.middleware.tracing import Tracing

    (tmp_path / "file").write_text("")
    metrics = Metrics(registry=prometheus_client.CollectorRegistry())
    metrics._f = None  # type: ignore[assignment]  # every hook now raises
    tracing = Tracing(_Broken())
    app = App("broken", master=f"sqlite:///{tmp_path}/m.db",
              agents={"main": f"sqlite:///{tmp_path}/a.db"}, auto_migrate=True,
              middleware=[metrics, tracing], event_log=tmp_path / "file" / "events")

    @app.job(definition_id="add")
    def add(x: int, y: int) -> int:
        return x + y

    handle = add.delay(x=1, y=2)
    app.flush()
    assert app.jobs.get(handle.id).status.value == "queued"
    env = envelope()
    for hook in app.pipeline.before_run:
        hook(env)  # raising here would fail the run
    app.pipeline.finished_run(env, Succeeded(b"3"))
    app.pipeline.settled(settled(Succeeded(b"3"), env))
    app.close()


def test_event_log_keyword_and_add_middleware(tmp_path: Path) -> None:
    from jobmaster.middleware.metrics import Metrics, installed

    app = App("kw", master=f"sqlite:///{tmp_path}/m.db", event_log=str(tmp_path / "ev"))
    assert [type(m).__name__ for m in app.pipeline.middleware] == ["Expiry", "WorkflowSteps",
                                                                 "EventLog"]
    assert not (tmp_path / "ev").exists(), "creating an app does no I/O"
    metrics = installed(app)
    assert isinstance(metrics, Metrics) and installed(app) is metrics
    assert app.pipeline.on_outcome[-1] == metrics.on_outcome
