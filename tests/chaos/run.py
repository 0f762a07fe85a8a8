"""One chaos run: a stack (master + agent on private servers), real ``jobmaster worker``
and ``jobmaster beat`` processes, a producer process, and a mix of faults while jobs
flow; then a drain, a stop, and the verdict (``tests.chaos.ledger``).

The run's directory keeps everything: ``events.jsonl`` (the timeline), the producers'
ledgers, ``side-effects.log``, each process's log, and ``report.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos import faults as fault_registry
from tests.chaos.ledger import (
    Timeline,
    Verdict,
    classify,
    read_events,
    read_ledgers,
    read_side_effects,
)
from tests.chaos.proxy import Proxy, ProxyHub
from tests.chaos.servers import Server, Services

ROOT = Path(__file__).resolve().parents[2]
APP_MODULE = "tests.chaos.app"
AGENTS = ("redis", "postgres", "sqlite", "nats", "mysql", "rabbitmq")
_FINAL = ("succeeded", "failed", "cancelled")
_STILL = 3
"""Leases without any change after which messages left in the agent end the drain."""


@dataclass(slots=True)
class Settings:
    """How big and how long a run is."""

    jobs: int = 5000
    duration: float = 45.0
    """Seconds of faults; the producer spreads its jobs over the first 80 % of them."""
    workers: int = 3
    concurrency: int = 2
    lease: float = 4.0
    """``lease_seconds`` of the workers (the heartbeat renews it every third of it)."""
    work_ms: float = 10.0
    """A job sleeps a random 0..work_ms milliseconds."""
    beats: int = 1
    """Beats running (at least 3 when beat-kill is in the mix)."""
    drain_timeout: float = 120.0
    seed: int | None = None
    log_level: str = "INFO"

    @property
    def heartbeat(self) -> float:
        return self.lease / 3.0


# -- stacks ----------------------------------------------------------------------------------
@dataclass(slots=True)
class Stack:
    """Where a run's jobs live."""

    kind: str
    master_url: str
    agent_url: str
    agent_server: Server | None
    """The agent's own server (killed by broker-restart); ``None``: embedded or shared."""
    master_server: Server | None
    """The master's database server (restarted by master-restart); ``None``: a file."""
    agent_port: int | None
    """The agent's TCP port, for proxies (``None``: no network link)."""
    note: str = ""

    def agent_url_at(self, port: int) -> str:
        """The agent URL with its port replaced (to go through a proxy)."""
        assert self.agent_port is not None
        return self.agent_url.replace(f":{self.agent_port}", f":{port}", 1)


def make_stack(kind: str, services: Services, directory: Path, tag: str) -> Stack:
    """A stack of ``kind`` (see ``AGENTS``) on private servers, with a database of its own
    where the master is a server."""
    if kind == "sqlite":
        return Stack(kind, f"sqlite:///{directory}/master.db", f"sqlite:///{directory}/agent.db",
                     None, None, None, "master and agent: SQLite files")
    if kind == "mysql":
        maria = services.mariadb()
        url = maria.create_database(f"chaos_{tag}")
        return Stack(kind, url, url, maria, maria, maria.port,
                     "master and agent: one private MariaDB")
    pg = services.postgres()
    master_url = pg.create_database(f"chaos_{tag}")
    if kind == "postgres":
        return Stack(kind, master_url, master_url, pg, pg, pg.port,
                     "master and agent: one private PostgreSQL")
    if kind == "redis":
        redis = services.redis()
        return Stack(kind, master_url, redis.url, redis, pg, redis.port,
                     f"agent: private redis-server (AOF, appendfsync {redis.fsync}); "
                     "master: private PostgreSQL")
    if kind == "nats":
        nats = services.nats()
        return Stack(kind, master_url, nats.url, nats, pg, nats.port,
                     "agent: private nats-server -js (file store); master: private PostgreSQL")
    if kind == "rabbitmq":
        rabbit = services.rabbitmq()
        return Stack(kind, master_url, rabbit.url, rabbit, pg, rabbit.port,
                     "agent: private RabbitMQ node; master: private PostgreSQL")
    raise ValueError(f"unknown agent {kind!r}; use one of {', '.join(AGENTS)}")


