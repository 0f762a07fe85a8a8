"""NATS JetStream agent behaviour beyond the conformance suite: unreachable and restarted
servers, Nats-Msg-Id dedupe, in-progress heartbeats, wake-ups, fork, names."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from jobmaster.agents import AgentMessage, Bucket
from jobmaster.agents.base import storable_reason
from jobmaster.exceptions import AgentError, ConfigurationError
from tests.agent_backends import leaks, nats_malformed
from tests.services import NATS_URL, in_ci, require

nats = pytest.importorskip("nats")

from jobmaster.agents.nats import NatsAgent, subject_token, token_text  # noqa: E402


def msg(lane: str = "default", priority: int = 2, due: float | None = None, body: bytes = b"x"):
    return AgentMessage(uuid.uuid4().hex, lane, priority, time.time() if due is None else due, body)


def claim(agent: NatsAgent, lanes=("default",), limit=10, lease=30.0, consumer="c1", wait=0.0):
    return agent.claim(list(lanes), limit, lease_seconds=lease, consumer=consumer, wait=wait)


@pytest.fixture
def agent() -> Iterator[NatsAgent]:
    require("nats")
    a = NatsAgent(NATS_URL, name="specific", namespace=f"jmt{uuid.uuid4().hex[:10]}")
    try:
        yield a
    finally:
        a.purge()
        a.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _NatsServer:
    """A private nats-server with JetStream (file storage) that a test may restart."""

    def __init__(self) -> None:
        binary = shutil.which("nats-server")
        if binary is None:
            message = "nats-server is not installed"
            if in_ci():
                pytest.fail(message)
            pytest.skip(message)
        self.binary = binary
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="jm-nats-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, options: list[str] | None = None) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - a fixed local binary
            [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", self.dir,
             *(options or [])],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private nats-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def server() -> Iterator[_NatsServer]:
    s = _NatsServer()
    s.start()
    try:
        yield s
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)


def _stream_names(url: str) -> list[str]:
    async def names() -> list[str]:
        nc = await nats.connect(url)
        try:
            return [info.config.name for info in await nc.jetstream().streams_info()]
        finally:
            await nc.close()

    return asyncio.run(names())


# -- broken connections --------------------------------------------------------------
def test_unreachable_server_gives_a_clear_error_quickly() -> None:
    a = NatsAgent(f"nats://jm:s3cret@127.0.0.1:{_free_port()}", namespace="jmtdown")
    try:
        started = time.monotonic()
        with pytest.raises(AgentError) as info:
            a.push([msg()])
        assert time.monotonic() - started < 5
        text = str(info.value)
        assert "s3cret" not in text
        assert "nats://jm:***@127.0.0.1" in text
        assert "is nats-server running there" in text
        with pytest.raises(AgentError):
            claim(a, wait=0.2)
    finally:
        a.close()


def test_a_restarted_server_is_reconnected_and_keeps_the_jobs(server: _NatsServer) -> None:
    a = NatsAgent(server.url + "?timeout=1", namespace="jmtrestart")
    try:
        pushed = [msg(body=str(i).encode()) for i in range(10)]
        a.push(pushed)
        server.stop()
        with pytest.raises(AgentError, match="is nats-server running there"):
            a.push([msg()])
        server.start()
        deadline = time.monotonic() + 15
        while True:  # the client reconnects in the background
            try:
                count = a.length()
                break
            except AgentError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert count in (10, 11)  # the push that failed may still have been stored
        got = claim(a, limit=20)
        assert [c.message.body for c in got][:10] == [m.body for m in pushed]
        a.ack(got)
        assert a.length() == 0
    finally:
        a.close()


def test_bad_url_options_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="storage"):
        NatsAgent("nats://127.0.0.1:4222?storage=tape")
    with pytest.raises(ConfigurationError, match="unknown"):
        NatsAgent("nats://127.0.0.1:4222?colour=blue")


# -- JetStream specifics ---------------------------------------------------------------
def test_the_same_message_pushed_twice_is_dropped_by_its_msg_id(agent: NatsAgent) -> None:
    m = msg()
    agent.push([m])
    agent.push([m, m])
    assert agent.length() == 1
    [c] = claim(agent)
    assert c.receipt.headers["Nats-Msg-Id"].startswith(m.id + ":")
    assert c.message.id == m.id
    agent.ack([c])


def test_the_same_job_pushed_again_after_its_ack_is_not_swallowed(agent: NatsAgent) -> None:
    m = msg(body=b"first run")
    agent.push([m])
    [c] = claim(agent)
    agent.ack([c])
    again = AgentMessage(m.id, m.lane, m.priority, time.time(), b"run it again")
    agent.push([again])  # e.g. app.jobs.retry(...) within the duplicate window
    [c2] = claim(agent)
    assert c2.message.body == b"run it again"
    agent.ack([c2])


def test_in_progress_heartbeats_extend_the_ack_wait(agent: NatsAgent) -> None:
    agent.push([msg()])
    [c] = claim(agent, lease=1.0)
    for _ in range(3):  # 1.8 s in all, well past the 1 s ack_wait
        time.sleep(0.6)
        agent.extend([c], 1.0)
        assert claim(agent, consumer="other") == []
    time.sleep(1.3)  # no heartbeat: the lease runs out and the job comes back
    [again] = claim(agent, consumer="other")
    assert again.message.id == c.message.id
    assert again.deliveries == 2


def test_retry_publishes_a_new_version_and_keeps_the_count_of_deliveries(
    agent: NatsAgent,
) -> None:
    m = msg()
    agent.push([m])
    [first] = claim(agent)
    agent.retry([(first, AgentMessage(m.id, "other", 4, time.time(), b"v2"))])
    assert agent.length(Bucket("default", 2)) == 0
    assert agent.length(Bucket("other", 4)) == 1
    [second] = claim(agent, lanes=["other"])
    assert (second.message.id, second.message.body, second.message.priority) == (m.id, b"v2", 4)
    assert second.deliveries == 2


def test_a_delayed_retry_counts_its_early_pull_out(agent: NatsAgent) -> None:
    m = msg()
    agent.push([m])
    [first] = claim(agent)
    agent.retry([(first, AgentMessage(m.id, m.lane, m.priority, time.time() + 0.5, b"v2"))])
    assert claim(agent) == []  # pulled early, NAK-ed with a delay
    [second] = claim(agent, wait=3.0)
    assert second.message.body == b"v2"
    assert second.deliveries == 2


def test_purge_deletes_the_streams_and_they_come_back_on_use(agent: NatsAgent) -> None:
    agent.push([msg(), msg(lane="b")])
    [c] = claim(agent)
    agent.dead_letter([(c, "bad")])
    names = _stream_names(NATS_URL)
    assert agent._stream in names and agent._dead_stream in names
    assert agent.purge() == 1
    names = _stream_names(NATS_URL)
    assert agent._stream not in names and agent._dead_stream not in names
    assert agent.length() == 0
    assert agent.dead_letters() == []
    agent.push([msg()])
    assert len(claim(agent)) == 1


def test_dead_letters_keep_multiline_reasons_newest_first(agent: NatsAgent) -> None:
    ms = [msg(lane="odd lane/é", body=f"b{i}".encode()) for i in range(3)]
    agent.push(ms)
    got = claim(agent, lanes=["odd lane/é"])
    agent.dead_letter([(c, f"reason {i}\nTraceback: ...") for i, c in enumerate(got)])
    dead = agent.dead_letters()
    assert [d.message.id for d in dead] == [m.id for m in reversed(ms)]
    assert dead[0].reason == "reason 2\nTraceback: ..."
    assert (dead[0].message.lane, dead[0].message.body) == ("odd lane/é", b"b2")
    assert len(agent.dead_letters(limit=2)) == 2
    assert agent.length() == 0


def test_lane_names_become_distinct_subject_tokens() -> None:
    lanes = ["emails", "a.b", "a_b", "a*b", "a>b", "", "_", "é", "a b", "a_2E_b"]
    tokens = [subject_token(lane) for lane in lanes]
    assert len(set(tokens)) == len(lanes)
    for lane, token in zip(lanes, tokens, strict=True):
        assert token and not any(c in token for c in ". *>")
        assert token_text(token) == lane


# -- waiting -----------------------------------------------------------------------
def test_a_waiting_claim_wakes_within_milliseconds_of_a_push(agent: NatsAgent) -> None:
    agent.push([msg()])
    agent.ack(claim(agent))  # consumers exist: measure the wake-up, not their creation
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
    assert woke - pushed_at[0] < 0.3  # woken, not found by a recheck (every second)


def test_a_waiting_claim_wakes_when_a_delayed_job_comes_due(agent: NatsAgent) -> None:
    m = msg(due=time.time() + 0.5)
    agent.push([m])
    started = time.monotonic()
    got = claim(agent, wait=5.0)
    elapsed = time.monotonic() - started
    assert [c.message.id for c in got] == [m.id]
    assert 0.4 < elapsed < 0.95
    assert got[0].deliveries == 1


def test_claim_with_wait_does_not_hang_past_its_wait(agent: NatsAgent) -> None:
    started = time.monotonic()
    assert claim(agent, lanes=["a", "b"], wait=0.5) == []
    assert 0.45 < time.monotonic() - started < 1.5


# -- process ---------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_starts_its_own_loop_and_connection(agent: NatsAgent) -> None:
    agent.push([msg()])
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            agent.push([msg(), msg()])
            code = 0 if agent.length() == 3 else 2
        finally:
            os.write(write, bytes([code]))
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 1) == b"\x00"
    os.close(read)
    assert status == 0
    assert agent.length() == 3  # the parent's connection survived the child
    got = claim(agent)
    agent.ack(got)
    assert len(got) == 3


def test_a_closed_agent_refuses_work(agent: NatsAgent) -> None:
    agent.push([msg()])
    other = NatsAgent(NATS_URL, name="specific", namespace=agent.namespace)
    assert other.length() == 1
    other.close()
    with pytest.raises(AgentError, match="closed"):
        other.length()


def test_an_agent_recovers_when_another_one_purged_its_streams(agent: NatsAgent) -> None:
    agent.push([msg()])
    agent.ack(claim(agent))  # streams and consumers are set up and cached
    other = NatsAgent(NATS_URL, name="specific", namespace=agent.namespace)
    try:
        other.push([msg()])
        assert other.purge() == 1
        other.push([msg()])  # the stream exists again, without the first one's consumers
        [c] = claim(agent)
        agent.ack([c])
        agent.push([msg()])
        assert len(claim(other)) == 1
    finally:
        other.close()


# -- malformed messages ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Jm-Due": "abc"}, "stored record has due time 'abc', not a number"),
        ({"Jm-Due": "nan"}, "stored record has due time nan, not a finite number"),
        ({"Jm-Due": "-inf"}, "stored record has due time -inf, not a finite number"),
        ({}, "stored message has no Jm-Due header"),
        (None, "stored message has no Jm-Id header"),
    ],
    ids=["due text", "due nan", "due -inf", "no Jm-Due", "no headers"],
)
def test_a_malformed_message_is_dead_lettered_and_the_good_ones_are_claimed(
    agent: NatsAgent, headers: dict[str, str] | None, reason: str
) -> None:
    first, last = msg(body=b"first"), msg(body=b"last")
    agent.push([first])
    bad_id = uuid.uuid4().hex
    nats_malformed(agent, "default", None if headers is None else {"Jm-Id": bad_id, **headers},
                   body=b"poison")
    agent.push([last])
    got = claim(agent, limit=10)
    assert sorted(c.message.id for c in got) == sorted([first.id, last.id])
    [dead] = agent.dead_letters()
    assert dead.reason == reason
    assert dead.message.body == b"poison"
    assert (dead.message.lane, dead.message.priority) == ("default", 2)
    if headers is not None:
        assert dead.message.id == bad_id
    assert agent.length() == 2  # the malformed message was acked: gone from the stream
    agent.ack(got)
    assert agent.length() == 0
    assert claim(agent) == []
    assert len(agent.dead_letters()) == 1


def test_a_waiting_claim_is_not_ended_by_malformed_messages(agent: NatsAgent) -> None:
    for _ in range(3):
        nats_malformed(agent, "default", {"Jm-Id": uuid.uuid4().hex, "Jm-Due": "x"}, priority=4)
    good = msg(priority=0)
    timer = threading.Timer(0.2, agent.push, args=([good],))
    timer.start()
    got = claim(agent, limit=1, wait=5.0)
    timer.join()
    assert [c.message.id for c in got] == [good.id]
    assert len(agent.dead_letters()) == 3


def _dead_letter_headers(agent: NatsAgent) -> list[bytes]:
    """The raw header blocks of the agent's dead-letter stream, oldest first."""

    async def read() -> list[bytes]:
        nc = await nats.connect(NATS_URL)
        try:
            js = nc.jetstream()
            info = await js.stream_info(agent._dead_stream)
            out = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                reply = await nc.request(
                    f"$JS.API.STREAM.MSG.GET.{agent._dead_stream}", b'{"seq":%d}' % seq
                )
                out.append(base64.b64decode(json.loads(reply.data)["message"]["hdrs"]))
            return out
        finally:
            await nc.close()

    return asyncio.run(read())


