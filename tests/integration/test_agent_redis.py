"""Redis agent behaviour beyond the conformance suite: broken connections, crashed
consumers, stale receipts, wake-ups, fork, key layout."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobmaster.agents import AgentMessage, Bucket
from jobmaster.exceptions import AgentError, ConfigurationError
from tests.agent_backends import leaks, redis_malformed
from tests.services import REDIS_URL, in_ci, require

redis = pytest.importorskip("redis")

from jobmaster.agents import redis as redis_agent_module  # noqa: E402
from jobmaster.agents.redis import RedisAgent  # noqa: E402


def msg(lane: str = "default", priority: int = 2, due: float | None = None, body: bytes = b"x"):
    return AgentMessage(uuid.uuid4().hex, lane, priority, time.time() if due is None else due, body)


def claim(agent: RedisAgent, lanes=("default",), limit=10, lease=30.0, consumer="c1", wait=0.0):
    return agent.claim(list(lanes), limit, lease_seconds=lease, consumer=consumer, wait=wait)


@pytest.fixture
def agent() -> Iterator[RedisAgent]:
    require("redis")
    a = RedisAgent(REDIS_URL, name="specific", namespace=f"jmt{uuid.uuid4().hex[:10]}")
    try:
        yield a
    finally:
        a.purge()
        a.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _RedisServer:
    """A private redis-server (AOF on) that a test may stop and start again."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            message = "redis-server is not installed"
            if in_ci():
                pytest.fail(message)
            pytest.skip(message)
        self.binary = binary
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="jm-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - a fixed local binary
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", self.dir,
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.2).ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def server() -> Iterator[_RedisServer]:
    s = _RedisServer()
    s.start()
    try:
        yield s
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)


# -- broken connections --------------------------------------------------------------
def test_unreachable_server_gives_a_clear_error_quickly() -> None:
    url = f"redis://jm:s3cret@127.0.0.1:{_free_port()}/0"
    a = RedisAgent(url, namespace="jmtdown")
    started = time.monotonic()
    with pytest.raises(AgentError) as info:
        a.push([msg()])
    assert time.monotonic() - started < 5
    text = str(info.value)
    assert "s3cret" not in text
    assert "redis://jm:***@127.0.0.1" in text
    assert "is Redis running at 127.0.0.1:" in text
    with pytest.raises(AgentError):
        claim(a, wait=0.5)
    a.close()


def test_killed_connections_are_reopened_and_nothing_is_lost(agent: RedisAgent) -> None:
    pushed = [msg() for _ in range(20)]
    agent.push(pushed)
    admin = redis.Redis.from_url(REDIS_URL)
    mine = [c for c in admin.client_list() if c["name"].startswith("jobmaster-agent:")]
    mine = [c for c in mine if agent.namespace in c["name"]]
    assert mine, "the agent names its connections"
    for c in mine:
        admin.client_kill_filter(_id=c["id"])
    assert agent.length() == 20  # redis-py reconnects on the next call
    got = claim(agent, limit=50)
    assert sorted(c.message.id for c in got) == sorted(m.id for m in pushed)
    agent.ack(got)
    assert agent.length() == 0


def test_a_restarted_server_is_reconnected_and_keeps_the_jobs(server: _RedisServer) -> None:
    a = RedisAgent(server.url, namespace="jmtrestart")
    try:
        pushed = [msg(body=str(i).encode()) for i in range(10)]
        a.push(pushed)
        server.stop()
        with pytest.raises(AgentError, match="is Redis running at 127.0.0.1"):
            a.length()
        with pytest.raises(AgentError):
            a.push([msg()])
        server.start()
        assert a.length() == 10
        got = claim(a, limit=20)
        assert [c.message.body for c in got] == [m.body for m in pushed]
        a.ack(got)
        assert a.length() == 0
    finally:
        a.close()


# -- leases and receipts -------------------------------------------------------------
_CRASHING_CONSUMER = """
import os, sys
from jobmaster.agents.redis import RedisAgent
a = RedisAgent(sys.argv[1], name="specific", namespace=sys.argv[2])
got = a.claim(["default"], 10, lease_seconds=1.5, consumer="doomed")
print(len(got), flush=True)
os._exit(9)  # dies holding the claim: no ack, no close
"""


