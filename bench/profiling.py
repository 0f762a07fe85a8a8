"""Profile a jobmaster drain with py-spy and say where the worker's time goes.

``py-spy record --subprocesses --idle -f raw`` wraps the worker command; the raw stacks
are then split into the supervisor's main thread and the pool's children, and folded into
the share of wall time each step of the supervisor's loop takes (claim, cancellation check,
dispatch, waiting for reports, writing outcomes, heartbeat) plus self time per function.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from bench.harness import Context, Spawned, children, wait_until
from bench.systems import System

RATE = 250  # samples per second


def _py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _name(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "/lib/python3", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m.group('func')} ({path})"


_KEY_CALLS = (
    ("Worker._fill", "claim loop (_fill: agent claim + cancellation check)"),
    ("RedisAgent.claim", "  agent.claim (Redis script + BLPOP wait)"),
    ("Worker._accept", "  _accept (decode the envelope headers)"),
    ("Master.cancelled_jobs", "    master.cancelled_jobs (once a second)"),
    ("Worker._dispatch", "dispatch to pool children (_dispatch)"),
    ("PreforkPool.poll", "wait for children's reports (pool.poll)"),
    ("Worker._on_event", "handle reports (_on_event/_finish/_record)"),
    ("Worker._flush", "write outcomes (_flush)"),
    ("Master.record", "  master.record (upsert batch)"),
    ("RedisAgent.ack", "  agent.ack"),
    ("Worker._heartbeat", "heartbeat (lease extend + worker_seen + cancellations)"),
)


def _kind(frames: list[str]) -> str:
    text = ";".join(frames)
    if "_child_main" in text:
        return "pool children (2 processes, summed)"
    if "Worker._loop" in text or "Worker.run" in text:
        return "supervisor (main thread)"
    return "other threads"


def summarise(raw: Path, seconds: float, top: int = 12) -> str:
    """Where the time goes, from py-spy's raw (folded) output recorded with ``--idle``:
    for the supervisor's main thread, the share of its wall time in each step of its loop;
    for the pool children, in each function; self time (innermost frame) for both."""
    total_time: dict[str, Counter[str]] = defaultdict(Counter)
    self_time: dict[str, Counter[str]] = defaultdict(Counter)
    samples: Counter[str] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = [f for f in stack.split(";")
                  if not f.startswith("process ") and not f.startswith("thread ")]
        kind = _kind(frames)
        names = [_name(f) for f in frames]
        samples[kind] += count
        if names:
            self_time[kind][names[-1]] += count
        for n in set(names):
            total_time[kind][n] += count
    lines = [f"{seconds:.1f} s of draining; py-spy samples every thread, idle or not, so a "
             "share is of wall time.", ""]
    sup = "supervisor (main thread)"
    if samples[sup]:
        total = samples[sup]
        lines += [f"### {sup}: {total} samples", "", "| share of wall time | step |",
                  "|---:|---|"]
        for needle, label in _KEY_CALLS:
            c = sum(v for k, v in total_time[sup].items() if k.startswith(needle + " "))
            lines.append(f"| {c / total * 100:.1f}% | {label} |")
        lines += ["", "| self % | innermost function |", "|---:|---|"]
        for name, c in self_time[sup].most_common(top):
            lines.append(f"| {c / total * 100:.1f} | {name} |")
        lines.append("")
    for kind in samples:
        if kind == sup:
            continue
        total = samples[kind]
        lines += [f"### {kind}: {total} samples", "", "| self % | innermost function |",
                  "|---:|---|"]
        for name, c in self_time[kind].most_common(8):
            lines.append(f"| {c / total * 100:.1f} | {name} |")
        lines.append("")
    return "\n".join(lines)


def _stop_under_spy(spawned: Spawned) -> None:
    """Stop a worker running under py-spy: the worker itself, not py-spy, which writes its
    file when its target exits."""
    for pid in children(spawned.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    try:
        spawned.proc.wait(60)
    except subprocess.TimeoutExpired:
        pass


def profile_drain(ctx: Context, system: System, n: int, folder: Path, mode: str = "noop",
                  concurrency: int = 2, kind: str = "noop", arg: float = 0.0,
                  label: str = "drain") -> str:
    """Drain ``n`` jobs of ``kind`` with one worker (``mode``, ``concurrency``) under
    py-spy, from launch until the master holds them ``succeeded``; return the summary."""
    spy = _py_spy()
    if spy is None:
        return "py-spy is not installed (pip install py-spy); no profile"
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / f"{label}-{system.key}.txt"
    key = ctx.prefix + "profile:" + label
    step = ctx.step("prof")
    system.open(step)
    try:
        system.bulk(key, n, kind, arg)
        system.recorded()
        client = ctx.redis()
        wrap = [spy, "record", "--subprocesses", "--idle", "-r", str(RATE), "-f", "raw", "-o",
                str(raw), "--"]
        launched = time.perf_counter()
        (spawned,) = system.start_workers(1, concurrency, wrap=wrap, mode=mode)
        first = wait_until("the first job", lambda: int(client.get(key) or 0) >= 1, 120, 0.002,
                           [spawned])
        done = wait_until("all recorded", lambda: system.succeeded() >= n, 120 + n / 20, 0.02,
                          [spawned])
        _stop_under_spy(spawned)
        ctx.stop(spawned)
    finally:
        system.close()
    if not raw.exists():
        return f"py-spy wrote no profile (see {spawned.log_path})"
    what = {"noop": "no-op", "io": "100 ms `asyncio.sleep`", "cpu": "hashing"}[kind]
    return (f"## Profile: {system.label}, {n:,} {what} jobs, worker `{mode}` mode at "
            f"concurrency {concurrency} (py-spy {RATE} Hz, raw stacks in {raw}): launch → "
            f"first job done {first - launched:.2f} s, first job → all succeeded "
            f"{done - first:.2f} s\n\n" + summarise(raw, done - launched))


_STARTUP_STEPS = (
    ("Worker._loop", "claim loop: first claim, the first job, stopping"),
    ("Master.ensure_ready", "master.ensure_ready (connect, check the schema revision)"),
    ("PreforkPool.start", "pool.start (fork the children)"),
    ("Worker._register_definitions", "register the definitions in the master"),
    ("Worker._heartbeat", "first heartbeat (worker row in the master)"),
    ("Worker._refresh_cancellations", "first cancellations query"),
    ("App.agent", "open the agent"),
    ("_find_and_load", "imports (jobmaster, SQLAlchemy, drivers, the app module)"),
)


def profile_startup(ctx: Context, system: System, folder: Path) -> str:
    """Launch a worker under py-spy with one job waiting, stop it once the master records
    the job ``succeeded``, and split the supervisor's wall time into its start-up steps."""
    spy = _py_spy()
    if spy is None:
        return "py-spy is not installed (pip install py-spy); no profile"
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / f"startup-{system.key}.txt"
    key = ctx.prefix + "profile:startup"
    step = ctx.step("profs")
    system.open(step)
    try:
        system.delay(key)
        system.recorded()
        client = ctx.redis()
        wrap = [spy, "record", "--subprocesses", "--idle", "-r", str(RATE), "-f", "raw", "-o",
                str(raw), "--"]
        launched = time.perf_counter()
        (spawned,) = system.start_workers(1, 2, wrap=wrap)
        first = wait_until("the first job", lambda: int(client.get(key) or 0) >= 1, 120, 0.002,
                           [spawned])
        done = wait_until("recorded", lambda: system.succeeded() >= 1, 120, 0.005, [spawned])
        _stop_under_spy(spawned)
        ctx.stop(spawned)
    finally:
        system.close()
    if not raw.exists():
        return f"py-spy wrote no profile (see {spawned.log_path})"
    steps: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        # the supervisor's main thread only: not the pool's children, not other threads
        if not count_s.isdigit() or "_child_main" in stack or "Thread._bootstrap" in stack:
            continue
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        count = int(count_s)
        total += count
        names = [_name(f) for f in frames]
        label = next((lab for needle, lab in _STARTUP_STEPS
                      if any(n.startswith(needle + " ") for n in names)),
                     "other (interpreter start, CLI, app set-up)")
        steps[label] += count
    lines = [f"## Profile: {system.label} worker start-up (py-spy {RATE} Hz, raw stacks in "
             f"{raw}): launch → first job done {first - launched:.2f} s, → recorded "
             f"succeeded {done - launched:.2f} s (py-spy's own start included)", "",
             "| share of the supervisor's wall time | step |", "|---:|---|"]
    for label, count in steps.most_common():
        lines.append(f"| {count / max(total, 1) * 100:.1f}% ({count / RATE:.2f} s) | {label} |")
    return "\n".join(lines) + "\n"


