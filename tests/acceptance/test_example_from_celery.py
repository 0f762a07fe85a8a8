"""The from-celery example, Celery's "next steps" project with its imports changed, run
the way that tutorial runs it: ``jobmaster worker -A proj`` started in the example's
directory, then the tutorial's calls made from Python, on a temporary SQLite master and
agent."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import pytest

from jobmaster import ArgumentsError, JobFailedError
from jobmaster.loading import load_app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "from-celery"


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A master and an agent of this test only, set as ``JOBMASTER_*`` variables here and
    for the worker (and no other ``JOBMASTER_*`` setting)."""
    for key in list(os.environ):
        if key.startswith("JOBMASTER_"):
            monkeypatch.delenv(key)
    settings = {"JOBMASTER_MASTER_URL": f"sqlite:///{tmp_path}/master.db",
                "JOBMASTER_AGENT_URL": f"sqlite:///{tmp_path}/agent.db"}
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    return settings


@pytest.fixture
def worker(stack: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``jobmaster worker -A proj -l INFO -c 2 --lane default,lopri`` in the example's
    directory (Celery: ``celery -A proj worker -l INFO -c 2 -Q celery,lopri``), stopped
    at the end of the test."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobmaster", "worker", "-A", "proj", "-l", "INFO",
             "-c", "2", "--lane", "default,lopri"],
            cwd=EXAMPLE, env={**os.environ, "PYTHONPATH": path}, stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.returncode != 0:
            print(log_path.read_text(errors="replace")[-5000:])
    assert proc.returncode == 0, "the worker did not stop cleanly (its log is printed above)"


@pytest.fixture
def proj(stack: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The example's ``proj`` package imported here, as the tutorial's Python shell in the
    project's directory does; forgotten afterwards."""
    assert "proj" not in sys.modules
    monkeypatch.syspath_prepend(str(EXAMPLE))
    package = importlib.import_module("proj")
    app = importlib.import_module("proj.celery").app
    importlib.import_module("proj.tasks")
    try:
        yield package
    finally:
        app.close()
        app.default = False  # out of current_app() for later tests
        for name in [n for n in sys.modules if n == "proj" or n.startswith("proj.")]:
            del sys.modules[name]


def test_the_next_steps_tutorial(proj: ModuleType, worker: subprocess.Popen[bytes]) -> None:
    from proj.celery import app
    from proj.tasks import add, mul, xsum

    assert app is load_app("proj")  # `-A proj` finds it in proj.celery, as Celery does
    assert [d.definition_id for d in (add, mul, xsum)] == [
        "proj.tasks.add", "proj.tasks.mul", "proj.tasks.xsum"]  # Celery's task names
    assert add(2, 2) == 4  # applied directly, in this process

    res = add.delay(2, 2)
    assert res.get(timeout=30) == 4
    assert isinstance(res.id, str) and res.id
    assert (res.state, res.ready(), res.successful(), res.failed()) == (
        "SUCCESS", True, True, False)
    assert add.apply_async((2, 2)).get(timeout=30) == 4

    later = add.apply_async((2, 2), queue="lopri", countdown=1)
    assert later.state == "PENDING"
    assert later.get(timeout=30) == 4
    job = later.record()
    assert job.lane == "lopri"
    assert job.started_at is not None
    assert job.started_at - job.created_at >= timedelta(seconds=1)

    assert mul.delay(3, 4).get(timeout=30) == 12
    assert xsum.delay([1, 2, 3, 4]).get(timeout=30) == 10

    res = add.delay(2, "2")  # fails in the worker
    with pytest.raises(JobFailedError, match="TypeError: unsupported operand") as caught:
        res.get(timeout=30)
    assert caught.value.error is not None and caught.value.error.type == "TypeError"
    error = res.get(propagate=False)  # the recorded error, not an exception instance
    assert error.type == "TypeError" and "unsupported operand" in error.message
    assert (res.failed(), res.successful(), res.state) == (True, False, "FAILURE")

    first = add.delay(2, 2)
    again = app.AsyncResult(first.id)
    assert again.get(timeout=30) == 4 and again.state == "SUCCESS"
    assert app.send_task("proj.tasks.add", args=(1, 2)).get(timeout=30) == 3

    with pytest.raises(ArgumentsError, match="missing a required argument: 'y'"):
        add.delay(2)  # refused at enqueue; Celery would send it and fail in the worker
