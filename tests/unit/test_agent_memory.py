"""Memory agent: a forked child gets a usable copy of the store."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from jobmaster.agents import AgentMessage
from jobmaster.agents.memory import MemoryAgent


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_another_thread_holds_the_lock_can_use_the_agent() -> None:
    agent = MemoryAgent(f"memory://{uuid.uuid4().hex}")
    agent.push([AgentMessage(uuid.uuid4().hex, "default", 2, time.time(), b"x")])
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with agent._store.cond:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                got = agent.claim(["default"], 10, lease_seconds=30, consumer="child")
                code = 0 if len(got) == 1 else 2
            finally:
                os._exit(code)
    finally:
        release.set()
        holder.join()
    deadline = time.monotonic() + 20
    while True:  # a child stuck on the parent's lock would never exit
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung on the lock it inherited")
        time.sleep(0.02)
    assert os.waitstatus_to_exitcode(status) == 0
    assert agent.length() == 1  # the parent's store is its own
