"""The bench's table (markdown, also what is printed) and the targets, met or not."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bench.scenarios import Outcome, Row
from bench.systems import System

LEAD = "jm-redis"


@dataclass
class Target:
    """One target and how the run did against it: jobmaster's number, the peer's (when
    the target is a comparison) and the ratio, against ``limit``."""

    name: str
    goal: str
    jobmaster: float | None
    limit: float
    higher_is_better: bool
    peer: str = ""
    peer_value: float | None = None
    unit: str = ""
    relative: bool = True  # compare jobmaster / peer with ``limit``; else jobmaster itself

    @property
    def measured(self) -> float | None:
        if not self.relative:
            return self.jobmaster
        return _ratio(self.jobmaster, self.peer_value)

    @property
    def met(self) -> bool | None:
        m = self.measured
        if m is None or math.isnan(m):
            return None
        return m >= self.limit if self.higher_is_better else m <= self.limit


def _find(outcomes: dict[str, Outcome], scenario: str, metric: str,
          prefix: bool = False) -> Row | None:
    outcome = outcomes.get(scenario)
    if outcome is None:
        return None
    for row in outcome.rows:
        if row.metric == metric or (prefix and row.metric.startswith(metric)):
            return row
    return None


def _value(row: Row | None, key: str) -> float | None:
    return None if row is None else row.values.get(key)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def targets(outcomes: dict[str, Outcome], systems: Sequence[System]) -> list[Target]:
    """The targets, measured in this run (only those the run has numbers for)."""
    out: list[Target] = []
    labels = {s.key: s.label for s in systems}
    peers = [s.key for s in systems if not s.is_jobmaster]

    def versus(name: str, row: Row | None, limits: dict[str, float], default: float | None,
               higher: bool = True, lead: str = LEAD, unit: str = "") -> None:
        if row is None or lead not in row.values:
            return
        for peer in peers:
            limit = limits.get(peer, default)
            if limit is None or peer not in row.values:
                continue
            goal = (f"≥ {limit:g}× {labels[peer]}" if higher
                    else f"≤ {labels[peer]}'s" if limit == 1 else f"≤ {limit:g}× {labels[peer]}")
            out.append(Target(name, goal, row.values[lead], limit, higher, labels[peer],
                              row.values[peer], unit))

    dsu = _find(outcomes, "drain-startup", "", prefix=True)
    if dsu is not None:
        n = dsu.metric.split(" jobs:")[0]
        dsu = _find(outcomes, "drain-startup", f"{n} jobs: jobs/s, launch → all done",
                    prefix=True)
        versus(f"drain {n}, start-up included", dsu, {"dramatiq": 2.0, "celery": 6.0}, 2.0,
               unit=" jobs/s")
    first = _find(outcomes, "first-job", "launch → first job done", prefix=True)
    versus("worker launch → first job done", first, {"dramatiq": 1.0}, None, higher=False,
           unit=" s")
    enq = _find(outcomes, "enqueue", "jobs/s, calls returned")
    versus("single `delay()` in a loop, until it returns", enq, {}, 1.5, unit=" jobs/s")
    aprod = _find(outcomes, "async-producer", "jobs/s, every call returned")
    if aprod is not None and enq is not None and "dramatiq" in enq.values:
        out.append(Target("async producer, 100 coroutines (`delay_async`), vs Dramatiq's "
                          "single `send` rate", "≥ 5× Dramatiq `send`", _value(aprod, LEAD),
                          5.0, True, "Dramatiq (`send` in a loop)", _value(enq, "dramatiq"),
                          " jobs/s"))
    io = _find(outcomes, "io", "% of the ceiling (concurrency / 0.1 s)")
    if io is not None and LEAD in io.values:
        out.append(Target("I/O-bound: throughput, share of the ceiling", "≥ 90 %",
                          _value(io, LEAD), 90.0, True, unit=" %", relative=False))
    io_rss = _find(outcomes, "io", "worker peak RSS, MiB (process tree)")
    versus("I/O-bound: worker peak RSS", io_rss, {"arq": 1.0}, None, higher=False,
           unit=" MiB")
    pg = _find(outcomes, "postgres", "drain", prefix=True)
    if pg is not None:
        n = pg.metric.split(":")[0]
        pg = _find(outcomes, "postgres", f"{n}: jobs/s, launch → all done", prefix=True)
        versus(f"PostgreSQL agent: {n}, start-up included", pg,
               {"procrastinate": 3.0, "pgqueuer": 1.5}, None, lead="jm-postgres",
               unit=" jobs/s")
    bk = _find(outcomes, "bulk", "jobs/s, call returned")
    if bk is not None and LEAD in bk.values:
        out.append(Target("bulk enqueue (`delay_many` returned)", "≥ 50,000 jobs/s",
                          _value(bk, LEAD), 50_000, True, unit=" jobs/s", relative=False))
    lat = _find(outcomes, "latency", "enqueue → start p50, ms")
    if lat is not None and LEAD in lat.values:
        out.append(Target("latency p50, Redis agent", "≤ 5 ms", _value(lat, LEAD), 5.0,
                          False, unit=" ms", relative=False))
    growth = _find(outcomes, "future", "worker RSS growth, MiB")
    stored = _find(outcomes, "future", "jobs stored")
    if growth is not None and LEAD in growth.values:
        n_jobs = _value(stored, LEAD) or 0
        out.append(Target(f"{n_jobs:,.0f} future jobs: worker RSS flat", "growth < 50 MB",
                          _value(growth, LEAD), 50_000_000 / 2**20, False, unit=" MiB",
                          relative=False))
    sc = _find(outcomes, "scaleout", "speed-up, 2 processes / 1")
    if sc is not None:
        key = LEAD if LEAD in sc.values else next(iter(sc.values), LEAD)
        out.append(Target("scale-out 1 → 2 worker processes", "≥ 1.7×", _value(sc, key), 1.7,
                          True, unit="×", relative=False))
    return out


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    if math.isnan(value):
        return "n/a"
    if digits == 0 and abs(value) < 10:
        digits = 1 if abs(value) >= 1 else 2
    return f"{value:,.{digits}f}"


def render(header: Sequence[str], outcomes: dict[str, Outcome], systems: Sequence[System],
           goals: Sequence[Target]) -> str:
    """The whole report as markdown."""
    lines = ["# jobmaster benchmark", ""]
    lines += [f"- {h}" for h in header if h]
    lines.append("")
    keys = [s.key for s in systems]
    labels = {s.key: s.label for s in systems}
    peers = [s for s in systems if not s.is_jobmaster]
    lead = LEAD if LEAD in keys else next((s.key for s in systems if s.is_jobmaster), None)
    cols = ["scenario", "metric", *(labels[k] for k in keys)]
    cols += [f"jobmaster ÷ {p.label}" for p in peers]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join(["---", "---"] + ["---:"] * (len(cols) - 2)) + "|")
    notes: list[str] = []
    errors: list[str] = []
    for outcome in outcomes.values():
        for row in outcome.rows:
            arrow = "↑" if row.better == "higher" else "↓"
            cells = [row.scenario, f"{row.metric} {arrow}"]
            cells += [_fmt(row.values.get(k), row.digits) for k in keys]
            for p in peers:
                top = row.lead if row.lead in keys else lead
                r = _ratio(row.values.get(top or ""), row.values.get(p.key)) \
                    if row.ratio else None
                cells.append("—" if r is None else f"{r:,.2f}×")
            lines.append("| " + " | ".join(cells) + " |")
        notes += outcome.notes
        errors += outcome.errors
    lines += ["", "↑ higher is better, ↓ lower is better; ratios are jobmaster·redis ÷ peer "
              "(scenario 12: jobmaster·postgres ÷ peer; for ↓ rows a ratio below 1 favours "
              "jobmaster)."]
    if goals:
        lines += ["", "## Targets", "",
                  "| scenario | jobmaster | peer | peer's number | ratio | target | met |",
                  "|---|---:|---|---:|---:|---|:---:|"]
        for g in goals:
            digits = 0 if g.unit == " jobs/s" else 2
            jm = "—" if g.jobmaster is None else f"{_fmt(g.jobmaster, digits)}{g.unit}"
            peer_value = ("" if not g.peer else "—" if g.peer_value is None
                          else f"{_fmt(g.peer_value, digits)}{g.unit}")
            ratio = _ratio(g.jobmaster, g.peer_value) if g.peer else None
            ratio_text = "—" if ratio is None else f"{ratio:,.2f}×"
            met = {True: "met", False: "**not met**", None: "—"}[g.met]
            lines.append(f"| {g.name} | {jm} | {g.peer or '—'} | {peer_value or '—'} | "
                         f"{ratio_text} | {g.goal} | {met} |")
    if notes:
        lines += ["", "Notes:", *[f"- {n}" for n in dict.fromkeys(notes)]]
    if errors:
        lines += ["", "Errors (these measurements are missing):", *[f"- {e}" for e in errors]]
    return "\n".join(lines) + "\n"
