"""``jobmaster doctor``: checks a deployment and says what to fix.

``gather`` reads the facts (the app's settings, the master, the agents, the workers);
``diagnose`` turns them into findings and is a pure function, tested without I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from jobmaster.agents.base import redact_url

if TYPE_CHECKING:
    from jobmaster.app import App

Level = Literal["ok", "warn", "fail"]

SKEW_WARN = 2.0
"""Seconds of clock difference with the master worth a warning: leases, due times and
heartbeats are compared across hosts."""

_LOCAL_SCHEMES = ("sqlite", "memory")


@dataclass(frozen=True)
class Finding:
    """One thing the doctor checked: ``ok``, ``warn`` or ``fail``, and what to do."""

    level: Level
    check: str
    message: str


@dataclass
class Facts:
    """What the doctor knows of a deployment (gathered by ``gather``)."""

    serializer: str = "json"
    signs: bool = False
    lease_seconds: float = 30.0
    heartbeat: float = 10.0
    agents: dict[str, str] = field(default_factory=dict)
    """Agent name → URL (passwords hidden)."""
    agent_errors: dict[str, str] = field(default_factory=dict)
    """Agent name → why it could not be reached."""
    redis_aof: dict[str, bool | None] = field(default_factory=dict)
    """Redis agent name → whether it appends to a file (``None``: could not tell)."""
    master_error: str | None = None
    clock_skew: float | None = None
    """Master clock minus this host's, in seconds (``None``: not measured)."""
    active_schedules: int = 0
    scheduled_jobs: int = 0
    beat_leader_seen: float | None = None
    """Seconds since the beat lease was last held (``None``: never)."""
    workers_alive: int = 0


def diagnose(facts: Facts) -> list[Finding]:
    """Findings from the facts: every check, ok or not."""
    out: list[Finding] = []
    add = out.append

    if facts.master_error:
        add(Finding("fail", "master", f"cannot use the master: {facts.master_error}"))
    else:
        add(Finding("ok", "master", "reachable, schema current"))
    for name, url in facts.agents.items():
        if name in facts.agent_errors:
            add(Finding("fail", f"agent {name}", f"{url}: {facts.agent_errors[name]}"))
        else:
            add(Finding("ok", f"agent {name}", f"{url} reachable"))

    if facts.serializer == "pickle" and not facts.signs:
        add(Finding("warn", "signing", "pickle is on but envelopes are not signed "
                    "(sign_envelopes=False): only the payload is signed, so a signed "
                    "payload can be replayed under another job id; remove "
                    "sign_envelopes=False"))
    shared = [n for n, url in facts.agents.items() if not url.startswith(_LOCAL_SCHEMES)]
    if shared and not facts.signs:
        add(Finding("warn", "signing", f"agent(s) {', '.join(shared)} are servers others "
                    "may write to, and envelopes are not signed: anyone who can write to "
                    "them can run your jobs with their arguments; set sign_envelopes=True "
                    "and a secret"))
    elif facts.signs:
        add(Finding("ok", "signing", "envelopes are signed"))

    redis = list(facts.redis_aof)
    lossy = [n for n, aof in facts.redis_aof.items() if aof is False]
    if lossy and len(lossy) == len(facts.agents):
        add(Finding("warn", "durability", f"Redis agent(s) {', '.join(lossy)} keep nothing "
                    "on disk (appendonly no) and are the only agents: a Redis restart loses "
                    "queued jobs until beat's recovery finds them in the master; turn on "
                    "appendonly yes"))
    elif redis and not lossy:
        add(Finding("ok", "durability", "Redis appends to its file (AOF)"))

    if facts.lease_seconds < 3 * facts.heartbeat:
        add(Finding("warn", "leases", f"lease_seconds={facts.lease_seconds:g} is shorter "
                    f"than three heartbeats ({facts.heartbeat:g} s each): one slow "
                    "heartbeat lets a running job start again elsewhere; raise "
                    "lease_seconds or lower heartbeat_seconds"))
    else:
        add(Finding("ok", "leases", f"lease {facts.lease_seconds:g} s, heartbeat "
                    f"{facts.heartbeat:g} s"))

    if facts.clock_skew is not None:
        skew = abs(facts.clock_skew)
        if skew > SKEW_WARN:
            add(Finding("warn", "clock", f"this host's clock is {skew:.1f} s "
                        f"{'behind' if facts.clock_skew > 0 else 'ahead of'} the master's: "
                        "due times, leases and heartbeats compare across hosts; sync the "
                        "clocks (NTP)"))
        else:
            add(Finding("ok", "clock", f"within {skew:.2f} s of the master's"))

    waiting = facts.active_schedules or facts.scheduled_jobs
    beat_recent = facts.beat_leader_seen is not None and \
        facts.beat_leader_seen < max(3 * facts.lease_seconds, 60.0)
    if waiting and not beat_recent:
        add(Finding("warn", "beat", f"{facts.active_schedules} active schedule(s) and "
                    f"{facts.scheduled_jobs} scheduled job(s), but no beat has led "
                    + ("ever" if facts.beat_leader_seen is None else
                       f"for {facts.beat_leader_seen:.0f} s")
                    + ": nothing fires or comes due; run `jobmaster beat` (or a worker "
                    "with --beat)"))
    elif beat_recent:
        add(Finding("ok", "beat", "a beat leads"))

    if facts.workers_alive == 0:
        add(Finding("warn", "workers", "no worker is alive: queued jobs wait"))
    else:
        add(Finding("ok", "workers", f"{facts.workers_alive} alive"))
    return out