def test_a_job_claimed_by_a_consumer_that_died_comes_back_after_its_lease(
    agent: RedisAgent,
) -> None:
    m = msg()
    agent.push([m])
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", _CRASHING_CONSUMER, REDIS_URL, agent.namespace],
        cwd=root,
        capture_output=True,
        timeout=30,
        check=False,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert out.stdout.strip() == b"1", out.stderr
    assert claim(agent, consumer="survivor") == []  # still leased
    started = time.monotonic()
    [again] = claim(agent, consumer="survivor", wait=5.0)  # woken when the lease is over
    assert time.monotonic() - started < 2.5
    assert again.message.id == m.id
    assert again.deliveries == 2


def test_a_stale_receipt_does_not_touch_the_next_claim(agent: RedisAgent) -> None:
    m = msg()
    agent.push([m])
    [old] = claim(agent, lease=0.3, consumer="slow")
    time.sleep(0.4)
    [new] = claim(agent, consumer="fast")
    assert new.receipt != old.receipt
    agent.ack([old])
    agent.extend([old], 60)
    agent.retry([(old, AgentMessage(m.id, m.lane, m.priority, time.time(), b"stale"))])
    agent.dead_letter([(old, "stale")])
    assert agent.length() == 1
    assert agent.dead_letters() == []
    agent.ack([new])
    assert agent.length() == 0


def test_retry_keeps_the_count_of_deliveries_and_may_move_buckets(agent: RedisAgent) -> None:
    m = msg()
    agent.push([m])
    [first] = claim(agent)
    moved = AgentMessage(m.id, "other", 4, time.time(), b"v2")
    agent.retry([(first, moved)])
    assert agent.length(Bucket("default", 2)) == 0
    assert agent.length(Bucket("other", 4)) == 1
    [second] = claim(agent, lanes=["other"])
    assert (second.message.body, second.message.priority, second.deliveries) == (b"v2", 4, 2)


def test_claims_across_lanes_merge_by_due_time(agent: RedisAgent) -> None:
    now = time.time()
    a, b, c = msg("a", due=now - 3), msg("b", due=now - 2), msg("a", due=now - 1)
    agent.push([c, b, a])
    got = claim(agent, lanes=["a", "b"], limit=3)
    assert [x.message.id for x in got] == [a.id, b.id, c.id]
    assert [x.message.due for x in got] == [a.due, b.due, c.due]


# -- waiting ---------------------------------------------------------------------------
def test_a_waiting_claim_wakes_within_milliseconds_of_a_push(agent: RedisAgent) -> None:
    m = msg()
    pushed_at: list[float] = []

    def push() -> None:
        pushed_at.append(time.monotonic())
        agent.push([m])

    timer = threading.Timer(0.2, push)
    timer.start()
    got = claim(agent, wait=5.0)
    woke = time.monotonic()
    timer.join()
    assert [c.message.id for c in got] == [m.id]
    assert woke - pushed_at[0] < 0.2  # woken, not polled (a lone BLPOP lasts seconds)


def test_a_waiting_claim_wakes_when_a_delayed_job_comes_due(agent: RedisAgent) -> None:
    m = msg(due=time.time() + 0.5)
    agent.push([m])
    started = time.monotonic()
    got = claim(agent, wait=5.0)
    elapsed = time.monotonic() - started
    assert [c.message.id for c in got] == [m.id]
    assert 0.4 < elapsed < 1.0


def test_a_waiting_claim_is_woken_by_an_earlier_delayed_push(agent: RedisAgent) -> None:
    agent.push([msg(due=time.time() + 60)])
    soon = msg(due=time.time() + 0.6)
    timer = threading.Timer(0.1, agent.push, args=([soon],))
    timer.start()
    started = time.monotonic()
    got = claim(agent, wait=5.0)
    timer.join()
    assert [c.message.id for c in got] == [soon.id]
    assert time.monotonic() - started < 1.5


