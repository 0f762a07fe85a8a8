"""Locks across processes, kept in the master: one holder at a time, fencing tokens that
grow, a stale holder refused, owner-only release — on SQLite and PostgreSQL masters."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobmaster import App, InvalidOptionError, LockLostError, LockNotAcquiredError
from tests.conftest import wait_until
from tests.integration.test_master import _fresh_database

ROOT = Path(__file__).resolve().parents[2]

STALE_HOLDER = textwrap.dedent("""
    import sys, time
    from jobmaster import App, LockLostError
    app = App("locks", master=sys.argv[1], agents={"main": "memory://x"})
    lock = app.lock("report", ttl=1.0)
    assert lock.acquire(blocking=False)
    print("held", lock.token, flush=True)
    time.sleep(2.0)                       # paused past its ttl: someone else takes it
    try:
        lock.check()
        print("still mine", flush=True)
    except LockLostError:
        print("lost", flush=True)
    lock.release()                        # only the holder can: this changes nothing
    print("released", flush=True)
""")


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from _fresh_database(request.param, tmp_path)


def make(url: str) -> App:
    return App("locks", master=url, agents={"main": f"memory://{uuid.uuid4().hex}"},
               auto_migrate=True)


def test_a_stale_holder_is_refused_and_cannot_release(url: str, tmp_path: Path) -> None:
    app = make(url)
    app.migrate()
    out = tmp_path / "holder.out"
    with open(out, "w") as sink:
        holder = subprocess.Popen([sys.executable, "-c", STALE_HOLDER, url], cwd=ROOT,
                                  stdout=sink, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: "held" in out.read_text(), what="the other process to hold it")
        first = int(out.read_text().split()[1])
        lock = app.lock("report", ttl=30, wait=10)
        assert not lock.acquire(blocking=False)  # held elsewhere
        with lock:  # waits for the other holder's ttl to run out
            assert lock.token > first
            wait_until(lambda: "released" in out.read_text(),
                       what="the stale holder to try")
            lock.check()  # its release changed nothing: still ours
        assert holder.wait(30) == 0, holder.stderr.read() if holder.stderr else ""
        assert out.read_text().split()[2:] == ["lost", "released"]
    finally:
        if holder.poll() is None:
            holder.kill()
        app.close()


def test_tokens_grow_and_only_one_holds(url: str) -> None:
    app = make(url)
    a, b = app.lock("nightly", ttl=30), app.lock("nightly", ttl=30, wait=0)
    assert a.acquire()
    with pytest.raises(LockNotAcquiredError, match="'nightly' is held"):
        b.__enter__()
    first = a.token
    a.extend(60)
    assert a.token == first  # extending keeps the token
    a.release()
    with b:
        assert b.token == first + 1
        with pytest.raises(LockNotAcquiredError):
            _ = a.token  # released: no token any more
    with a:
        assert a.token == first + 2
    app.close()


def test_a_lock_that_ran_out_cannot_be_extended(url: str) -> None:
    app = make(url)
    lock = app.lock("short", ttl=0.2)
    assert lock.acquire()
    other = app.lock("short", ttl=30, wait=5)
    assert other.acquire()  # after the first one's ttl
    with pytest.raises(LockLostError, match="'short' was lost"):
        lock.extend()
    assert not lock.locked()
    other.release()
    app.close()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"ttl": 0}, "ttl=0"), ({"ttl": float("nan")}, "ttl=nan"), ({"wait": -1}, "wait=-1"),
    ({"ttl": "60"}, "ttl='60'")])
def test_bad_lock_arguments_are_refused(tmp_path: Path, kwargs: dict[str, object],
                                        message: str) -> None:
    app = make(f"sqlite:///{tmp_path}/m.db")
    with pytest.raises(InvalidOptionError, match=message):
        app.lock("x", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="194 characters"):
        app.lock("n" * 200)
