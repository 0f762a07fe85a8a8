"""The bench's table (markdown, also what is printed) and issue 5's targets."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bench.scenarios import Outcome, Row
from bench.systems import System

LEAD = "jm-redis"


@dataclass
class Target:
    """One target of issue 5 and how the run did against it."""

    name: str
    goal: str
    measured: float | None
    limit: float
    higher_is_better: bool
    unit: str = ""

    @property
    def met(self) -> bool | None:
        if self.measured is None or math.isnan(self.measured):
            return None
        if self.higher_is_better:
            return self.measured >= self.limit
        return self.measured <= self.limit

    @property
    def ratio(self) -> float | None:
        """How far along the target is: ≥ 1 means met (measured/limit, or limit/measured
        where lower is better)."""
        if self.measured is None or self.measured <= 0 or math.isnan(self.measured):
            return None
        return self.measured / self.limit if self.higher_is_better else self.limit / self.measured


def _find(outcomes: dict[str, Outcome], scenario: str, metric: str) -> Row | None:
    outcome = outcomes.get(scenario)
    if outcome is None:
        return None
    for row in outcome.rows:
        if row.metric == metric:
            return row
    return None


def _value(row: Row | None, key: str) -> float | None:
    return None if row is None else row.values.get(key)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def targets(outcomes: dict[str, Outcome]) -> list[Target]:
    """Issue 5's targets, measured in this run (only those the run has numbers for)."""
    out: list[Target] = []
    enq = _find(outcomes, "enqueue", "jobs/s, calls returned")
    enq_rec = _find(outcomes, "enqueue", "jobs/s, all recorded in the master (flush returned)")
    if enq is not None:
        for peer, label, limit in (("dramatiq", "Dramatiq `send`", 1.5),
                                   ("celery", "Celery `delay`", 3.0)):
            if peer in enq.values:
                out.append(Target(f"single enqueue, Redis agent, vs {label}", f"≥ {limit}×",
                                  _ratio(_value(enq, LEAD), _value(enq, peer)), limit, True, "×"))
                out.append(Target(f"… counting until recorded in the master, vs {label}",
                                  f"≥ {limit}×", _ratio(_value(enq_rec, LEAD),
                                                        _value(enq, peer)), limit, True, "×"))
    dr = _find(outcomes, "drain",
               "jobs/s, first start → done (jobmaster: all succeeded in the master)")
    if dr is not None:
        for peer, label, limit in (("dramatiq", "Dramatiq (2 processes × 8 threads)", 2.0),
                                   ("celery", "Celery prefork", 5.0)):
            if peer in dr.values:
                out.append(Target(f"drain, concurrency 2, all recorded, vs {label}",
                                  f"≥ {limit}×", _ratio(_value(dr, LEAD), _value(dr, peer)),
                                  limit, True, "×"))
    bk = _find(outcomes, "bulk", "jobs/s, call returned")
    bk_rec = _find(outcomes, "bulk", "jobs/s, all recorded in the master (flush returned)")
    if bk is not None:
        out.append(Target("bulk enqueue, Redis agent (`delay_many` returned)", "≥ 50,000 jobs/s",
                          _value(bk, LEAD), 50_000, True, " jobs/s"))
        out.append(Target("bulk enqueue, Redis agent, until recorded in the master",
                          "≥ 50,000 jobs/s", _value(bk_rec, LEAD), 50_000, True, " jobs/s"))
    lat = _find(outcomes, "latency", "enqueue → start p50, ms")
    if lat is not None:
        for key, limit in (("jm-redis", 5.0), ("jm-nats", 5.0), ("jm-postgres", 20.0)):
            if key in lat.values:
                out.append(Target(f"latency p50, {key.split('-')[1]} agent", f"≤ {limit:g} ms",
                                  _value(lat, key), limit, False, " ms"))
    growth = _find(outcomes, "future", "worker RSS growth, MiB")
    beat = _find(outcomes, "future", "beat RSS after, MiB")
    stored = _find(outcomes, "future", "jobs stored")
    if growth is not None and LEAD in growth.values:
        n = _value(stored, LEAD) or 0
        out.append(Target(f"{n:,.0f} future jobs: worker RSS growth", "< 50 MB",
                          _value(growth, LEAD), 50_000_000 / 2**20, False, " MiB"))
        out.append(Target(f"{n:,.0f} future jobs: beat RSS", "< 200 MB",
                          _value(beat, LEAD), 200_000_000 / 2**20, False, " MiB"))
    sc = _find(outcomes, "scaleout", "speed-up, 2 processes / 1")
    if sc is not None:
        key = LEAD if LEAD in sc.values else next(iter(sc.values), LEAD)
        out.append(Target("scale-out 1 → 2 worker processes", "≥ 1.7×", _value(sc, key), 1.7,
                          True, "×"))
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
    cols += [f"{labels.get(lead or '', 'jm')}/{p.label}" for p in peers]
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
                r = _ratio(row.values.get(lead or ""), row.values.get(p.key)) \
                    if row.ratio else None
                cells.append("—" if r is None else f"{r:,.2f}×")
            lines.append("| " + " | ".join(cells) + " |")
        notes += outcome.notes
        errors += outcome.errors
    lines += ["", "↑ higher is better, ↓ lower is better; ratios are jobmaster·redis ÷ peer "
              "(for ↓ rows a ratio below 1 favours jobmaster)."]
    if goals:
        lines += ["", "## Issue 5 targets", "",
                  "| target | goal | measured | measured ÷ goal | met |",
                  "|---|---|---:|---:|:---:|"]
        for g in goals:
            digits = 0 if g.unit == " jobs/s" else 2
            measured = "—" if g.measured is None else f"{_fmt(g.measured, digits)}{g.unit}"
            ratio = "—" if g.ratio is None else (f"{g.ratio:.2f}" if g.ratio < 100
                                                  else "> 100")
            met = {True: "yes", False: "**no**", None: "—"}[g.met]
            lines.append(f"| {g.name} | {g.goal} | {measured} | {ratio} | {met} |")
    if notes:
        lines += ["", "Notes:", *[f"- {n}" for n in dict.fromkeys(notes)]]
    if errors:
        lines += ["", "Errors (these measurements are missing):", *[f"- {e}" for e in errors]]
    return "\n".join(lines) + "\n"