@pytest.mark.parametrize(
    "reason",
    ["é中😀 " * 200_000, "x" * 1_000_000, "nul \x00, bell \x07, lone \ud800, crlf \r\n end"],
    ids=["wide text", "one megabyte", "control characters"],
)
def test_any_reason_is_dead_lettered_in_a_small_header(agent: NatsAgent, reason: str) -> None:
    agent.push([msg()])
    [c] = claim(agent)
    agent.dead_letter([(c, reason)])
    [dead] = agent.dead_letters()
    assert dead.reason == storable_reason(reason, agent.reason_limit_bytes)
    [headers] = _dead_letter_headers(agent)
    assert len(headers) < 3300  # well under the 4 KiB a header block should stay within
    assert agent.length() == 0


# -- credentials -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("nats://jm:s3cretpw@127.0.0.1:{port}", "s3cretpw"),
        ("nats://t0kenpw@127.0.0.1:{port}", "t0kenpw"),
        ("nats://127.0.0.1:{other},nats://t0kenpw@127.0.0.1:{port}", "t0kenpw"),
        ("nats://t0kenpw@127.0.0.1:{port}?timeout=soon", "t0kenpw"),
        ("nats://t0kenpw@127.0.0.1:{port}?token=t0kenpw", "t0kenpw"),
    ],
    ids=["user and password", "token", "server list", "bad option", "unknown option"],
)
def test_errors_never_show_the_credentials(
    url: str, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    error: BaseException
    try:
        a = NatsAgent(url.format(port=_free_port(), other=_free_port()), namespace="jmtdown")
    except ConfigurationError as exc:
        error = exc
    else:
        assert secret not in repr(a)
        try:
            with pytest.raises(AgentError) as info:
                a.push([msg()])
            error = info.value
        finally:
            a.close()
    assert leaks(secret, error, caplog.records) == []
    assert "***" in str(error)


def test_a_server_with_a_token_never_shows_it_when_it_goes_away(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = _NatsServer()
    server.start(["--auth", "t0kenpw"])
    a = NatsAgent(f"nats://t0kenpw@127.0.0.1:{server.port}?timeout=1", namespace="jmtauth")
    try:
        caplog.set_level(logging.DEBUG)
        a.push([msg()])
        assert a.length() == 1
        server.stop()
        with pytest.raises(AgentError) as info:
            a.push([msg()])
        deadline = time.monotonic() + 5
        while not any("lost its connection" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "no log of the lost connection"
            time.sleep(0.05)
        assert leaks("t0kenpw", info.value, caplog.records) == []
    finally:
        a.close()
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)