# -- processes --------------------------------------------------------------------------------
@dataclass(slots=True)
class Proc:
    """A process the run started."""

    role: str
    index: int
    popen: subprocess.Popen[bytes]
    log: Path
    proxy: Proxy | None = None
    killed: bool = False
    noticed: bool = False
    """Its death on its own was noted."""
    remaining: int = 0
    """For a producer: the jobs it was started to enqueue."""
    ledger: Path | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass(slots=True)
class RunResult:
    """What one run found."""

    agent: str
    scenario: str
    faults: tuple[str, ...]
    skipped: dict[str, str]
    verdict: Verdict | None
    timeline: Timeline
    directory: Path
    seconds: float
    drained: bool
    notes: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or self.verdict is None or self.verdict.failed


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class ChaosRun:
    """One run of ``stack`` under ``faults``; ``execute()`` does it all."""

    def __init__(self, stack: Stack, scenario: str, faults: Sequence[str], settings: Settings,
                 directory: Path, tag: str) -> None:
        self.stack = stack
        self.scenario = scenario
        self.skipped = {f: why for f in faults
                        if (why := fault_registry.applies(f, stack)) is not None}
        self.faults = tuple(f for f in faults if f not in self.skipped)
        if "beat-kill" in self.faults:
            settings = dataclasses.replace(settings, beats=max(settings.beats, 3))
        self.settings = settings
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rng = random.Random(settings.seed)  # noqa: S311 - not for security
        self.cluster = f"chaos-{stack.kind}-{tag}"
        self.side_effects = self.dir / "side-effects.log"
        self.events_path = self.dir / "events.jsonl"
        self.env = {
            "JOBMASTER_NAME": self.cluster,
            "JOBMASTER_NAMESPACE": "jmchaos",
            "JOBMASTER_MASTER_URL": stack.master_url,
            "JOBMASTER_AGENT_URL": stack.agent_url,
            "JOBMASTER_AUTO_MIGRATE": "false",
            "JOBMASTER_LEASE_SECONDS": f"{settings.lease:g}",
            "JOBMASTER_BEAT_LEASE_SECONDS": "3",
            "JOBMASTER_BEAT_INTERVAL": "0.5",
            "JOBMASTER_SHUTDOWN_GRACE": "10",
            "JM_CHAOS_SIDE_EFFECTS": str(self.side_effects),
        }
        self._lock = threading.RLock()
        self._servers = threading.Lock()  # one fault at a time restarts a server
        self._events = open(self.events_path, "a")  # noqa: SIM115 - closed in execute()
        self.workers: list[Proc] = []
        self.beats: list[Proc] = []
        self.producers: list[Proc] = []
        self._counts = {"worker": 0, "beat": 0, "producer": 0}
        self.hub = ProxyHub() if "partition" in self.faults else None
        self.notes: list[str] = []
        self._app: Any = None
        self._owed = {"worker": 0, "beat": 0}
        self._respawn_after = 0.0

    # -- the timeline -------------------------------------------------------------------
    def event(self, name: str, **fields: Any) -> None:
        """Write one event of the timeline."""
        record = {"t": round(time.time(), 6), "event": name, **fields}
        with self._lock:
            self._events.write(json.dumps(record) + "\n")
            self._events.flush()

    # -- processes ------------------------------------------------------------------------
    def _spawn(self, role: str, args: list[str], env: dict[str, str] | None = None,
               proxy: Proxy | None = None) -> Proc:
        with self._lock:
            index = self._counts[role]
            self._counts[role] += 1
        log = self.dir / f"{role}-{index}.log"
        out = open(log, "ab")  # noqa: SIM115 - the child owns it
        popen = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, **self.env, **(env or {})})
        out.close()
        proc = Proc(role, index, popen, log, proxy)
        self.event(f"{role}-start", pid=proc.pid, index=index,
                   **({"proxy": proxy.port} if proxy is not None else {}))
        return proc

    def start_worker(self, skew: float = 0.0) -> Proc:
        """Start a ``jobmaster worker`` (through a proxy of its own when partitions are in
        the mix; with its wall clock ``skew`` seconds off, if given)."""
        env: dict[str, str] = {}
        proxy = None
        if self.hub is not None and self.stack.agent_port is not None:
            proxy = self.hub.proxy(("127.0.0.1", self.stack.agent_port))
            env["JOBMASTER_AGENT_URL"] = self.stack.agent_url_at(proxy.port)
        command = ["-m", "tests.fixtures.skewed", repr(skew)] if skew else ["-m", "jobmaster"]
        proc = self._spawn("worker", [*command, "worker", "-A", APP_MODULE, "-c",
                                      str(self.settings.concurrency), "-l",
                                      self.settings.log_level], env, proxy)
        if skew:
            self.event("clock-skew", pid=proc.pid, skew=round(skew, 1))
        with self._lock:
            self.workers.append(proc)
        return proc

    def start_beat(self) -> Proc:
        proc = self._spawn("beat", ["-m", "jobmaster", "beat", "-A", APP_MODULE, "-l", "INFO"])
        with self._lock:
            self.beats.append(proc)
        return proc

    def start_producer(self, count: int) -> Proc:
        """A producer enqueuing ``count`` jobs at the run's pace."""
        with self._lock:
            index = self._counts["producer"]
        ledger = self.dir / f"ledger-{index}.tsv"
        rate = self.settings.jobs / max(self.settings.duration * 0.8, 1.0)
        proc = self._spawn("producer", [
            "-m", "tests.chaos.producer", str(ledger), "--count", str(count),
            "--prefix", f"p{index}-", "--rate", f"{rate:.3f}",
            "--work-ms", f"{self.settings.work_ms:g}",
            "--seed", str(self.rng.randrange(1 << 30))])
        proc.remaining, proc.ledger = count, ledger
        with self._lock:
            self.producers.append(proc)
        return proc

    def live_workers(self) -> list[Proc]:
        with self._lock:
            return [w for w in self.workers if w.alive() and not w.killed]

    def _sigkill(self, proc: Proc, event: str, **fields: Any) -> None:
        proc.killed = True
        self.event(event, pid=proc.pid, **fields)
        with contextlib.suppress(ProcessLookupError):
            proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait(10)

    def kill_worker(self, proc: Proc, *, replace: bool = True) -> None:
        """SIGKILL a worker (its pool's children die with it) and start a replacement."""
        self._sigkill(proc, "worker-kill")
        if replace:
            self.start_worker()

    def replace_worker_skewed(self, proc: Proc, skew: float) -> None:
        """Stop a worker warm (SIGTERM: it finishes what it runs) and start one whose wall
        clock is ``skew`` seconds off."""
        proc.killed = True  # stopped on purpose: not a worker that died on its own
        self.event("worker-stop", pid=proc.pid)
        with contextlib.suppress(ProcessLookupError):
            proc.popen.send_signal(signal.SIGTERM)
        self.start_worker(skew)

    def kill_all_workers(self) -> None:
        """SIGKILL every worker at once, then start as many again."""
        live = self.live_workers()
        self.event("all-workers-kill", pids=[w.pid for w in live])
        for w in live:
            w.killed = True
            self.event("worker-kill", pid=w.pid)
            with contextlib.suppress(ProcessLookupError):
                w.popen.send_signal(signal.SIGKILL)
        for w in live:
            w.popen.wait(10)
        for _ in live:
            self.start_worker()

    def kill_beat_leader(self) -> None:
        """SIGKILL the beat that holds the leader lease, start another beat."""
        try:
            held = self.app.master.lease_holder(f"beat:{self.cluster}")
        except Exception as exc:  # noqa: BLE001 - the master may be restarting
            self.event("fault-skipped", fault="beat-kill", why=str(exc)[:200])
            return
        if held is None or held[0] is None:
            return
        try:
            pid = int(str(held[0]).rsplit(":", 2)[1])
        except (IndexError, ValueError):
            return
        with self._lock:
            leader = next((b for b in self.beats if b.pid == pid and b.alive()), None)
        if leader is None:
            return
        self._sigkill(leader, "beat-kill", epoch=held[1])
        self.start_beat()

    def kill_producer(self) -> None:
        """SIGKILL the producer mid-loop; a new one enqueues what it did not get to."""
        with self._lock:
            current = next((p for p in self.producers if p.alive() and not p.killed), None)
            if current is None:
                return
            self._sigkill(current, "producer-kill")
            assert current.ledger is not None
            started = sum(1 for line in current.ledger.read_text().splitlines()
                          if line.startswith("I\t")) if current.ledger.exists() else 0
            left = current.remaining - started
            if left > 0:
                self.start_producer(left)

    def restart_agent(self, down: float) -> None:
        """SIGKILL the agent's server, start it again ``down`` seconds later."""
        server = self.stack.agent_server
        assert server is not None
        both = server is self.stack.master_server
        with self._servers:
            self.event("agent-down", how="SIGKILL")
            if both:
                self.event("master-down", how="SIGKILL (same server as the agent)")
            server.crash()
            time.sleep(down)
            server.start()
            self.event("agent-up")
            if both:
                self.event("master-up")

    def restart_master(self) -> None:
        """Restart the master's server at once (PostgreSQL: immediate mode)."""
        server = self.stack.master_server
        assert server is not None
        both = server is self.stack.agent_server
        restart = getattr(server, "restart_immediate", None)
        how = "immediate shutdown" if restart is not None else "SIGKILL"
        with self._servers:
            self.event("master-down", how=how)
            if both:
                self.event("agent-down", how=f"{how} (same server as the master)")
            if restart is not None:
                restart()
            else:
                server.crash()
                server.start()
            self.event("master-up")
            if both:
                self.event("agent-up")

    def partition(self, worker: Proc, mode: str, seconds: float) -> None:
        """Cut ``worker`` off from its agent for ``seconds``, then heal."""
        assert worker.proxy is not None
        self.event("partition", pid=worker.pid, how=mode, seconds=round(seconds, 2))
        worker.proxy.partition(mode)
        try:
            time.sleep(seconds)
        finally:
            worker.proxy.heal()
            self.event("heal", pid=worker.pid)

    # -- the in-process app: migrations and questions to the master --------------------------
    @property
    def app(self) -> Any:
        if self._app is None:
            with _environment(self.env):
                module = importlib.import_module(APP_MODULE)
                self._app = module.make_app()
        return self._app

    def master_statuses(self) -> dict[str, str]:
        """Job id → status of every job of the run's cluster in the master."""
        import sqlalchemy as sa

        from jobmaster.master.schema import jobs

        with self.app.master.engine.connect() as conn:
            return {str(i): str(s) for i, s in conn.execute(
                sa.select(jobs.c.id, jobs.c.status).where(jobs.c.cluster == self.cluster))}

    # -- the run --------------------------------------------------------------------------
    def execute(self) -> RunResult:
        """Run it all; never raises for what the run found (see ``RunResult``)."""
        started = time.monotonic()
        result = RunResult(self.stack.kind, self.scenario, self.faults, self.skipped, None,
                           Timeline(), self.dir, 0.0, False)
        try:
            self._execute(result)
        except Exception as exc:  # noqa: BLE001 - reported, with the run's directory
            import traceback

            result.error = f"{type(exc).__name__}: {exc}"
            (self.dir / "harness-error.txt").write_text(traceback.format_exc())
        finally:
            self._stop_everything()
            if self.hub is not None:
                self.hub.close()
            self._events.close()
            result.seconds = time.monotonic() - started
        if result.error is None:
            self._judge(result)
        if self._app is not None:
            with contextlib.suppress(Exception):
                self._app.close()
        return result

    def _execute(self, result: RunResult) -> None:
        settings = self.settings
        self.app.migrate()
        for _ in range(settings.beats):
            self.start_beat()
        for _ in range(settings.workers):
            self.start_worker()
        self.event("run-start", faults=list(self.faults), jobs=settings.jobs,
                   lease=settings.lease)
        self.start_producer(settings.jobs)
        stop = threading.Event()
        threads = []
        time.sleep(min(2.0, settings.duration / 10))  # let the workers come up first
        for name in self.faults:
            thread = threading.Thread(target=self._fault, args=(name, stop),
                                      name=f"fault-{name}", daemon=True)
            thread.start()
            threads.append(thread)
        deadline = time.monotonic() + settings.duration
        production_deadline = time.monotonic() + settings.duration * 4 + 120
        while time.monotonic() < deadline or self._producing():
            if time.monotonic() > production_deadline:
                self.notes.append("the producer never finished; gave up waiting for it")
                break
            self._watch()
            time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join(60)
        self.event("faults-stop")
        self._heal()
        result.drained = self._drain()
        self.event("drained" if result.drained else "drain-timeout")

    def _fault(self, name: str, stop: threading.Event) -> None:
        rng = random.Random(self.rng.randrange(1 << 30))  # noqa: S311
        try:
            fault_registry.FAULTS[name](self, stop, rng)
        except Exception as exc:  # noqa: BLE001 - a harness problem, noted
            self.event("fault-error", fault=name, error=f"{type(exc).__name__}: {exc}"[:500])
            self.notes.append(f"fault {name} failed: {type(exc).__name__}: {exc}")

    def _producing(self) -> bool:
        with self._lock:
            return any(p.alive() for p in self.producers)

    def _watch(self) -> None:
        """Notice workers and beats that died without being killed by a fault, and start
        others in their place (at most once a second: one that starts while the master is
        down may exit at once)."""
        with self._lock:
            procs = [*self.workers, *self.beats]
        for proc in procs:
            if not proc.killed and not proc.noticed and not proc.alive():
                proc.noticed = True
                text = proc.log.read_text(errors="replace") if proc.log.exists() else ""
                said = [line for line in text.splitlines()
                        if line.startswith(("Error", "Traceback")) or " ERROR " in line]
                last = (said or text.strip().splitlines())[-1:]
                self.event(f"{proc.role}-exit", pid=proc.pid, code=proc.popen.returncode,
                           last=(last or [""])[0][:300])
                self.notes.append(f"{proc.role} {proc.pid} exited on its own with code "
                                  f"{proc.popen.returncode}: {(last or [''])[0][:200]}")
                self._owed[proc.role] += 1
        now = time.monotonic()
        if now >= self._respawn_after and any(self._owed.values()):
            self._respawn_after = now + 1.0
            for role, owed in self._owed.items():
                for _ in range(owed):
                    if role == "worker":
                        self.start_worker()
                    else:
                        self.start_beat()
                self._owed[role] = 0

    def _heal(self) -> None:
        """After the faults: every server up, every worker and beat there."""
        for server in {id(s): s for s in (self.stack.agent_server, self.stack.master_server)
                       if s is not None}.values():
            if not server.running:
                self.notes.append(f"{server.name} was down after the faults; started it")
                server.start()
        self._respawn_after = 0.0
        self._watch()
        missing = self.settings.workers - len(self.live_workers())
        for _ in range(max(missing, 0)):
            self.start_worker()
        if not any(b.alive() for b in self.beats):
            self.start_beat()

    def _drain(self) -> bool:
        """Wait until every acknowledged job ran, the master holds no unfinished job and
        the agent is empty; then a lease and a bit more, for late duplicates. Messages the
        agent keeps but no worker claims (nothing ran nor changed for ``_STILL`` leases)
        end the wait too, with a note."""
        deadline = time.monotonic() + self.settings.drain_timeout
        still = max(_STILL * self.settings.lease, 10.0)
        state, last, since = "", None, time.monotonic()
        while time.monotonic() < deadline:
            self._watch()
            done, state, snapshot = self._drain_state()
            if done:
                break
            if snapshot != last:
                last, since = snapshot, time.monotonic()
            elif snapshot is not None and snapshot[0] == 0 and snapshot[1] == 0 and \
                    time.monotonic() - since >= still:
                self.notes.append(f"the agent still holds {snapshot[2]} message(s) that no "
                                  f"worker claimed in {still:g} s, though every job is "
                                  "finished in the master")
                break
            time.sleep(1.0)
        else:
            self.notes.append(f"did not drain within {self.settings.drain_timeout:g} s: "
                              f"{state}")
            return False
        time.sleep(self.settings.lease + self.settings.heartbeat + 1.0)
        return True

    def _drain_state(self) -> tuple[bool, str, tuple[int, int, int, int] | None]:
        ledger = read_ledgers(p.ledger for p in self.producers if p.ledger is not None)
        runs, _ = read_side_effects(self.side_effects)
        ran = {r.token for r in runs}
        waiting = sum(1 for t in ledger.acked if t not in ran)
        try:
            unfinished = sum(1 for s in self.master_statuses().values() if s not in _FINAL)
            held = self.app.agent().length()
        except Exception as exc:  # noqa: BLE001 - asked again
            return False, f"could not ask: {exc}", None
        state = (f"{waiting} acknowledged job(s) not run, {unfinished} unfinished in the "
                 f"master, {held} message(s) in the agent")
        return (waiting == 0 and unfinished == 0 and held == 0, state,
                (waiting, unfinished, held, len(runs)))

    def _stop_everything(self) -> None:
        """SIGTERM every process still running (warm shutdown), SIGKILL what lingers."""
        with self._lock:
            procs = [p for p in (*self.producers, *self.workers, *self.beats) if p.alive()]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.notes.append(f"{proc.role} {proc.pid} ignored SIGTERM for 30 s; killed")
                proc.popen.kill()
                proc.popen.wait()
        with self._lock:
            self.event("stopped", workers=len(self.workers), beats=len(self.beats))

    # -- the verdict -----------------------------------------------------------------------
    def _judge(self, result: RunResult) -> None:
        ledger = read_ledgers(p.ledger for p in self.producers if p.ledger is not None)
        runs, torn = read_side_effects(self.side_effects)
        master = self.master_statuses()
        timeline = Timeline.from_events(read_events(self.events_path))
        timeline.beat_requeues = self._beat_requeues()
        verdict = classify(ledger, runs, master, timeline, lease=self.settings.lease,
                           heartbeat=self.settings.heartbeat,
                           requeue_on_disconnect=self.stack.kind == "rabbitmq",
                           torn_lines=torn)
        result.verdict, result.timeline = verdict, timeline
        result.notes = list(self.notes)
        if ledger.finished < 1:
            result.notes.append("no producer finished its loop")
        if torn:
            result.notes.append(f"{torn} side-effect line(s) could not be read")
        result.findings = self._findings(verdict)
        (self.dir / "report.json").write_text(json.dumps(_report(result), indent=1,
                                                         default=str))

    def _beat_requeues(self) -> dict[str, list[float]]:
        """Job id → when beat pushed it again as a lost worker's job (its audit trail)."""
        import datetime as dt

        import sqlalchemy as sa

        from jobmaster.master.schema import events, jobs

        found: dict[str, list[float]] = {}
        query = sa.select(events.c.job_id, events.c.at).where(
            events.c.reason.like("recovered: its worker was lost%"),
            events.c.job_id.in_(sa.select(jobs.c.id).where(jobs.c.cluster == self.cluster)))
        with self.app.master.engine.connect() as conn:
            for job_id, at in conn.execute(query):
                if at.tzinfo is None:
                    at = at.replace(tzinfo=dt.UTC)
                found.setdefault(str(job_id), []).append(at.timestamp())
        return found

    def _findings(self, verdict: Verdict) -> list[str]:
        """Details of what went wrong: history and log lines of each job concerned."""
        out: list[str] = []
        for token, job_id, status in verdict.lost[:20]:
            out.append(f"LOST {job_id} (token {token}): acknowledged to the producer, never "
                       f"ran; master status {status!r}")
            out += self._evidence(job_id)
        for d in [d for d in verdict.duplicated if not d.explained][:20]:
            out.append(f"DUPLICATE {d.job_id} (token {d.token}) [{d.kind}]: {d.reason}")
            for r in d.runs:
                out.append(f"    run: attempt {r.attempt} worker {r.worker} pid {r.pid} "
                           f"{r.started:.3f}..{r.ended:.3f}")
            out += self._evidence(d.job_id)
            out += self._requeues(d.runs[0].started, d.runs[-1].started)
        for m in verdict.mismatches[:20]:
            out.append(f"STATUS {m.job_id} (token {m.token}): {m.what} ({m.runs} run(s))")
            out += self._evidence(m.job_id)
        for token, job_id, allowed, why in verdict.unexpected[:20]:
            if not allowed:
                out.append(f"UNEXPECTED {job_id} (token {token}): {why}")
        return out

    def _requeues(self, start: float, end: float) -> list[str]:
        """Beat's "re-queued" lines logged between two times (beat pushes jobs recorded
        running on workers it thinks lost: a push of its own, besides the agent's)."""
        import datetime as dt

        lines = []
        for log in sorted(self.dir.glob("beat-*.log")):
            for line in log.read_text(errors="replace").splitlines():
                if "re-queued" not in line:
                    continue
                try:
                    at = dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                except ValueError:
                    continue
                if start - 1.0 <= at <= end:
                    lines.append(f"    {log.name}: {line[:200]}")
        return lines

    def _evidence(self, job_id: str, limit: int = 12) -> list[str]:
        lines: list[str] = []
        try:
            for e in self.app.jobs.history(job_id):
                lines.append(f"    history: {e.at:%H:%M:%S.%f} {e.status.value} attempt "
                             f"{e.attempt} worker {e.worker} {e.reason or ''}".rstrip())
        except Exception as exc:  # noqa: BLE001
            lines.append(f"    history: unavailable ({exc})")
        found = 0
        for log in sorted(self.dir.glob("*.log")):
            if log.name == "side-effects.log":
                continue
            for line in log.read_text(errors="replace").splitlines():
                if job_id in line and found < limit:
                    lines.append(f"    {log.name}: {line[:300]}")
                    found += 1
        return lines


