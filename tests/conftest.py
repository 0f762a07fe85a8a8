"""Shared fixtures: isolated masters and agents, and real worker processes."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.services import (
    MYSQL_URL,
    NATS_URL,
    POSTGRES_URL,
    RABBITMQ_URL,
    REDIS_URL,
    require,
)

ROOT = Path(__file__).resolve().parents[1]

# backend name -> (services needed, master URL maker, agent URL maker)
STACKS: dict[str, tuple[tuple[str, ...], Callable[[Path], str], Callable[[Path], str]]] = {
    "sqlite": ((), lambda d: f"sqlite:///{d}/master.db", lambda d: f"sqlite:///{d}/agent.db"),
    "postgres": (("postgres",), lambda d: POSTGRES_URL, lambda d: POSTGRES_URL),
    "mysql": (("mysql",), lambda d: MYSQL_URL, lambda d: MYSQL_URL),
    "redis": (("postgres", "redis"), lambda d: POSTGRES_URL, lambda d: REDIS_URL),
    "nats": (("postgres", "nats"), lambda d: POSTGRES_URL, lambda d: NATS_URL),
    "rabbitmq": (("postgres", "rabbitmq"), lambda d: POSTGRES_URL, lambda d: RABBITMQ_URL),
}


@dataclass
class Stack:
    """Where one test's jobs live: its own cluster, master, agent namespace and log."""

    name: str
    directory: Path
    env: dict[str, str]
    log: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def app(self, module: str = "tests.fixtures.workapp", **kwargs: Any):  # type: ignore[no-untyped-def]
        """A fresh in-process app of fixture ``module`` (its ``make_app(**kwargs)``) on this
        stack: the same definitions as the workers running that module."""
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            return importlib.import_module(module).make_app(**kwargs)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def worker(self, *args: str, app: str = "tests.fixtures.workapp") -> subprocess.Popen[bytes]:
        """Start a real ``jobmaster worker`` process on this stack."""
        index = len(self.workers)
        out = open(self.directory / f"worker-{index}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobmaster", "worker", "-A", app, "-l", "DEBUG", *args],
            cwd=ROOT, env={**os.environ, **self.env}, stdout=out, stderr=subprocess.STDOUT,
        )
        self.workers.append(proc)
        return proc

    def worker_log(self, index: int = 0) -> str:
        """What worker number ``index`` printed so far."""
        return (self.directory / f"worker-{index}.log").read_text(errors="replace")

    def lines(self) -> list[str]:
        """Lines the test jobs appended to the shared log."""
        if not self.log.exists():
            return []
        return self.log.read_text().splitlines()


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what or predicate}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_stack(name: str, tmp_path: Path, **settings: str) -> Stack:
    """A stack on backend ``name`` with its own cluster and namespace."""
    services, master, agent = STACKS[name]
    for service in services:
        require(service)
    tag = uuid.uuid4().hex[:10]
    log = tmp_path / "jobs.log"
    env = {
        "JOBMASTER_NAME": f"t-{tag}",
        "JOBMASTER_NAMESPACE": f"jmt{tag}",
        "JOBMASTER_MASTER_URL": master(tmp_path),
        "JOBMASTER_AGENT_URL": agent(tmp_path),
        "JOBMASTER_AUTO_MIGRATE": "true",
        "JOBMASTER_LEASE_SECONDS": "3",
        "JM_TEST_LOG": str(log),
        **{f"JOBMASTER_{k.upper()}": v for k, v in settings.items()},
    }
    return Stack(name, tmp_path, env, log)


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Make stacks; every worker they started is stopped at the end of the test."""
    made: list[Stack] = []

    def make(name: str = "sqlite", **settings: str) -> Stack:
        directory = tmp_path / f"s{len(made)}"
        directory.mkdir()
        stack = make_stack(name, directory, **settings)
        made.append(stack)
        return stack

    yield make
    for stack in made:
        for proc in stack.workers:
            _stop(proc)
        for proc in stack.workers:
            if proc.returncode not in (0, -9, None):
                print(f"--- worker log ({stack.name}) ---")
                print(stack.worker_log(stack.workers.index(proc))[-5000:])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out (rather than skip) conformance checks that do not apply to a backend: the
    memory agent keeps no stored records that could be corrupted behind its back."""
    from tests.agent_backends import STORE_MALFORMED

    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec is not None else None
        fixtures = getattr(item, "fixturenames", ())
        if backend is not None and "store_malformed" in fixtures and \
                backend not in STORE_MALFORMED:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
