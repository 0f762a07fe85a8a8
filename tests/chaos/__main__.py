"""``python -m tests.chaos``: chaos runs per agent and scenario, then the table.

Each run starts its stack on private servers, real workers, beats and a producer, injects
its faults while jobs flow, drains, stops everything and classifies every token (see
``tests/chaos/__init__.py``). The exit status is 1 if any run lost a job, or ended with a
master status that disagrees with the side effects, or could not run.

Servers are the harness's own, on free ports, their data in temporary directories:
redis-server (appendonly yes), nats-server -js, PostgreSQL (initdb), MariaDB and a
RabbitMQ node; the SQLite stack uses files. Faults: worker-kill (SIGKILL a worker every
3-5 s), beat-kill (SIGKILL the leading beat of three), broker-restart (SIGKILL the agent's
server and start it again; SQLite: every worker killed at once), master-restart
(PostgreSQL immediate shutdown, MariaDB SIGKILL), producer-kill (SIGKILL mid-loop),
partition (a TCP proxy per worker blackholes or resets its agent link) and clock-skew (a
worker stopped and replaced by one whose wall clock is 30 s to 5 min off).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.chaos.faults import FAULTS, SCENARIOS
from tests.chaos.ledger import KNOWN
from tests.chaos.run import AGENTS, RunResult, Settings, run_one
from tests.chaos.servers import Missing, Services
from tests.services import in_ci

DEFAULT_AGENTS = ("redis", "postgres", "sqlite", "nats")


def _names(text: str, known: tuple[str, ...] | list[str], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what} {', '.join(unknown)}; use {', '.join(known)}")
    return names


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", "--agents", dest="agents", default=",".join(DEFAULT_AGENTS),
                        help=f"comma-separated agents, of {', '.join(AGENTS)} "
                             "(default: %(default)s)")
    parser.add_argument("--scenario", "--scenarios", dest="scenarios", default="mix",
                        help=f"comma-separated scenarios, of {', '.join(SCENARIOS)}, or 'all' "
                             "(each alone, then mix); default: %(default)s")
    parser.add_argument("--faults", default=None,
                        help=f"a custom fault mix instead of scenarios, of "
                             f"{', '.join(FAULTS)}")
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per run (%(default)s)")
    parser.add_argument("--duration", type=float, default=45.0,
                        help="seconds of faults per run; jobs are produced over the first "
                             "80%% of them (%(default)s)")
    parser.add_argument("--workers", type=int, default=3, help="workers (%(default)s)")
    parser.add_argument("--concurrency", type=int, default=2,
                        help="processes per worker (%(default)s)")
    parser.add_argument("--lease", type=float, default=4.0,
                        help="lease_seconds of the workers (%(default)s)")
    parser.add_argument("--work-ms", type=float, default=10.0,
                        help="a job sleeps 0..N ms (%(default)s)")
    parser.add_argument("--drain-timeout", type=float, default=120.0,
                        help="seconds to wait for the jobs to drain (%(default)s)")
    parser.add_argument("--redis-fsync", choices=("always", "everysec"), default="always",
                        help="appendfsync of the private redis-server (%(default)s)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--log-level", default="INFO", help="workers' log level")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where runs keep their logs (default: a temporary directory, "
                             "deleted when every run passed)")
    parser.add_argument("--keep", action="store_true", help="keep the logs of every run")
    return parser.parse_args(argv)


def table(results: list[RunResult]) -> str:
    """The ok / lost / duplicated / unexpected table, one row per run."""
    head = ("agent", "scenario", "acked", "ok", "lost", "dup", "dup?", "unexp", "unexp!",
            "status≠", "faults injected", "s")
    rows = [head]
    for r in results:
        counts = r.timeline.counts
        injected = ", ".join(f"{k.replace('-kill', '')}×{v}" for k, v in sorted(counts.items())
                             if k in ("worker-kill", "beat-kill", "producer-kill",
                                      "all-workers-kill", "agent-down", "master-down",
                                      "partition", "clock-skew"))
        v = r.verdict
        if v is None:
            rows.append((r.agent, r.scenario, "-", "-", "-", "-", "-", "-", "-", "-",
                         f"ERROR: {r.error}"[:80], f"{r.seconds:.0f}"))
            continue
        rows.append((r.agent, r.scenario, str(v.acked), str(v.ok), str(len(v.lost)),
                     str(len(v.duplicated)), str(len(v.unexplained)),
                     str(len(v.unexpected)), str(sum(1 for u in v.unexpected if not u[2])),
                     str(len(v.mismatches)), injected or "none", f"{r.seconds:.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


LEGEND = ("acked: delay() returned; ok: ran exactly once; lost: acked, never ran; dup: ran "
          "more than once (dup?: of those, not explained by an expired lease of a worker "
          "that was killed, partitioned or lost its ack in an agent restart); unexp: ran, "
          "never acked (unexp!: without the producer dying or delay() raising mid-call); "
          "status≠: master status disagrees with the side effects.")


def details(r: RunResult) -> str:
    lines = [f"== {r.agent} / {r.scenario}: faults {', '.join(r.faults) or 'none'} "
             f"({r.seconds:.0f} s, logs in {r.directory})"]
    for fault, why in r.skipped.items():
        lines.append(f"  skipped {fault}: {why}")
    notes: dict[str, int] = {}
    for note in r.notes:  # "worker 123 exited ..." ×N as one line
        key = re.sub(r"^(worker|beat) \d+ ", r"\1 ", note)
        notes[key] = notes.get(key, 0) + 1
    lines += [f"  note: {n}" + (f" (×{k})" if k > 1 else "") for n, k in notes.items()]
    if r.error:
        lines.append(f"  ERROR: {r.error} (see {r.directory / 'harness-error.txt'})")
    v = r.verdict
    if v is not None:
        kinds: dict[str, int] = {}
        for d in v.duplicated:
            kinds[d.kind] = kinds.get(d.kind, 0) + 1
        if kinds:
            lines.append("  duplicates by reason: " + ", ".join(
                f"{k} ×{n}" for k, n in sorted(kinds.items())))
        for d in v.duplicated:
            known = " (known)" if d.kind in KNOWN else ""
            lines.append(f"  dup {d.job_id} ({d.token}, {len(d.runs)} runs) [{d.kind}"
                         f"{known}]: {d.reason}")
        allowed = [u for u in v.unexpected if u[2]]
        if allowed:
            why: dict[str, int] = {}
            for u in allowed:
                key = u[3].split(":")[0]
                why[key] = why.get(key, 0) + 1
            lines.append("  unexpected but allowed: " + ", ".join(
                f"{k} ×{n}" for k, n in why.items()))
        if v.pending:
            lines.append(f"  unfinished in the master after the drain: {len(v.pending)} "
                         f"(e.g. {v.pending[:3]})")
    lines += [f"  {f}" for f in r.findings]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    agents = _names(args.agents, AGENTS, "agent")
    if args.faults:
        plans = [("custom", tuple(_names(args.faults, tuple(FAULTS), "fault")))]
    else:
        chosen = list(SCENARIOS) if args.scenarios == "all" else \
            _names(args.scenarios, tuple(SCENARIOS), "scenario")
        plans = [(name, SCENARIOS[name]) for name in chosen]
    settings = Settings(jobs=args.jobs, duration=args.duration, workers=args.workers,
                        concurrency=args.concurrency, lease=args.lease, work_ms=args.work_ms,
                        drain_timeout=args.drain_timeout, seed=args.seed,
                        log_level=args.log_level)
    base = args.dir or Path(tempfile.mkdtemp(prefix="jm-chaos-"))
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)  # PostgreSQL and RabbitMQ run as their own users: they go through it
    services = Services(base / "servers", redis_fsync=args.redis_fsync)
    results: list[RunResult] = []
    problems = 0
    try:
        for agent in agents:
            for name, faults in plans:
                print(f"-- {agent} / {name} ({', '.join(faults)}): {settings.jobs} jobs, "
                      f"{settings.duration:g} s of faults", flush=True)
                started = time.monotonic()
                try:
                    result = run_one(agent, name, faults, dataclasses.replace(settings),
                                     services, base)
                except Missing as exc:
                    print(f"   cannot run {agent}: {exc}"
                          + ("; CI needs every server installed" if in_ci() else ""))
                    problems += in_ci()
                    break
                results.append(result)
                v = result.verdict
                summary = "error" if v is None else (
                    f"acked {v.acked}, ok {v.ok}, lost {len(v.lost)}, dup "
                    f"{len(v.duplicated)}, unexpected {len(v.unexpected)}, status≠ "
                    f"{len(v.mismatches)}")
                print(f"   {summary} ({time.monotonic() - started:.0f} s)", flush=True)
    finally:
        services.close(keep=args.keep)
    print()
    for r in results:
        print(details(r))
        print()
    print(table(results))
    print()
    print(LEGEND)
    failed = [r for r in results if r.failed]
    if failed or problems:
        print(f"\nFAILED: {len(failed)} run(s) lost jobs, disagree with the master or "
              f"could not run; logs kept in {base}")
        return 1
    if not args.keep and args.dir is None:
        shutil.rmtree(base, ignore_errors=True)
    else:
        print(f"\nlogs in {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
