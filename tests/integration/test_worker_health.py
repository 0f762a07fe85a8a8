"""A real worker answering the liveness and readiness probes of ``--health-port``."""

from __future__ import annotations

import json
import signal
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from tests.conftest import Stack, wait_until


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _probe(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return 0, {}


def test_probes_follow_the_worker(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory("sqlite")
    app = stack.app()
    port = _free_port()
    proc = stack.worker("-c", "1", "--health-port", str(port))
    wait_until(lambda: _probe(port, "/readyz")[0] == 200, what="the worker is ready")
    code, body = _probe(port, "/healthz")
    assert code == 200 and body["status"] == "ok" and body["loop_seconds_ago"] < 30
    code, body = _probe(port, "/readyz")
    assert body["stopping"] is False and body["master_seconds_ago"] is not None
    assert _probe(port, "/nope")[0] == 404
    assert app.definition("add").delay(x=1, y=2).wait(timeout=30).result == 3

    proc.send_signal(signal.SIGTERM)  # a warm shutdown: no longer ready
    proc.wait(timeout=30)
    assert _probe(port, "/healthz")[0] == 0  # gone with the worker


def test_a_taken_port_is_one_clear_line(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory("sqlite")
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = stack.worker("--health-port", str(port))
        assert proc.wait(timeout=30) != 0
    log = stack.worker_log()
    assert f"health port {port}:" in log and "Traceback" not in log