def profile_calls(ctx: Context, system: System, n: int, bulk: bool) -> str:
    """cProfile of ``n`` one-job enqueues (or one ``delay_many`` of ``n``), then
    ``flush()``, in this process: the functions with the most own time."""
    import cProfile
    import io
    import pstats

    step = ctx.step("cprof")
    system.open(step)
    key = ctx.prefix + "cprofile"
    try:
        system.delay(key)
        system.recorded()
        profiler = cProfile.Profile()
        t0 = time.perf_counter()
        profiler.enable()
        if bulk:
            system.bulk(key, n)
        else:
            for _ in range(n):
                system.delay(key)
        system.recorded()
        profiler.disable()
        seconds = time.perf_counter() - t0
    finally:
        system.close()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("cumulative").print_stats(22)
    body = [ln for ln in stream.getvalue().splitlines() if ln.strip()]
    table = [ln for ln in body if "(" in ln and ln.strip()[0].isdigit()]
    what = f"one `delay_many` of {n:,}" if bulk else f"{n:,} × `delay`"
    out = [f"## cProfile: {system.label}, {what} + `flush()`: {seconds:.2f} s under the "
           f"profiler ({n / seconds:,.0f} jobs/s)", "", "```",
           "   ncalls  tottime  percall  cumtime  percall filename:lineno(function)"]
    out += [ln.replace(str(Path(sys.prefix)), "…") for ln in table]
    out += ["```", ""]
    return "\n".join(out)
