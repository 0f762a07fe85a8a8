"""Prometheus metrics: counters and histograms of every job, gauges of the cluster.

::

    app = App("billing", middleware=[Metrics()])     # or let the worker add it:
    jobmaster worker -A proj.app --metrics-port 9100   # serves http://host:9100/metrics
    jobmaster metrics -A proj.app --port 9100          # the cluster gauges alone, no worker

Needs ``prometheus_client`` (``pip install 'jobmaster[metrics]'``), imported only when a
``Metrics`` is made or an endpoint served: jobmaster itself runs without it.

Every ending is counted in ``on_outcome``, which runs in the worker's supervisor: one
process per worker, never one of its forked children. So the counters and histograms live
in one ordinary registry there, served by the endpoint ``--metrics-port`` starts in that
process; Prometheus' multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) is not needed.
``jobmaster_jobs_enqueued_total`` is counted where jobs are enqueued (``after_enqueue``),
in the producer's process: serve that registry from the producer (the default registry,
e.g. ``prometheus_client.make_asgi_app()`` in a web app) to see it.

The gauges (queue depth per agent × lane × priority, workers alive) are read from the
agents and the master when Prometheus scrapes, by ``ClusterCollector``, and kept for
``cache_seconds`` so scrapes in a burst cost one round of queries.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from jobmaster.agents.base import Bucket
from jobmaster.envelope import Envelope
from jobmaster.exceptions import ConfigurationError
from jobmaster.forking import after_fork
from jobmaster.middleware import Middleware, Settled
from jobmaster.models import JobStatus
from jobmaster.outcomes import AgentAction, Cancelled, Released
from jobmaster.priority import Priority

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.registry import CollectorRegistry

    from jobmaster.app import App

log = logging.getLogger("jobmaster.metrics")

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
           300.0, 600.0, 1800.0, 3600.0)
"""Histogram buckets (seconds) of run time and queue wait."""

_LABELS = ("definition", "lane")
_UNKNOWN = ("unknown", "unknown")  # a message that was not a jobmaster envelope
_ENDINGS = ("succeeded", "failed", "retried", "expired", "cancelled", "dead_lettered")
_SLOT = {name: 3 + i for i, name in enumerate(_ENDINGS)}  # in _Families.children()


def _gauge_family() -> Any:
    _prometheus()
    from prometheus_client.core import GaugeMetricFamily

    return GaugeMetricFamily


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigurationError(
            "metrics need prometheus_client: pip install 'jobmaster[metrics]'") from None
    return prometheus_client


class _Families:
    """The metric families of one registry (shared by every ``Metrics`` using it)."""

    def __init__(self, registry: CollectorRegistry, buckets: Sequence[float]) -> None:
        prom = _prometheus()

        def counter(name: str, doc: str) -> Any:
            return prom.Counter(name, doc, _LABELS, registry=registry)

        def histogram(name: str, doc: str) -> Any:
            return prom.Histogram(name, doc, _LABELS, registry=registry, buckets=buckets)

        self.enqueued = counter("jobmaster_jobs_enqueued",
                                "Jobs enqueued by this process (producer side).")
        self.started = counter("jobmaster_jobs_started",
                               "Runs started (one per attempt), counted when they end.")
        self.endings = {
            "succeeded": counter("jobmaster_jobs_succeeded", "Runs that succeeded."),
            "failed": counter("jobmaster_jobs_failed",
                              "Jobs failed for good (retries exhausted or not retryable)."),
            "retried": counter("jobmaster_jobs_retried",
                               "Failed runs that will be retried."),
            "expired": counter("jobmaster_jobs_expired",
                               "Jobs cancelled because they were not started before "
                               "their expires time."),
            "cancelled": counter("jobmaster_jobs_cancelled",
                                 "Jobs cancelled (expiry aside)."),
            "dead_lettered": counter("jobmaster_jobs_dead_lettered",
                                     "Jobs that can never run (undecodable, unknown "
                                     "definition), moved to the agent's dead letters."),
        }
        self.run_seconds = histogram("jobmaster_job_run_seconds",
                                     "Run time of one attempt, start to end, in seconds.")
        self.queue_wait = histogram("jobmaster_job_queue_wait_seconds",
                                    "Seconds from when an attempt was due to its start.")
        self._children: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._lock = threading.Lock()

    def children(self, labels: tuple[str, str]) -> tuple[Any, ...]:
        """The labelled children ``(started, run_seconds, queue_wait, *endings)``."""
        found = self._children.get(labels)
        if found is None:
            with self._lock:
                if len(self._children) >= 10_000:
                    self._children.clear()
                found = (self.started.labels(*labels), self.run_seconds.labels(*labels),
                         self.queue_wait.labels(*labels),
                         *(self.endings[name].labels(*labels) for name in _ENDINGS))
                self._children[labels] = found
        return found


_FAMILIES: weakref.WeakKeyDictionary[Any, _Families] = weakref.WeakKeyDictionary()
_FAMILIES_LOCK = threading.Lock()


def _families(registry: CollectorRegistry, buckets: Sequence[float]) -> _Families:
    with _FAMILIES_LOCK:
        families = _FAMILIES.get(registry)
        if families is None:
            families = _FAMILIES[registry] = _Families(registry, buckets)
        return families


class Metrics(Middleware):
    """Counts every enqueue and every ending, times every run and every wait.

    ``registry``: where the metrics are registered (default: ``prometheus_client``'s
    default registry). Several ``Metrics`` on one registry share its metrics.

    Each ending adds one to exactly one of ``succeeded``, ``failed``, ``retried``,
    ``expired``, ``cancelled`` and ``dead_lettered``; a job handed back unstarted when a
    worker stops counts in none. ``started``, the run time and the queue wait count the
    attempts that started (not the expired, cancelled or rejected before their start).
    """

    def __init__(self, *, registry: CollectorRegistry | None = None,
                 buckets: Sequence[float] = BUCKETS) -> None:
        prom = _prometheus()
        self.registry: CollectorRegistry = prom.REGISTRY if registry is None else registry
        self._f = _families(self.registry, buckets)
        self._server: WSGIServer | None = None

    def after_enqueue(self, envelope: Envelope) -> None:
        """Count the enqueue (in the producer)."""
        self._f.enqueued.labels(envelope.definition_id, envelope.lane).inc()

    def on_outcome(self, settled: Settled) -> None:
        """Count the ending, observe run time and queue wait (in the supervisor)."""
        outcome = settled.outcome
        if type(outcome) is Released:
            return
        env = settled.envelope
        c = self._f.children(_UNKNOWN if env is None else (env.definition_id, env.lane))
        started = settled.started
        if started is not None:
            c[0].inc()
            c[1].observe(max(settled.finished - started, 0.0))
            if env is not None:
                c[2].observe(max(started - env.due, 0.0))
        c[_SLOT[_ending(settled)]].inc()

    def serve(self, port: int, *, addr: str = "0.0.0.0",  # noqa: S104 - a metrics endpoint
              app: App | None = None, lanes: Iterable[str] = ()) -> WSGIServer:
        """Serve this registry at ``http://addr:port/metrics`` from a daemon thread of this
        process; with ``app``, add its cluster gauges (``ClusterCollector``) to it."""
        if self._server is not None:
            raise ConfigurationError("this Metrics already serves an endpoint")
        if app is not None:
            self.registry.register(ClusterCollector(app, lanes=lanes))
        self._server = serve(port, addr=addr, registry=self.registry)
        return self._server


def _ending(settled: Settled) -> str:
    outcome = settled.outcome
    if settled.decision.action is AgentAction.DEAD_LETTER:
        return "dead_lettered"
    if isinstance(outcome, Cancelled) and outcome.reason == "expired":
        return "expired"
    status = settled.status
    if status is JobStatus.SUCCEEDED:
        return "succeeded"
    if status is JobStatus.RETRYING:
        return "retried"
    if status is JobStatus.CANCELLED:
        return "cancelled"
    return "failed"


def installed(app: App) -> Metrics:
    """The app's ``Metrics`` middleware, added to it (default registry) if it has none."""
    for m in app.middleware:
        if isinstance(m, Metrics):
            return m
    metrics = Metrics()
    app.add_middleware(metrics)
    return metrics


