"""Migrate the master, start one worker per agent, enqueue to both, print the results.

    python examples/multi-agent/run.py

Needs PostgreSQL on 127.0.0.1:5432 (database ``test``) and Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from tasks import app, monthly_report, send_email  # noqa: E402


def reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def start_worker(agent: str, *options: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "jobmaster", "worker", "-A", "tasks", "--agent", agent,
               *options, "-l", "ERROR"]
    print(f"  $ jobmaster worker -A tasks --agent {agent} {' '.join(options)}")
    return subprocess.Popen(command, cwd=HERE)


def main() -> int:
    missing = [name for name, port in (("PostgreSQL", 5432), ("Redis", 6379))
               if not reachable(port)]
    if missing:
        print(f"this example needs {' and '.join(missing)} running on 127.0.0.1")
        return 1
    started = time.monotonic()
    before = app.migrate()  # what `jobmaster migrate -A tasks` does
    print(f"master schema ready (it was {'at revision ' + before if before else 'absent'})")
    for name in app.config.agents:
        app.agent(name).purge()  # drop jobs left in the agents by an earlier, interrupted run

    print("starting one worker per agent:")
    workers = {
        "main": start_worker("main", "-c", "2"),
        "fast": start_worker("fast", "--lane", "emails", "-c", "4", "--pool", "threads"),
    }
    agent_of_pid = {str(proc.pid): name for name, proc in workers.items()}
    try:
        handles = [send_email.delay(to=f"user{i}@example.com", subject="welcome")
                   for i in range(1, 4)]
        handles += [monthly_report.delay(month=m) for m in ("2026-09", "2026-10")]
        print(f"\nenqueued {len(handles)} jobs: emails to 'fast' (Redis), reports to 'main' "
              "(PostgreSQL)\n")
        for handle in handles:
            job = handle.wait(timeout=30)
            agent = agent_of_pid.get((job.worker or "").rsplit(":", 1)[-1], "?")
            outcome = repr(job.result) if job.status.value == "succeeded" else job.status.value
            print(f"  {job.definition_id:<15} lane {job.lane:<8} agent {agent:<5} "
                  f"progress {job.progress if job.progress is not None else '-':>4}  -> {outcome}")
        print(f"\nwaiting in the agents now: main {app.agent('main').length()}, "
              f"fast {app.agent('fast').length()}")
        print(f"done in {time.monotonic() - started:.1f} s")
        return 0
    finally:
        for proc in workers.values():
            proc.send_signal(signal.SIGTERM)  # warm shutdown
        for proc in workers.values():
            proc.wait(30)


if __name__ == "__main__":
    sys.exit(main())
