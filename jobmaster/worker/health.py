"""A worker's health endpoint, for liveness and readiness probes (``--health-port``).

``GET /healthz`` answers 200 while the worker's loop turns: a loop stuck for
``stuck_after`` seconds answers 503, and a process manager should restart the worker.
``GET /readyz`` answers 200 while the worker takes jobs: it is not stopping, and its last
lease renewal and its last report to the master succeeded recently. Both answer a small
JSON document saying why.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobmaster.forking import after_fork

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

log = logging.getLogger("jobmaster")


@dataclass
class Vitals:
    """What the worker's loop reports about itself: monotonic times, written by its one
    thread and read by the health server's."""

    heartbeat: float
    """Seconds between heartbeats: recent means within three of them."""
    started: float = field(default_factory=time.monotonic)
    tick: float = field(default_factory=time.monotonic)
    agent_ok: float | None = None
    master_ok: float | None = None
    stopping: bool = False

    def live(self, now: float) -> tuple[bool, dict[str, Any]]:
        """Whether the loop turned lately, with the facts behind the answer."""
        since = now - self.tick
        return since <= self.stuck_after, {"loop_seconds_ago": round(since, 3)}

    def ready(self, now: float) -> tuple[bool, dict[str, Any]]:
        """Whether the worker takes jobs: not stopping, its agent and master answering."""
        recent = 3 * self.heartbeat
        facts: dict[str, Any] = {"stopping": self.stopping}
        ok = not self.stopping
        for name, at in (("agent", self.agent_ok), ("master", self.master_ok)):
            ago = None if at is None else round(now - at, 3)
            facts[f"{name}_seconds_ago"] = ago
            ok = ok and ago is not None and ago <= recent
        return ok, facts

    @property
    def stuck_after(self) -> float:
        """Seconds without a turn of the loop after which the worker is not live."""
        return max(30.0, 3 * self.heartbeat)


def serve(vitals: Vitals, port: int, *, addr: str = "0.0.0.0"  # noqa: S104 - a probe
          ) -> ThreadingHTTPServer:
    """Answer ``/healthz`` and ``/readyz`` from ``vitals`` on a daemon thread; processes
    forked later drop their copy of the listening socket."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            path = self.path.split("?", 1)[0].rstrip("/")
            check = {"/healthz": vitals.live, "/readyz": vitals.ready}.get(path)
            if check is None:
                self._answer(404, {"error": "not found; try /healthz or /readyz"})
                return
            ok, facts = check(time.monotonic())
            self._answer(200 if ok else 503, {"status": "ok" if ok else "failing", **facts})

        def _answer(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("health: " + format, *args)

    server = ThreadingHTTPServer((addr, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True,
                     name="jobmaster-health").start()
    after_fork(server, lambda s: s.socket.close())
    return server


__all__ = ["Vitals", "serve"]
