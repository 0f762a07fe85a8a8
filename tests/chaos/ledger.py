"""Reading a chaos run's logs and judging them: pure code, no processes, no I/O but files.

Inputs: the producers' ledgers (``tests.chaos.producer``), the side-effect log the job
appends to (``tests.chaos.app``), the master's final record of every job and the harness's
timeline of faults (``Timeline``). ``classify`` sorts every token into Jepsen's total-queue
categories and gives the reason for each duplicate.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_FINAL = frozenset({"succeeded", "failed", "cancelled"})
_TOLERANCE = 0.25
"""Seconds of slack when comparing times measured by different processes."""


@dataclass(frozen=True, slots=True)
class SideEffect:
    """One run of the job, as its handler recorded it."""

    token: str
    job_id: str
    attempt: int
    worker: int
    """Pid of the worker (the handler's parent process in the prefork pool)."""
    pid: int
    """Pid of the process the handler ran in."""
    started: float
    ended: float


@dataclass(slots=True)
class Ledger:
    """What the producers said about each token."""

    intended: dict[str, float] = field(default_factory=dict)
    """Token → when ``delay()`` was called."""
    acked: dict[str, str] = field(default_factory=dict)
    """Token → job id, for the tokens whose ``delay()`` returned."""
    failed: dict[str, str] = field(default_factory=dict)
    """Token → the error ``delay()`` raised."""
    finished: int = 0
    """Producers that wrote their ``D`` line (all enqueued, written to the master)."""


def read_ledgers(paths: Iterable[Path]) -> Ledger:
    """The producers' ledgers, merged."""
    ledger = Ledger()
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            fields = line.split("\t")
            kind = fields[0]
            if kind == "I" and len(fields) >= 3:
                ledger.intended[fields[1]] = float(fields[2])
            elif kind == "A" and len(fields) >= 4:
                ledger.acked[fields[1]] = fields[2]
            elif kind == "F" and len(fields) >= 3:
                ledger.failed[fields[1]] = fields[2]
            elif kind == "D":
                ledger.finished += 1
    return ledger


def read_side_effects(path: Path) -> tuple[list[SideEffect], int]:
    """Every run in the side-effect log, and how many lines could not be read (a torn
    line would mean a write was not atomic)."""
    runs: list[SideEffect] = []
    torn = 0
    if not path.exists():
        return runs, torn
    for line in path.read_text(errors="replace").splitlines():
        fields = line.split("\t")
        try:
            token, job_id, attempt, worker, pid, started, ended = fields
            runs.append(SideEffect(token, job_id, int(attempt), int(worker), int(pid),
                                   float(started), float(ended)))
        except ValueError:
            torn += 1
    return runs, torn


@dataclass(frozen=True, slots=True)
class Window:
    """A fault that lasted a while: an agent or master outage, a partition."""

    start: float
    end: float
    worker: int | None = None
    what: str = ""

    def overlaps(self, start: float, end: float) -> bool:
        return self.start <= end and start <= self.end


@dataclass(slots=True)
class Timeline:
    """The faults the harness injected, by time (``time.time()``)."""

    worker_kills: dict[int, float] = field(default_factory=dict)
    """Worker pid → when it was sent SIGKILL."""
    partitions: list[Window] = field(default_factory=list)
    agent_outages: list[Window] = field(default_factory=list)
    master_outages: list[Window] = field(default_factory=list)
    producer_kills: list[float] = field(default_factory=list)
    beat_kills: list[float] = field(default_factory=list)
    beat_requeues: dict[str, list[float]] = field(default_factory=dict)
    """Job id → when beat pushed it again as a lost worker's job (from the master's audit
    trail: "recovered: its worker was lost")."""
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @classmethod
    def from_events(cls, events: Iterable[Mapping[str, object]]) -> Timeline:
        """A timeline from the harness's event records (``{"t", "event", ...}``)."""
        timeline = cls()
        open_: dict[tuple[str, object], float] = {}
        for e in events:
            t = float(e["t"])  # type: ignore[arg-type]
            kind = str(e["event"])
            pid = e.get("pid")
            timeline.counts[kind] += 1
            if kind == "worker-kill":
                timeline.worker_kills[int(pid)] = t  # type: ignore[arg-type]
            elif kind == "producer-kill":
                timeline.producer_kills.append(t)
            elif kind == "beat-kill":
                timeline.beat_kills.append(t)
            elif kind in ("partition", "agent-down", "master-down"):
                open_[(kind, pid)] = t
            elif kind in ("heal", "agent-up", "master-up"):
                start_kind = {"heal": "partition", "agent-up": "agent-down",
                              "master-up": "master-down"}[kind]
                start = open_.pop((start_kind, pid), None)
                if start is None:
                    continue
                window = Window(start, t, None if pid is None else int(pid),  # type: ignore[arg-type]
                                str(e.get("how", "")))
                {"partition": timeline.partitions, "agent-down": timeline.agent_outages,
                 "master-down": timeline.master_outages}[start_kind].append(window)
        for (kind, pid), start in open_.items():  # never closed: lasted to the end
            window = Window(start, float("inf"), None if pid is None else int(pid))  # type: ignore[arg-type]
            {"partition": timeline.partitions, "agent-down": timeline.agent_outages,
             "master-down": timeline.master_outages}[kind].append(window)
        return timeline


def read_events(path: Path) -> list[dict[str, object]]:
    """The harness's event records (one JSON object a line)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- judging -----------------------------------------------------------------------------
EXPLAINED = frozenset({
    "killed-worker-lease-expired", "partition-lease-expired", "partition-stale-claim",
    "agent-restart-lease-expired", "killed-worker-requeued", "partition-requeued",
    "agent-restart-requeued",
})
"""Duplicate kinds that at-least-once delivery allows: a worker could not settle the job
(it was killed, cut off from its agent, or its agent lost the ack in a restart) and the job
ran again only once that worker's lease could have expired; or, on an agent that hands a
dead connection's deliveries back at once (RabbitMQ), once that connection was gone."""

KNOWN = frozenset({"agent-restart-inside-lease"})
"""Duplicate kinds known and accepted for some agents (NATS redelivers inside a live lease
after its server is killed)."""


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A token that ran more than once, with why."""

    token: str
    job_id: str
    runs: tuple[SideEffect, ...]
    kind: str
    reason: str

    @property
    def explained(self) -> bool:
        return self.kind in EXPLAINED


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A job whose final status in the master disagrees with its side effects."""

    job_id: str
    token: str | None
    status: str | None
    runs: int
    what: str


@dataclass(slots=True)
class Verdict:
    """The classification of one run."""

    acked: int = 0
    ok: int = 0
    lost: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(token, job id, master status) of acknowledged jobs that never ran."""
    duplicated: list[Duplicate] = field(default_factory=list)
    unexpected: list[tuple[str, str, bool, str]] = field(default_factory=list)
    """(token, job id, allowed, why) of runs of jobs never acknowledged to the producer."""
    mismatches: list[Mismatch] = field(default_factory=list)
    pending: list[tuple[str, str]] = field(default_factory=list)
    """(job id, status) of jobs the master still holds unfinished after the drain."""
    torn_lines: int = 0
    runs: int = 0

    @property
    def unexplained(self) -> list[Duplicate]:
        return [d for d in self.duplicated if not d.explained]

    @property
    def failed(self) -> bool:
        """Whether the run shows lost jobs or statuses that disagree with side effects."""
        return bool(self.lost or self.mismatches)


def explain_duplicate(runs: Sequence[SideEffect], timeline: Timeline, *, lease: float,
                      heartbeat: float, enqueued: float | None = None,
                      requeue_on_disconnect: bool = False) -> tuple[str, str]:
    """Why a job ran again after each of its runs (sorted by start): (kind, reason). The
    kind is the first pair's, or the first unexplained pair's. ``enqueued``: when the
    producer called ``delay()`` (no worker held the job before)."""
    since = runs[0].started - 3600.0 if enqueued is None else enqueued
    pairs = [_explain_pair(a, b, timeline, lease=lease, heartbeat=heartbeat, enqueued=since,
                           requeue=requeue_on_disconnect)
             for a, b in zip(runs, runs[1:], strict=False)]
    kind = next((k for k, _ in pairs if k not in EXPLAINED), pairs[0][0])
    if len(pairs) == 1:
        return pairs[0]
    return kind, "; then ".join(f"[{k}] {reason}" for k, reason in pairs)


def _cuts(timeline: Timeline, run: SideEffect, enqueued: float, until: float
          ) -> list[Window]:
    """Partitions of ``run``'s worker that began after the job was enqueued and before
    ``until``: the worker may have held the job's claim through them."""
    return [w for w in timeline.partitions
            if w.worker in (run.worker, run.pid)
            and enqueued - _TOLERANCE <= w.start <= until + _TOLERANCE]


def _out_of_touch(timeline: Timeline, run: SideEffect, enqueued: float, until: float,
                  heartbeat: float, killed: float | None = None) -> tuple[float, str] | None:
    """Since when ``run``'s worker could not renew its lease, as of ``until``: the start of
    the chain of partitions of that worker, agent outages (and its kill) that reaches
    ``until``, windows less than a heartbeat apart counting as one (after a window the
    worker renews within a heartbeat). ``None`` if it was in touch at ``until``. Also says
    what cut it off."""
    windows = [(w.start, w.end, f"cut off from its agent ({w.what or 'partition'})")
               for w in _cuts(timeline, run, enqueued, until)]
    windows += [(w.start, w.end, "its agent's server was down")
                for w in timeline.agent_outages
                if enqueued - _TOLERANCE <= w.end and w.start <= until + _TOLERANCE]
    if killed is not None:
        windows.append((killed, float("inf"), "killed"))
    windows.sort()
    reach = until - heartbeat - _TOLERANCE
    chain: tuple[float, str] | None = None
    for start, end, what in reversed(windows):
        if chain is None:
            if end < reach:
                return None
            chain = (start, what)
        elif end >= chain[0] - heartbeat - _TOLERANCE:
            chain = (min(start, chain[0]), what if start < chain[0] else chain[1])
        else:
            break
    return chain


def _explain_pair(first: SideEffect, second: SideEffect, timeline: Timeline, *,
                  lease: float, heartbeat: float, enqueued: float, requeue: bool
                  ) -> tuple[str, str]:
    """Why ``second`` ran after ``first``: (kind, reason).

    A worker that loses touch with its agent at ``t`` (killed, cut off, its agent's server
    down) renewed its lease at most a heartbeat before ``t``, so another worker may take
    the job from ``t + lease - heartbeat`` on; sooner is inside its lease. A worker cut off
    while it held a claim may still run that claim once its lease lapsed (a stale claim),
    before or after the other run. An ack lost in an agent restart lets the lease lapse
    too. ``requeue``: the agent hands a closed connection's deliveries back at once
    (RabbitMQ), so sooner is fine when the connection closed (a kill, a reset, a restart
    of the server)."""
    gap = second.started - first.started
    floor = lease - heartbeat - _TOLERANCE
    numbers = (f"second start {gap:.2f} s after the first (lease {lease:g} s, heartbeat "
               f"{heartbeat:.2g} s)")
    pushed = [t for t in timeline.beat_requeues.get(first.job_id, ())
              if first.started - _TOLERANCE <= t <= second.started]
    if pushed:
        return ("beat-requeue",
                f"beat pushed the job again {pushed[0] - first.started:.2f} s after the first "
                f"run started (its master record still said running on a worker it "
                f"thought lost), and the new message ran: {numbers}")
    killed = timeline.worker_kills.get(first.worker, timeline.worker_kills.get(first.pid))
    inside: tuple[str, str] | None = None  # a kill that does not explain it, if nothing does
    if killed is not None and first.started - _TOLERANCE <= killed <= second.started:
        touch = _out_of_touch(timeline, first, enqueued, killed, heartbeat, killed)
        contact, why = touch if touch is not None else (killed, "killed")
        before = f" ({why} {killed - contact:.1f} s before)" if contact < killed else ""
        since = second.started - contact
        what = (f"worker {first.worker} was killed (SIGKILL) {killed - first.ended:+.2f} s "
                f"after the first run ended{before}, before its outcome was acknowledged")
        if since >= floor:
            return ("killed-worker-lease-expired",
                    f"{what}; another worker took the job {since:.2f} s after it lost "
                    f"touch, once its lease expired: {numbers}")
        if requeue:
            return ("killed-worker-requeued",
                    f"{what}; its connection closed and the agent handed the job back at "
                    f"once ({since:.2f} s later): {numbers}")
        inside = ("killed-worker-inside-lease",
                  f"{what}, yet the job ran again {since:.2f} s after it lost touch, inside "
                  f"its lease: {numbers}")
    # the first run's worker was cut off while it held the job: another took over
    touch = _out_of_touch(timeline, first, enqueued, second.started, heartbeat)
    cuts = _cuts(timeline, first, enqueued, second.started)
    if touch is not None and cuts:
        since = second.started - touch[0]
        what = f"worker {first.worker} was {touch[1]} while it held the job"
        if since >= floor:
            return ("partition-lease-expired",
                    f"{what}; another worker took it {since:.2f} s later, once that lease "
                    f"expired: {numbers}")
        if requeue and any(c.what == "reset" for c in cuts):
            return ("partition-requeued",
                    f"{what}; a reset closed its connection and the agent handed the job "
                    f"back at once: {numbers}")
    # the second run's worker held a claim through a partition and ran it late
    for cut in _cuts(timeline, second, enqueued, second.started):
        since = first.started - cut.start
        when = "during the partition" if second.started < cut.end else \
            f"{second.started - cut.end:.2f} s after the partition healed"
        what = (f"worker {second.worker} held the job when it was cut off from its agent "
                f"({cut.what or 'partition'}, {cut.end - cut.start:.1f} s); worker "
                f"{first.worker} ran it {since:.2f} s after the cut")
        if since >= floor or (requeue and cut.what == "reset"):
            return ("partition-stale-claim",
                    f"{what}, once that claim had lapsed, and worker {second.worker} still "
                    f"ran its stale claim {when}: {numbers}")
    outages = [w for w in timeline.agent_outages if w.overlaps(first.started, second.started)]
    if outages:
        down = f"{outages[0].end - outages[0].start:.1f} s"
        if gap >= floor:
            return ("agent-restart-lease-expired",
                    f"the agent's server was killed and restarted between the runs (down "
                    f"{down}); the ack of worker {first.worker} was lost and the lease "
                    f"expired: {numbers}")
        if requeue:
            return ("agent-restart-requeued",
                    f"the agent's server was killed and restarted between the runs (down "
                    f"{down}) and handed back every delivery it had not seen acked: {numbers}")
        return ("agent-restart-inside-lease",
                f"the agent's server was killed and restarted between the runs (down {down});"
                f" the job was delivered again inside the live lease of worker "
                f"{first.worker}: {numbers}")
    earlier = [w for w in timeline.agent_outages if w.overlaps(enqueued, first.started)]
    if earlier and gap < floor and not requeue:
        last = earlier[-1]
        return ("agent-restart-inside-lease",
                f"the agent's server was killed and restarted after the job was pushed "
                f"(down {last.end - last.start:.1f} s, up {first.started - last.end:.2f} s "
                f"before the first run), and it delivered the job twice: {numbers}")
    if inside is not None:
        return inside
    if cuts or _cuts(timeline, second, enqueued, second.started):
        return ("partition-inside-lease",
                f"worker {first.worker} or {second.worker} was killed or cut off from its "
                f"agent, but the job ran again inside the lease of its claim: {numbers}")
    masters = [w for w in timeline.master_outages if w.overlaps(first.started, second.started)]
    during = " while the master was down" if masters else ""
    if gap >= floor:
        return ("lease-expired-live-worker",
                f"worker {first.worker} was alive and connected, yet its lease expired"
                f"{during} (a heartbeat late, or an outcome not acknowledged): {numbers}")
    return ("inside-live-lease",
            f"ran again inside the live lease of worker {first.worker}{during}, with no "
            f"fault to explain it: {numbers}")


def classify(ledger: Ledger, runs: Sequence[SideEffect], master: Mapping[str, str],
             timeline: Timeline, *, lease: float, heartbeat: float,
             requeue_on_disconnect: bool = False, torn_lines: int = 0) -> Verdict:
    """Sort every token of a run: ok, lost, duplicated, unexpected; and compare the master's
    final status of each job (``master``: job id → status) with its side effects.
    ``requeue_on_disconnect``: the agent hands a closed connection's deliveries back at
    once (RabbitMQ), not after the lease."""
    verdict = Verdict(acked=len(ledger.acked), torn_lines=torn_lines, runs=len(runs))
    by_token: dict[str, list[SideEffect]] = defaultdict(list)
    for run in runs:
        by_token[run.token].append(run)
    for token_runs in by_token.values():
        token_runs.sort(key=lambda r: r.started)
    for token, job_id in sorted(ledger.acked.items()):
        done = by_token.get(token, [])
        if not done:
            verdict.lost.append((token, job_id, master.get(job_id)))
        elif len(done) == 1:
            verdict.ok += 1
    for token, done in sorted(by_token.items()):
        job_id = ledger.acked.get(token, done[0].job_id)
        if token not in ledger.acked:
            if token in ledger.failed:
                why = f"delay() raised: {ledger.failed[token]}"
            elif token in ledger.intended:
                why = "the producer died inside delay()"
            else:
                why = "no producer ever enqueued this token"
            verdict.unexpected.append((token, done[0].job_id, token in ledger.intended, why))
        foreign = {r.job_id for r in done} - {job_id}
        if foreign:
            verdict.mismatches.append(Mismatch(
                job_id, token, master.get(job_id), len(done),
                f"the token ran under other job ids too: {sorted(foreign)}"))
        if len(done) > 1:
            kind, reason = explain_duplicate(done, timeline, lease=lease, heartbeat=heartbeat,
                                             enqueued=ledger.intended.get(token),
                                             requeue_on_disconnect=requeue_on_disconnect)
            verdict.duplicated.append(Duplicate(token, job_id, tuple(done), kind, reason))
    ran_ids = {r.job_id for r in runs}
    for job_id in sorted(ran_ids):
        status = master.get(job_id)
        if status != "succeeded":
            token = next(r.token for r in runs if r.job_id == job_id)
            verdict.mismatches.append(Mismatch(
                job_id, token, status, len(by_token[token]),
                "ran to completion, but the master says "
                + ("nothing (no record)" if status is None else repr(status))))
    tokens_by_id = {job_id: token for token, job_id in ledger.acked.items()}
    verdict.pending = [(i, s) for i, s in sorted(master.items()) if s not in _FINAL]
    for job_id, status in sorted(master.items()):
        if status == "succeeded" and job_id not in ran_ids:
            verdict.mismatches.append(Mismatch(
                job_id, tokens_by_id.get(job_id), status, 0,
                "succeeded in the master, but it never ran (no side effect)"))
    return verdict