def test_many_waiting_claimers_share_a_burst(agent: RedisAgent) -> None:
    results: dict[str, int] = {}

    def consume(name: str) -> None:
        got = claim(agent, consumer=name, limit=5, wait=3.0)
        results[name] = len(got)

    threads = [threading.Thread(target=consume, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    agent.push([msg() for _ in range(30)])
    for t in threads:
        t.join(10)
    assert sum(results.values()) == 30
    assert all(n == 5 for n in results.values())


# -- process and layout ----------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_opens_its_own_connections(agent: RedisAgent) -> None:
    agent.push([msg()])
    parent_pool = agent._client.connection_pool
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            agent.push([msg(), msg()])
            ok = agent.length() == 3 and parent_pool.pid == os.getpid()
            code = 0 if ok else 2
        finally:
            os.write(write, bytes([code]))
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 1) == b"\x00"
    os.close(read)
    assert status == 0
    assert agent.length() == 3  # the parent's sockets survived the child
    got = claim(agent)
    agent.ack(got)
    assert len(got) == 3


def test_keys_share_one_hash_tag_and_purge_removes_them_all(agent: RedisAgent) -> None:
    agent.push([msg(), msg(lane="b", due=time.time() + 60)])
    [c] = claim(agent)
    agent.dead_letter([(c, "bad")])
    admin = redis.Redis.from_url(REDIS_URL)
    keys = [k.decode() for k in admin.scan_iter(match=f"{{{agent.namespace}:specific}}:*")]
    assert keys and all(k.startswith(f"{{{agent.namespace}:specific}}:") for k in keys)
    assert agent.purge() == 1
    assert list(admin.scan_iter(match=f"{{{agent.namespace}:specific}}:*")) == []


def test_dead_letters_come_back_newest_first_with_their_reasons(agent: RedisAgent) -> None:
    ms = [msg(body=f"b{i}".encode()) for i in range(3)]
    agent.push(ms)
    got = claim(agent)
    agent.dead_letter([(c, f"reason {i}\nwith a second line") for i, c in enumerate(got)])
    dead = agent.dead_letters()
    assert [d.message.id for d in dead] == [m.id for m in reversed(ms)]
    assert dead[0].reason == "reason 2\nwith a second line"
    assert dead[0].message.body == b"b2"
    assert abs(dead[0].at - time.time()) < 5
    assert len(agent.dead_letters(limit=2)) == 2


def test_a_big_batch_is_pushed_in_one_call_and_keeps_its_order(agent: RedisAgent) -> None:
    now = time.time() - 1
    ms = [msg(due=now, body=str(i).encode()) for i in range(5_000)]
    agent.push(ms)
    assert agent.length() == 5_000
    agent.push(ms[:100])  # already held: ignored
    assert agent.length() == 5_000
    got = claim(agent, limit=5_000)
    assert [int(c.message.body) for c in got] == list(range(5_000))
    agent.ack(got)
    assert agent.length() == 0


def test_out_of_range_priority_is_refused(agent: RedisAgent) -> None:
    with pytest.raises(ConfigurationError, match="not an int 0..4"):
        agent.push([msg(priority=7)])
    assert agent.length() == 0


def test_pushes_survive_a_flushed_script_cache(agent: RedisAgent) -> None:
    agent.push([msg() for _ in range(10)])  # packed, streamed chunks
    agent.push([msg()])  # a single push on the thread's own connection
    redis.Redis.from_url(REDIS_URL).script_flush()
    agent.push([msg() for _ in range(5000)])  # several chunks, script reloaded
    agent.push([msg()])
    assert agent.length() == 5012


# -- malformed jobs --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"no separator", "stored record has no '|' between its due time and its body"),
        (None, "stored record has no value (no hash entry for its id)"),
        (b"abc|body", "stored record has due time 'abc', not a number"),
        (b"nan|body", "stored record has due time nan, not a finite number"),
        (b"-inf|body", "stored record has due time -inf, not a finite number"),
    ],
    ids=["no separator", "no hash entry", "due text", "due nan", "due -inf"],
)
def test_a_malformed_job_is_dead_lettered_and_the_good_ones_are_claimed(
    agent: RedisAgent, value: bytes | None, reason: str
) -> None:
    first, last = msg(body=b"first"), msg(body=b"last")
    agent.push([first])
    bad_id = redis_malformed(agent, "default", value)
    agent.push([last])
    got = claim(agent, limit=10)
    assert sorted(c.message.id for c in got) == sorted([first.id, last.id])
    [dead] = agent.dead_letters()
    assert dead.reason == reason
    assert dead.message.id == bad_id.decode()
    assert (dead.message.lane, dead.message.priority) == ("default", 2)
    admin = redis.Redis.from_url(REDIS_URL)
    assert not admin.hexists(agent._jobs, bad_id)  # gone, not retried
    assert agent.length() == 2
    agent.ack(got)
    assert agent.length() == 0
    assert claim(agent) == []
    assert len(agent.dead_letters()) == 1