def _report(result: RunResult) -> dict[str, Any]:
    v = result.verdict
    return {
        "agent": result.agent, "scenario": result.scenario, "faults": result.faults,
        "skipped": result.skipped, "seconds": round(result.seconds, 1),
        "drained": result.drained, "notes": result.notes, "error": result.error,
        "fault_counts": dict(result.timeline.counts),
        "verdict": None if v is None else {
            "acked": v.acked, "ok": v.ok, "runs": v.runs,
            "lost": v.lost, "pending": v.pending,
            "duplicated": [{"token": d.token, "job_id": d.job_id, "kind": d.kind,
                            "reason": d.reason,
                            "runs": [dataclasses.asdict(r) for r in d.runs]}
                           for d in v.duplicated],
            "unexpected": v.unexpected,
            "mismatches": [dataclasses.asdict(m) for m in v.mismatches],
        },
        "findings": result.findings,
    }


def run_one(kind: str, scenario: str, faults: Sequence[str], settings: Settings,
            services: Services, base: Path) -> RunResult:
    """Build the stack of ``kind`` and run it once under ``faults``."""
    tag = uuid.uuid4().hex[:8]
    directory = base / f"{kind}-{scenario}-{tag}"
    directory.mkdir(parents=True, exist_ok=True)
    stack = make_stack(kind, services, directory, tag)
    return ChaosRun(stack, scenario, faults, settings, directory, tag).execute()