class ClusterCollector:
    """Gauges read at scrape time: ``jobmaster_queue_depth{agent, lane, priority}`` (jobs
    held by each agent bucket of the lanes the app knows: its default lane, its
    definitions' lanes, its routes and ``lanes``) and ``jobmaster_workers_alive`` (the
    cluster's workers running or stopping, seen within the last three heartbeats or one
    lease). Read at most once per ``cache_seconds``; a backend that fails is logged and
    its gauge left out of that scrape."""

    def __init__(self, app: App, *, lanes: Iterable[str] = (),
                 cache_seconds: float = 1.0) -> None:
        self.app = app
        self.lanes = [n.strip() for lane in lanes for n in lane.split(",") if n.strip()]
        self.cache_seconds = cache_seconds
        self._cached: tuple[float, list[Any]] | None = None
        self._lock = threading.Lock()

    def describe(self) -> list[Any]:
        """The families, without reading anything (registering does no I/O)."""
        gauge = _gauge_family()
        return [gauge("jobmaster_queue_depth", "", labels=["agent", "lane", "priority"]),
                gauge("jobmaster_workers_alive", "")]

    def collect(self) -> Iterator[Any]:
        """The gauges, read now (or the last reading, if recent)."""
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.cache_seconds:
                self._cached = (now, self._read())
            families = self._cached[1]
        yield from families

    def buckets(self) -> list[tuple[str, str]]:
        """``(agent, lane)`` pairs whose buckets are measured."""
        config = self.app.config
        extra = [(config.routes.get(lane) or config.default_agent, [lane])
                 for lane in self.lanes]
        return self.app.lanes.buckets(extra)

    def _read(self) -> list[Any]:
        gauge = _gauge_family()
        families = []
        depth = gauge("jobmaster_queue_depth", "Jobs held by an agent bucket (lane × "
                      "priority).", labels=["agent", "lane", "priority"])
        try:
            for agent_name, lane in self.buckets():
                agent = self.app.agent(agent_name)
                for priority in Priority:
                    depth.add_metric([agent_name, lane, priority.name],
                                     agent.length(Bucket(lane, int(priority))))
            families.append(depth)
        except Exception as exc:  # noqa: BLE001 - a scrape never raises into the server
            log.warning("metrics: could not read queue depths: %s", exc)
        try:
            families.append(gauge("jobmaster_workers_alive", "Workers of the cluster "
                                  "running or stopping, seen recently.",
                                  value=self._alive()))
        except Exception as exc:  # noqa: BLE001
            log.warning("metrics: could not read workers from the master: %s", exc)
        return families

    def _alive(self) -> int:
        config = self.app.config
        since = datetime.now(UTC) - timedelta(seconds=max(3 * config.heartbeat,
                                                          config.lease_seconds))
        alive = 0
        for row in self.app.master.list_workers(cluster=self.app.name):
            seen = row["last_seen"]
            if seen is not None and seen.tzinfo is None:
                seen = seen.replace(tzinfo=UTC)
            if row["status"] in ("running", "stopping") and seen is not None and seen >= since:
                alive += 1
        return alive