def test_a_job_whose_id_is_not_utf8_is_dead_lettered(agent: RedisAgent) -> None:
    good = msg()
    agent.push([good])
    member = b"%016d0:\xff\xfeid" % 0
    redis.Redis.from_url(REDIS_URL).hset(agent._jobs, b"\xff\xfeid", b"1.0|body")
    redis_malformed(agent, "default", None, member=member)
    got = claim(agent)
    assert [c.message.id for c in got] == [good.id]
    [dead] = agent.dead_letters()
    assert dead.reason.startswith("stored record has id b'\\xff\\xfeid'")
    assert dead.message.id == "\ufffd\ufffdid"
    assert dead.message.body == b"body"


@pytest.mark.parametrize("kind", ["w", "l"])
def test_a_member_that_names_no_job_is_removed_with_an_error_log(
    agent: RedisAgent, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    good = msg()
    agent.push([good])
    admin = redis.Redis.from_url(REDIS_URL)
    key = f"{agent._prefix}{kind}:default:2"
    admin.zadd(key, {b"garbage-without-a-colon": time.time() - 10})
    caplog.set_level(logging.ERROR, logger="jobmaster.agents.redis")
    got = claim(agent)
    assert [c.message.id for c in got] == [good.id]
    assert admin.zscore(key, b"garbage-without-a-colon") is None
    assert agent.dead_letters() == []  # no job to dead-letter
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "name no job" in record.getMessage()
    assert "garbage-without-a-colon" in record.getMessage()


def test_an_expired_lease_on_a_garbled_job_is_dead_lettered_by_the_next_claim(
    agent: RedisAgent,
) -> None:
    admin = redis.Redis.from_url(REDIS_URL)
    admin.hset(agent._jobs, b"lost-job", b"garbled")
    admin.zadd(f"{agent._prefix}l:default:2", {b"%016d3:lost-job" % 7: time.time() - 5})
    good = msg()
    agent.push([good])
    got = claim(agent)
    assert [c.message.id for c in got] == [good.id]
    [dead] = agent.dead_letters()
    assert dead.message.id == "lost-job"
    assert dead.reason == "stored record has no '|' between its due time and its body"
    assert not admin.hexists(agent._jobs, b"lost-job")


def test_a_waiting_claim_is_not_ended_by_malformed_jobs(agent: RedisAgent) -> None:
    for _ in range(3):
        redis_malformed(agent, "default", b"abc|x", priority=4)
    good = msg(priority=0)
    timer = threading.Timer(0.2, agent.push, args=([good],))
    timer.start()
    got = claim(agent, limit=1, wait=5.0)
    timer.join()
    assert [c.message.id for c in got] == [good.id]
    assert len(agent.dead_letters()) == 3


# -- push connections ----------------------------------------------------------------------
def _connections(agent: RedisAgent) -> int:
    """Connections Redis holds for this agent (its connections carry the agent's name)."""
    name = f"jobmaster-agent:{agent.namespace}:{agent.name}"
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        return sum(1 for c in admin.client_list() if c["name"] == name)
    finally:
        admin.close()


def _push_from_threads(agent: RedisAgent, count: int) -> tuple[list[BaseException], int]:
    """Push one job from each of ``count`` short-lived threads started at once; the errors
    and the most connections Redis held for the agent meanwhile."""
    errors: list[BaseException] = []
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _connections(agent))
            time.sleep(0.002)

    def push_one() -> None:
        try:
            agent.push([msg()])
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=push_one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    watcher.join()
    return errors, max(peak, _connections(agent))


