"""The FastAPI example over HTTP: ``uvicorn api:api`` and a real ``jobmaster worker -A
tasks`` in subprocesses, on a temporary SQLite master and agent; requests sent at once
with httpx enqueue with ``delay_async`` and the worker runs every job."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fastapi"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


class Services:
    """The example's server and worker, and their logs."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.directory = directory
        self.env = env
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(self.directory / f"{name}.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", *args], cwd=EXAMPLE, env=self.env,
                                    stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text(errors="replace")

    def stop(self, name: str) -> int:
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBMASTER_")}
    path = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update({"JOBMASTER_MASTER_URL": f"sqlite:///{tmp_path}/master.db",
                "JOBMASTER_AGENT_URL": f"sqlite:///{tmp_path}/agent.db",
                "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"})
    running = Services(tmp_path, env)
    try:
        yield running
    finally:
        codes = {name: running.stop(name) for name in list(running.procs)}
    for name, code in codes.items():
        if code not in _CLEAN[name]:
            print(running.log(name)[-5000:])
            pytest.fail(f"{name} exited with {code} (its log is printed above)")


_CLEAN = {"worker": (0,), "server": (0, -signal.SIGTERM)}
"""Exit codes of a clean stop: uvicorn ends by raising again the SIGTERM it handled."""


def _up(services: Services) -> bool:
    try:
        return httpx.get(f"{services.base}/docs", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_endpoints_enqueue_with_delay_async_and_a_worker_runs_the_jobs(
        services: Services) -> None:
    services.start("worker", "jobmaster", "worker", "-A", "tasks", "-c", "1", "-l", "INFO")
    services.start("server", "uvicorn", "api:api", "--host", "127.0.0.1",
                   "--port", str(services.port))
    wait_for(lambda: _up(services), 60, "uvicorn to serve the API")
    assert "Application startup complete" in services.log("server")

    async def enqueue() -> list[tuple[str, Any]]:
        async with httpx.AsyncClient(base_url=services.base, timeout=10) as client:
            adds = [client.post("/add", params={"x": i, "y": 10 * i}) for i in range(8)]
            greets = [client.post("/greet", params={"name": n}) for n in ("ada", "bob")]
            responses = await asyncio.gather(*adds, *greets)
        assert [r.status_code for r in responses] == [202] * 10, [r.text for r in responses]
        expected: list[Any] = [11 * i for i in range(8)] + ["hello ada", "hello bob"]
        return [(r.json()["id"], want) for r, want in zip(responses, expected, strict=True)]

    submitted = asyncio.run(enqueue())
    assert len({job_id for job_id, _ in submitted}) == 10

    def finished() -> list[dict[str, Any]]:
        jobs = [httpx.get(f"{services.base}/jobs/{job_id}", timeout=10).json()
                for job_id, _ in submitted]
        return jobs if all(j["status"] in ("succeeded", "failed") for j in jobs) else []

    jobs = wait_for(finished, 60, "the worker to run every job")
    assert [(j["status"], j["result"]) for j in jobs] == [
        ("succeeded", want) for _, want in submitted]
    assert {j["definition"] for j in jobs} == {"add", "greet"}

    missing = httpx.get(f"{services.base}/jobs/nope", timeout=10)
    assert missing.status_code == 404
    bad = httpx.post(f"{services.base}/add", params={"x": "one", "y": 2}, timeout=10)
    assert bad.status_code == 422  # FastAPI refuses it before any enqueue

    assert services.stop("server") in _CLEAN["server"]
    assert "Application shutdown complete" in services.log("server")
    assert "Traceback" not in services.log("server"), services.log("server")
