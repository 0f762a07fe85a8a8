"""Observability middleware with real workers: Prometheus metrics scraped from a running
worker and from ``jobmaster metrics``, one OpenTelemetry trace from enqueue to run, the
event log, and observability that fails without failing a job."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobmaster import App, JobStatus, Priority
from tests.conftest import ROOT, Stack, wait_until

pytest.importorskip("prometheus_client")
pytest.importorskip("opentelemetry.sdk")

OBS = "tests.fixtures.obsapp"


def app_for(stack: Stack, **kwargs: Any) -> App:
    """A fresh in-process ``obsapp`` on ``stack`` (what its workers run)."""
    app: App = stack.app(OBS, **kwargs)
    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample at ``/metrics``: (name, labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def try_scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
    try:
        return scrape(port)
    except OSError:
        return None


def wait_endpoint(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Wait for ``/metrics`` on ``port``, failing at once if ``proc`` exits."""

    def up() -> bool:
        assert proc.poll() is None, f"the process serving :{port} exited"
        return try_scrape(port) is not None

    wait_until(up, 30, f"/metrics on port {port}")


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    """The sample ``name`` with exactly ``labels`` (0 when absent)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def stack(stack_factory: Callable[..., Stack]) -> Stack:
    return stack_factory("sqlite")


# -- metrics -------------------------------------------------------------------------------
def test_worker_metrics_endpoint_counts_successes_failures_and_retries(stack: Stack) -> None:
    port = free_port()
    app = app_for(stack)
    worker = stack.worker("-c", "2", "--metrics-port", str(port), app=OBS)
    wait_endpoint(port, worker)
    # the endpoint is up before the worker's first heartbeat reaches the master
    wait_until(lambda: value(scrape(port), "jobmaster_workers_alive") >= 1, 30,
               "the cluster gauges to count the worker")
    before = scrape(port)
    assert value(before, "jobmaster_jobs_succeeded_total", definition="add",
                 lane="default") == 0

    adds = [app.definition("add").delay(x=i, y=1) for i in range(3)]
    failing = app.definition("fails").delay()
    flaky = app.definition("flaky").delay()
    for h in adds:
        assert h.wait(timeout=30).status is JobStatus.SUCCEEDED
    assert failing.wait(timeout=30).status is JobStatus.FAILED
    assert flaky.wait(timeout=30).result == 2

    def moved() -> bool:
        s = scrape(port)
        return (value(s, "jobmaster_jobs_succeeded_total", definition="add", lane="default") == 3
                and value(s, "jobmaster_jobs_failed_total", definition="fails",
                          lane="default") == 1
                and value(s, "jobmaster_jobs_retried_total", definition="flaky",
                          lane="default") == 1
                and value(s, "jobmaster_jobs_succeeded_total", definition="flaky",
                          lane="default") == 1)

    wait_until(moved, 30, "counters of the settled jobs")
    s = scrape(port)
    add = {"definition": "add", "lane": "default"}
    assert value(s, "jobmaster_jobs_started_total", **add) == 3
    assert value(s, "jobmaster_jobs_started_total", definition="flaky", lane="default") == 2
    assert value(s, "jobmaster_job_run_seconds_count", **add) == 3
    assert value(s, "jobmaster_job_run_seconds_sum", **add) > 0
    assert value(s, "jobmaster_job_run_seconds_bucket", le="+Inf", **add) == 3
    assert value(s, "jobmaster_job_queue_wait_seconds_count", **add) == 3
    assert value(s, "jobmaster_job_queue_wait_seconds_count", definition="flaky",
                 lane="default") == 2
    assert value(s, "jobmaster_jobs_failed_total", **add) == 0
    assert value(s, "jobmaster_jobs_dead_lettered_total", **add) == 0
    # enqueues are counted where they happen: in this process, not in the worker
    assert value(s, "jobmaster_jobs_enqueued_total", **add) == 0
    assert worker.poll() is None


def test_metrics_command_serves_queue_depth_and_workers_alive(stack: Stack) -> None:
    port = free_port()
    app = app_for(stack)
    for i in range(3):
        app.definition("add").apply(kwargs={"x": i, "y": 0}, priority=Priority.HIGH)
    app.definition("add").apply(kwargs={"x": 9, "y": 0}, lane="batch")
    out = open(stack.directory / "metrics.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "jobmaster", "metrics", "-A", OBS, "--port", str(port),
         "--host", "127.0.0.1", "--lane", "batch"],
        cwd=ROOT, env={**os.environ, **stack.env}, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_endpoint(port, server)
        s = scrape(port)
        depth = "jobmaster_queue_depth"
        assert value(s, depth, agent="main", lane="default", priority="HIGH") == 3
        assert value(s, depth, agent="main", lane="default", priority="MEDIUM") == 0
        assert value(s, depth, agent="main", lane="batch", priority="MEDIUM") == 1
        assert value(s, "jobmaster_workers_alive") == 0
        assert not any(name.startswith("jobmaster_jobs_") for name, _ in s), \
            "no worker counters without a worker"

        stack.worker("-c", "1", app=OBS)

        def drained() -> bool:
            s = scrape(port)
            return (value(s, depth, agent="main", lane="default", priority="HIGH") == 0
                    and value(s, "jobmaster_workers_alive") == 1)

        wait_until(drained, 30, "the default lane drained and one worker alive")
        assert value(scrape(port), depth, agent="main", lane="batch", priority="MEDIUM") == 1
    finally:
        server.terminate()
        server.wait(10)
        out.close()
    assert b"serving cluster" in (stack.directory / "metrics.log").read_bytes()


def test_metrics_port_in_use_is_a_clear_error(stack: Stack) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # noqa: S104
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "jobmaster", "worker", "-A", OBS, "--metrics-port",
             str(port)], cwd=ROOT, env={**os.environ, **stack.env}, capture_output=True,
            timeout=60)
    assert proc.returncode != 0
    assert f"--metrics-port {port}" in proc.stderr.decode()


# -- tracing -------------------------------------------------------------------------------
@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_one_trace_from_enqueue_to_run(stack: Stack, tmp_path: Path, pool: str) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span_log = tmp_path / "spans.jsonl"
    stack.env["JM_SPAN_LOG"] = str(span_log)
    app = app_for(stack, tracer_provider=provider)

    with provider.get_tracer("test").start_as_current_span("request") as request:
        handle = app.definition("traced").delay()
    stack.worker("-c", "1", "--pool", pool, app=OBS)
    inside_id = handle.wait(timeout=30).result

    produced = [s for s in exporter.get_finished_spans() if s.name == "enqueue traced"]
    assert len(produced) == 1
    enqueue = produced[0]
    trace_id = f"{enqueue.context.trace_id:032x}"
    assert enqueue.parent is not None
    assert enqueue.parent.span_id == request.get_span_context().span_id
    assert enqueue.attributes["jobmaster.job_id"] == handle.id

    def spans() -> list[dict[str, Any]]:
        if not span_log.exists():
            return []
        return [json.loads(line) for line in span_log.read_text().splitlines()]

    wait_until(lambda: any(s["name"] == "run traced" for s in spans()), 30, "the run span")
    run = next(s for s in spans() if s["name"] == "run traced")
    inside = next(s for s in spans() if s["name"] == "inside")
    assert run["trace_id"] == trace_id, "the run continues the producer's trace"
    assert run["parent_id"] == f"{enqueue.context.span_id:016x}"
    assert run["kind"] == "CONSUMER" and run["status"] == "OK"
    assert run["attributes"]["jobmaster.job_id"] == handle.id
    assert inside["span_id"] == inside_id
    assert inside["trace_id"] == trace_id and inside["parent_id"] == run["span_id"], \
        "spans made by the handler are children of the run span"
    if pool == "prefork":
        assert run["pid"] != stack.workers[0].pid, "the run span ended in a forked child"
    stored = app.jobs.get(handle.id)
    assert stored.options is None or stored.options.trace_context is None, \
        "the trace context travels in the envelope only"


# -- event log -----------------------------------------------------------------------------
def test_event_log_records_enqueues_and_endings(stack: Stack, tmp_path: Path) -> None:
    events = tmp_path / "events"
    stack.env["JM_EVENT_DIR"] = str(events)
    app = app_for(stack)
    ok = app.definition("add").delay(x=1, y=2)
    bad = app.definition("fails").delay()
    flaky = app.definition("flaky").delay()
    stack.worker("-c", "2", app=OBS)
    for h in (ok, bad, flaky):
        h.wait(timeout=30)

    def lines() -> list[dict[str, Any]]:
        path = events / "jobmaster-events.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []

    wait_until(lambda: sum(e["event"] == "settled" for e in lines()) == 4, 30,
               "four settled events (flaky ran twice)")
    got = lines()
    enqueued = {e["job_id"]: e for e in got if e["event"] == "enqueued"}
    assert set(enqueued) == {ok.id, bad.id, flaky.id}
    assert enqueued[ok.id]["definition_id"] == "add" and enqueued[ok.id]["pid"] == os.getpid()
    settled = [e for e in got if e["event"] == "settled"]
    done = next(e for e in settled if e["job_id"] == ok.id)
    assert done["status"] == "succeeded" and done["error"] is None and done["attempt"] == 1
    assert done["worker"].startswith(stack.env["JOBMASTER_NAME"] + "@")
    assert done["started"] <= done["finished"] and done["duration"] >= 0
    assert done["queue_wait"] >= 0
    failed = next(e for e in settled if e["job_id"] == bad.id)
    assert failed["status"] == "failed"
    assert failed["error"] == {"type": "ValueError", "message": "failing on purpose"}
    retries = [e for e in settled if e["job_id"] == flaky.id]
    assert [(e["attempt"], e["status"]) for e in retries] == [(1, "retrying"), (2, "succeeded")]
    assert retries[0]["retry_at"] is not None


# -- failures ------------------------------------------------------------------------------
def test_broken_observability_never_fails_a_job(stack: Stack, tmp_path: Path) -> None:
    events = tmp_path / "events"
    events.mkdir()
    (events / "a-file").write_text("not a directory")
    stack.env["JM_EVENT_DIR"] = str(events)
    stack.env["JM_BREAK"] = "1"
    port = free_port()
    app = app_for(stack)
    handles = [app.definition("add").delay(x=i, y=i) for i in range(5)]
    worker = stack.worker("-c", "2", "--metrics-port", str(port), app=OBS)
    assert [h.wait(timeout=30).result for h in handles] == [0, 2, 4, 6, 8]
    wait_until(lambda: (try_scrape(port) or {}).get(
        ("jobmaster_jobs_succeeded_total",
         frozenset({"definition": "add", "lane": "default"}.items()))) == 5, 30,
        "metrics still counting")
    assert worker.poll() is None
    log = stack.worker_log()
    assert "tracing: could not start the run span" in log
    assert "event log" in log and "could not write" in log
