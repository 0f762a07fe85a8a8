"""Signed envelopes with real workers: a signed job runs; an unsigned envelope put on the
broker by someone without the key, a signed payload replayed under another id, and a job
signed with a key the worker no longer holds are dead-lettered without running; a key
rotation (``secret=[new, old]``) runs jobs signed with either key."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from jobmaster import App, JobStatus
from jobmaster.envelope import Envelope
from tests.conftest import Stack, wait_until


@pytest.fixture(params=["sqlite", "redis"])
def stack(request: pytest.FixtureRequest, stack_factory: Callable[..., Stack]) -> Stack:
    return stack_factory(request.param, secret="new-key old-key", sign_envelopes="true")


def _dead(app: App, job_id: str) -> str:
    found = {d.id: d.reason for d in app.dead_letters.list()}
    return found.get(job_id, "")


def test_only_envelopes_signed_with_a_known_key_run(stack: Stack) -> None:
    app: App = stack.app()
    app.migrate()
    signed = app.definition("add").delay(x=20, y=22)
    message = Envelope.from_bytes(app.agent().claim(["default"], 1, lease_seconds=0.1,
                                                    consumer="test")[0].message.body)
    assert message.signature is not None  # a signed header travels on the broker
    time.sleep(0.2)  # the claim's 0.1 s lease lapses: the job is back for the worker

    now = time.time()
    forged = Envelope.from_fields(id="forged-1", cluster=app.name, definition_id="record",
                                  encoding="json", payload=b'{"tag":"forged"}',
                                  created_at=now, due=now)
    replayed = replace(message, id="replayed-1")  # the signed bytes under another id
    app.agent().push([forged.to_message(), replayed.to_message()])
    keys = stack.env["JOBMASTER_SECRET"]
    stack.env["JOBMASTER_SECRET"] = "retired-key"
    old: App = stack.app()
    stale = old.definition("add").delay(x=1, y=1)  # signed with a key the worker lacks
    stack.env["JOBMASTER_SECRET"] = "old-key"
    rotated: App = stack.app()
    by_old_key = rotated.definition("add").delay(x=2, y=3)  # signed with the old key
    stack.env["JOBMASTER_SECRET"] = keys

    stack.worker("-c", "1")
    assert signed.wait(timeout=30).result == 42
    assert by_old_key.wait(timeout=30).result == 5  # rotation: the old key still verifies
    for job_id in ("forged-1", "replayed-1", stale.id):
        wait_until(lambda job_id=job_id: "SignatureError" in _dead(app, job_id)
                   or "signature" in _dead(app, job_id), what=f"{job_id} dead-lettered")
    assert "unsigned" in _dead(app, "forged-1")
    assert "does not match" in _dead(app, "replayed-1")
    assert "forged" not in "".join(stack.lines())  # the forged job never ran
    assert app.jobs.status("replayed-1") is JobStatus.FAILED
    old.close()
    rotated.close()
