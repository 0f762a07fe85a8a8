"""The faults a chaos run injects, one function each, composable: a scenario is a set of
fault names, each run in a thread of its own while jobs flow.

A fault is ``fault(run, stop, rng)``: it loops until ``stop`` is set, and leaves the system
whole when it returns (a killed server restarted, a partition healed, a killed process
replaced). Every injection is written to the run's timeline (``run.event``), which is
what explains duplicates afterwards. ``applies(name, stack)`` says why a fault cannot be
injected on a stack (``None`` if it can).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.chaos.run import ChaosRun, Stack

Fault = Callable[["ChaosRun", threading.Event, random.Random], None]


def worker_kill(run: ChaosRun, stop: threading.Event, rng: random.Random) -> None:
    """SIGKILL a random worker every 3–5 s; a replacement starts at once."""
    while not stop.wait(rng.uniform(3.0, 5.0)):
        live = run.live_workers()
        if live:
            run.kill_worker(rng.choice(live))


def clock_skew(run: ChaosRun, stop: threading.Event, rng: random.Random) -> None:
    """Every 6–10 s, stop a random worker (warm) and start one whose wall clock is 30 s to
    5 min behind or ahead of the master's (``tests.fixtures.skewed``): leases, heartbeats
    and fencing must not depend on the workers' clocks."""
    while not stop.wait(rng.uniform(6.0, 10.0)):
        live = run.live_workers()
        if live:
            run.replace_worker_skewed(rng.choice(live),
                                      rng.choice((-1.0, 1.0)) * rng.uniform(30.0, 300.0))


def beat_kill(run: ChaosRun, stop: threading.Event, rng: random.Random) -> None:
    """With several beats running, SIGKILL the one that leads every 4–7 s; a replacement
    beat starts at once."""
    while not stop.wait(rng.uniform(4.0, 7.0)):
        run.kill_beat_leader()


def agent_restart(run: ChaosRun, stop: threading.Event, rng: random.Random) -> None:
    """SIGKILL the agent's server and start it again after 0.5–2 s, first a third of the
    way into the run, then every 15–20 s. The embedded SQLite agent has no server: every
    worker holding its file is killed at once instead (and replaced)."""
    delay = rng.uniform(0.25, 0.45) * run.settings.duration
    while not stop.wait(delay):
        if run.stack.agent_server is None:
            run.kill_all_workers()
        else:
            run.restart_agent(down=rng.uniform(0.5, 2.0))
        delay = rng.uniform(15.0, 20.0)


def master_restart(run: ChaosRun, stop: threading.Event, rng: random.Random) -> None:
    """Restart the master's database server at once (PostgreSQL: an immediate shutdown,
    no checkpoint, WAL recovery at start; MariaDB: SIGKILL), first about halfway into the
    run, then every 15–20 s."""
    delay = rng.uniform(0.35, 0.55) * run.settings.duration
    while not stop.wait(delay):
        run.restart_master()
        delay = rng.uniform(15.0, 20.0)


def producer_kill(run: ChaosRun, stop: threading.Event, rng: random.Random) -> None:
    """SIGKILL the producer mid-loop every 8–15 s while it enqueues; a new producer
    enqueues the jobs the dead one did not get to (under new tokens)."""
    while not stop.wait(rng.uniform(8.0, 15.0)):
        run.kill_producer()


def partition(run: ChaosRun, stop: threading.Event, rng: random.Random) -> None:
    """Every 8–12 s, cut a random worker off from its agent (its TCP proxy blackholes or
    resets the link) for 1.2–2 leases, then heal."""
    modes = ["blackhole", "reset"]
    while not stop.wait(rng.uniform(8.0, 12.0)):
        live = [w for w in run.live_workers() if w.proxy is not None]
        if not live:
            continue
        victim = rng.choice(live)
        mode = modes[0]
        modes.reverse()
        run.partition(victim, mode, rng.uniform(1.2, 2.0) * run.settings.lease)


FAULTS: dict[str, Fault] = {
    "worker-kill": worker_kill,
    "beat-kill": beat_kill,
    "broker-restart": agent_restart,
    "clock-skew": clock_skew,
    "master-restart": master_restart,
    "producer-kill": producer_kill,
    "partition": partition,
}

SCENARIOS: dict[str, tuple[str, ...]] = {
    "workers": ("worker-kill",),
    "beats": ("beat-kill",),
    "broker": ("broker-restart",),
    "master": ("master-restart",),
    "producer": ("producer-kill",),
    "partition": ("partition",),
    "skew": ("clock-skew",),
    "mix": tuple(FAULTS),
}
"""Named fault mixes; ``mix`` is every fault that applies to the stack."""


def applies(name: str, stack: Stack) -> str | None:
    """Why fault ``name`` cannot be injected on ``stack``; ``None`` if it can."""
    if name == "master-restart" and stack.master_server is None:
        return "the master is a SQLite file: no server to restart"
    if name == "partition" and stack.agent_port is None:
        return "the agent is an embedded file: no network link to cut"
    if name == "clock-skew" and stack.kind == "sqlite":
        return "an embedded agent lives on one host, with one clock"
    if name == "clock-skew" and stack.kind in ("nats", "rabbitmq"):
        return ("its worker compares due times with its own clock (a worker whose clock "
                "is behind holds due jobs back by as much): keep the hosts' clocks in step")
    if name == "broker-restart" and stack.agent_server is None and stack.kind != "sqlite":
        return "the agent is a shared server the harness may not kill"
    return None