def serve(port: int, *, addr: str = "0.0.0.0",  # noqa: S104 - a metrics endpoint
          registry: CollectorRegistry | None = None) -> WSGIServer:
    """Serve ``registry`` (default: the default one) at ``/metrics`` from a daemon thread.
    Processes forked later (the worker's pool) close their copy of the listening socket."""
    prom = _prometheus()
    server, _thread = prom.start_http_server(port, addr,
                                             prom.REGISTRY if registry is None else registry)
    after_fork(server, _close_in_child)
    return server  # type: ignore[no-any-return]


def serve_cluster(app: App, port: int, *, addr: str = "0.0.0.0",  # noqa: S104
                  lanes: Iterable[str] = ()) -> WSGIServer:
    """Serve the cluster gauges of ``app`` alone (``jobmaster metrics``)."""
    registry = _prometheus().CollectorRegistry(auto_describe=True)
    registry.register(ClusterCollector(app, lanes=lanes))
    return serve(port, addr=addr, registry=registry)


def _close_in_child(server: WSGIServer) -> None:
    # closing the child's descriptor leaves the parent's listening socket open: only a
    # shutdown() would act on the socket the two share
    server.socket.close()


__all__ = ["BUCKETS", "ClusterCollector", "Metrics", "installed", "serve", "serve_cluster"]
