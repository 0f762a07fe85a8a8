"""The app the chaos harness runs: one job that leaves a side effect per run.

Where it stores jobs comes from ``JOBMASTER_*`` variables; where runs are recorded from
``JM_CHAOS_SIDE_EFFECTS``. Each run appends one line to that file, written with one
``write`` on an ``O_APPEND`` descriptor and fsync'd before the handler returns, so a run
that returned left its line on disk and a worker killed mid-job leaves none or a whole one.
"""

from __future__ import annotations

import os
import time

from jobmaster import App, JobContext

SIDE_EFFECTS = "JM_CHAOS_SIDE_EFFECTS"
DEFINITION = "chaos-touch"


def _true_time() -> float:
    """The host's real wall clock, also in a worker whose clock is set off on purpose
    (``tests.fixtures.skewed`` shifts ``time.time``): the ledger compares runs across
    workers."""
    return time.clock_gettime(time.CLOCK_REALTIME)


def append_line(path: str, line: str) -> None:
    """Append ``line`` (one ``write``, then ``fsync``) to ``path``."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def make_app() -> App:
    """A fresh chaos app (its cluster id from ``JOBMASTER_NAME``)."""
    app = App(os.environ.get("JOBMASTER_NAME", "chaos"))

    @app.job(definition_id=DEFINITION)
    def touch(ctx: JobContext, token: str, work: float = 0.0) -> str:
        started = _true_time()
        # in the prefork pool the handler runs in a child: its parent is the worker
        worker, pid = os.getppid(), os.getpid()
        if work > 0:
            time.sleep(work)
        path = os.environ.get(SIDE_EFFECTS)
        if path:
            append_line(path, f"{token}\t{ctx.job_id}\t{ctx.attempt}\t{worker}\t{pid}\t"
                              f"{started:.6f}\t{_true_time():.6f}\n")
        return token

    return app


app = make_app()
