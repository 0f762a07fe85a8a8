"""The producer process of a chaos run: ``python -m tests.chaos.producer LEDGER ...``.

It enqueues ``--count`` jobs, each with a unique token, paced at ``--rate`` per second, and
writes its ledger (one ``O_APPEND`` line per event, tab-separated):

- ``I <token> <time>`` before calling ``delay()``;
- ``A <token> <job id> <time>`` once ``delay()`` returned: the job is acknowledged;
- ``F <token> <error> <time>`` when ``delay()`` raised (the job may still exist);
- ``D <time>`` when every job is enqueued and written to the master.

A token with an ``I`` line and no ``A`` line was cut short (the producer was killed, or
``delay()`` raised): if it runs, it is an *allowed* unexpected run.
"""

from __future__ import annotations

import argparse
import os
import random
import time

from tests.chaos.app import DEFINITION, make_app

_FLUSH_PATIENCE = 120.0
"""Seconds the producer keeps trying to write its jobs to an unreachable master."""


def _line(fd: int, *fields: object) -> None:
    os.write(fd, ("\t".join(str(f).replace("\t", " ").replace("\n", " ") for f in fields)
                  + "\n").encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("ledger")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--prefix", required=True, help="token prefix, unique per producer")
    parser.add_argument("--rate", type=float, default=200.0, help="jobs per second")
    parser.add_argument("--work-ms", type=float, default=10.0,
                        help="longest time a job sleeps (uniform 0..N ms)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)  # noqa: S311 - not for security
    app = make_app()
    touch = app.definition(DEFINITION)
    fd = os.open(args.ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    started = time.monotonic()
    for i in range(args.count):
        ahead = started + i / args.rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        token = f"{args.prefix}{i:06d}"
        _line(fd, "I", token, f"{time.time():.6f}")
        try:
            handle = touch.delay(token=token, work=round(rng.uniform(0, args.work_ms) / 1000, 4))
        except Exception as exc:  # noqa: BLE001 - an outage: note it, go on
            _line(fd, "F", token, f"{type(exc).__name__}: {exc}"[:300], f"{time.time():.6f}")
            time.sleep(0.2)
            continue
        _line(fd, "A", token, handle.id, f"{time.time():.6f}")
    deadline = time.monotonic() + _FLUSH_PATIENCE
    while True:
        try:
            app.flush()
            break
        except Exception as exc:  # noqa: BLE001
            if time.monotonic() > deadline:
                _line(fd, "X", f"could not write pushed jobs to the master: {exc}")
                return 1
            time.sleep(0.5)
    _line(fd, "D", f"{time.time():.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
