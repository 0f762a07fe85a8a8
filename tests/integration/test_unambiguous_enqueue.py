"""Unambiguous enqueue against a real Redis: a push that fails at the connection level is
sent again with the same job id (pushes are idempotent by id) before ``delay()`` gives up,
and then the error names the job ids and says they may exist. Refused credentials are a
different error, raised at once."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from typing import Any

import pytest

from jobmaster import AgentError, App, EnqueueUncertainError
from jobmaster.exceptions import AgentUnreachableError
from tests.conftest import wait_until
from tests.integration import test_agent_redis
from tests.integration.test_agent_redis import _free_port, _RedisServer

server = test_agent_redis.server  # a private redis-server (AOF on) to stop and start


def _answers(port: int) -> bool:
    import redis

    try:
        redis.Redis(port=port, password="right", socket_connect_timeout=0.2).ping()
        return True
    except redis.RedisError:
        return False


def _app(tmp_path: Any, url: str) -> App:
    app = App("unambiguous", master=f"sqlite:///{tmp_path}/m.db", agents={"main": url},
              namespace=f"jmu{int(time.time() * 1000) % 10**8}")

    @app.job(definition_id="add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


def test_a_push_that_landed_before_its_connection_broke_is_held_once(
        tmp_path: Any, server: _RedisServer) -> None:
    app = _app(tmp_path, server.url)
    agent = app.agent()
    real_push = agent.push
    calls: list[int] = []

    def landed_then_broke(messages: Any) -> None:
        calls.append(len(messages))
        real_push(messages)
        if len(calls) == 1:
            raise AgentUnreachableError("connection reset after the push was sent")

    agent.push = landed_then_broke  # type: ignore[method-assign]
    handle = app.definition("add").delay(x=1, y=2)
    assert len(calls) == 2  # sent again with the same id...
    assert agent.length() == 1  # ...and held once
    [claimed] = agent.claim(["default"], 10, lease_seconds=5, consumer="t")
    assert claimed.message.id == handle.id
    app.close()


def test_a_restarting_server_costs_a_retry_not_a_second_job(
        tmp_path: Any, server: _RedisServer) -> None:
    app = _app(tmp_path, server.url)
    app.agent().length()  # connected
    server.stop()
    restarted = threading.Timer(0.25, server.start)
    restarted.start()
    handle = app.definition("add").delay(x=2, y=3)  # retried until the server is back
    restarted.join()
    assert app.agent().length() == 1
    assert app.agent().claim(["default"], 10, lease_seconds=5,
                             consumer="t")[0].message.id == handle.id
    app.close()


def test_an_unreachable_agent_names_the_jobs_that_may_exist(tmp_path: Any) -> None:
    app = _app(tmp_path, f"redis://jm:s3cret@127.0.0.1:{_free_port()}/0")
    started = time.monotonic()
    with pytest.raises(EnqueueUncertainError) as info:
        app.definition("add").delay(x=1, y=1)
    error = info.value
    assert isinstance(error, AgentError) and len(error.job_ids) == 1
    assert error.job_ids[0] in str(error) and "may exist" in str(error)
    assert "s3cret" not in str(error)
    assert time.monotonic() - started < 10  # three retries, then the answer
    app.close()


def test_refused_credentials_say_so_at_once(tmp_path: Any) -> None:
    binary = shutil.which("redis-server")
    assert binary is not None
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--requirepass", "right"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _answers(port), 10, "the private redis-server")
        app = _app(tmp_path, f"redis://:wrong@127.0.0.1:{port}/0")
        with pytest.raises(AgentError) as info:
            app.definition("add").delay(x=1, y=1)
        assert not isinstance(info.value, AgentUnreachableError)
        assert "refused" in str(info.value) and "password" in str(info.value)
        assert "wrong" not in str(info.value)
        app.close()
    finally:
        proc.terminate()
        proc.wait(10)