def gather(app: App) -> Facts:
    """Read the facts of ``app``'s deployment; what cannot be read is said, not raised."""
    config = app.config
    facts = Facts(serializer=config.serializer, signs=config.signs,
                  lease_seconds=config.lease_seconds, heartbeat=config.heartbeat,
                  agents={n: redact_url(u) for n, u in config.agents.items()})
    for name, url in config.agents.items():
        try:
            agent = app.agent(name)
            agent.length()
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            facts.agent_errors[name] = _said(exc)
            continue
        if url.startswith(("redis://", "rediss://", "unix://")):
            facts.redis_aof[name] = _redis_aof(agent)
    master = app.master
    try:
        master.ensure_ready()
    except Exception as exc:  # noqa: BLE001
        facts.master_error = _said(exc)
        return facts
    facts.clock_skew = _skew(app)
    _try(lambda: setattr(facts, "active_schedules",
                         sum(1 for s in app.schedules.list() if not s.paused)))
    _try(lambda: setattr(facts, "scheduled_jobs", int(app.jobs.count(status="scheduled",
                                                                     exact=False))))
    held = _try(lambda: master.lease_holder(f"beat:{app.name}"))
    if held:
        holder, _epoch, expires = held
        seen = (datetime.now(UTC) - _aware(expires)).total_seconds()
        facts.beat_leader_seen = max(0.0, seen)
    _try(lambda: setattr(facts, "workers_alive",
                         len(app.workers.list(include_stopped=False))))
    return facts


def _redis_aof(agent: Any) -> bool | None:
    client = getattr(agent, "client", None) or getattr(agent, "_client", None)
    try:
        value = client.config_get("appendonly") if client is not None else None
    except Exception:  # noqa: BLE001 - CONFIG may be refused by an ACL
        return None
    if not value:
        return None
    return str(value.get("appendonly", "")).lower() == "yes"


def _skew(app: App) -> float | None:
    engine = app.master.engine
    query = {"postgresql": "SELECT extract(epoch FROM clock_timestamp())",
             "mysql": "SELECT UNIX_TIMESTAMP(NOW(6))"}.get(engine.dialect.name)
    if query is None:
        return None  # SQLite: the master's clock is this host's
    import sqlalchemy as sa

    try:
        before = time.time()
        with engine.connect() as conn:
            theirs = float(conn.execute(sa.text(query)).scalar() or 0.0)
        after = time.time()
    except Exception:  # noqa: BLE001
        return None
    return theirs - (before + after) / 2


def _try(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except Exception:  # noqa: BLE001 - a fact not read leaves its check quiet
        return None


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _said(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


__all__ = ["Facts", "Finding", "diagnose", "gather"]