def test_short_lived_threads_pushing_share_a_bounded_set_of_connections(
    agent: RedisAgent,
) -> None:
    from jobmaster.agents.redis import PUSH_CONNECTIONS

    errors, peak = _push_from_threads(agent, 300)
    assert errors == []
    assert agent.length() == 300
    assert peak <= PUSH_CONNECTIONS + 2
    errors, peak = _push_from_threads(agent, 300)  # the same connections serve again
    assert errors == []
    assert agent.length() == 600
    assert peak <= PUSH_CONNECTIONS + 2
    agent.close()
    deadline = time.monotonic() + 5
    while _connections(agent) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _connections(agent) == 0


def test_pushes_wait_for_a_connection_when_all_are_busy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require("redis")
    monkeypatch.setattr(redis_agent_module, "PUSH_CONNECTIONS", 2)
    a = RedisAgent(REDIS_URL, name="few", namespace=f"jmt{uuid.uuid4().hex[:10]}")
    try:
        errors, peak = _push_from_threads(a, 60)
        assert errors == []
        assert a.length() == 60
        assert peak <= 2 + 2
        assert a._pushers.count() <= 2
    finally:
        a.purge()
        a.close()


# -- credentials ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("redis://jm:s3cretpw@127.0.0.1:{port}/0", "s3cretpw"),
        ("redis://t0kenpw@127.0.0.1:{port}/0", "t0kenpw"),
        ("redis://127.0.0.1:{port}/0?password=s3cretpw", "s3cretpw"),
    ],
    ids=["user and password", "bare token", "query password"],
)
def test_an_unreachable_server_error_never_shows_the_credentials(
    url: str, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    a = RedisAgent(url.format(port=_free_port()), namespace="jmtdown")
    assert secret not in repr(a)
    errors = []
    for call in (lambda: a.push([msg()]), lambda: a.push([msg() for _ in range(10)]),
                 lambda: claim(a), a.length, a.dead_letters):
        with pytest.raises(AgentError) as info:
            call()
        errors.append(info.value)
    a.close()
    for error in errors:
        assert leaks(secret, error, caplog.records) == []
    assert "***" in str(errors[0])


@pytest.mark.parametrize(
    "url",
    ["redis://:s3cretpw@127.0.0.1:notaport/0", "redis://:s3cretpw@127.0.0.1:6379/0?socket_timeout=x"],
    ids=["bad port", "bad option"],
)
def test_a_bad_url_error_never_shows_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RedisAgent(url)
    assert leaks("s3cretpw", info.value, []) == []
    assert ":***@" in str(info.value)


def test_a_server_with_a_password_never_shows_it_when_it_goes_away(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = _RedisServer()
    server.start()
    try:
        admin = redis.Redis(port=server.port)
        admin.config_set("requirepass", "s3cretpw")
        caplog.set_level(logging.DEBUG)
        a = RedisAgent(f"redis://:s3cretpw@127.0.0.1:{server.port}/0", namespace="jmtauth")
        wrong = RedisAgent(f"redis://:wr0ngpw@127.0.0.1:{server.port}/0", namespace="jmtauth")
        a.push([msg()])
        assert a.length() == 1
        with pytest.raises(AgentError) as refused:
            wrong.push([msg()])
        server.stop()
        with pytest.raises(AgentError) as gone:
            a.push([msg()])
        assert leaks("s3cretpw", gone.value, caplog.records) == []
        assert leaks("wr0ngpw", refused.value, caplog.records) == []
        a.close()
        wrong.close()
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


def test_the_good_jobs_are_returned_even_when_dead_lettering_fails(
    agent: RedisAgent, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    good = msg()
    agent.push([good])
    redis_malformed(agent, "default", b"abc|x")

    def broken(items: object) -> None:
        raise AgentError("the dead-letter stream is gone")

    monkeypatch.setattr(agent, "_bury", broken)
    caplog.set_level(logging.ERROR)
    got = claim(agent, lease=0.5)
    assert [c.message.id for c in got] == [good.id]
    assert any("could not move 1 malformed record" in r.getMessage() for r in caplog.records)
    assert agent.length() == 2  # the malformed job stays, leased: met again later
    agent.ack(got)
    monkeypatch.undo()
    deadline = time.monotonic() + 5
    while not agent.dead_letters():  # its lease ends, the next claim dead-letters it
        assert time.monotonic() < deadline, "the malformed job was never dead-lettered"
        assert claim(agent, consumer="later") == []
        time.sleep(0.05)
    assert agent.length() == 0
