"""Properties, checked on generated inputs (Hypothesis): every decoder a worker runs on
agent data either decodes or refuses with its own error, and never crashes otherwise;
envelopes round-trip; signatures bind what they sign; retry decisions stay inside their
policy."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobmaster.envelope import Envelope, EnvelopeError
from jobmaster.models import JobError, JobStatus
from jobmaster.outcomes import (
    AgentAction,
    Cancelled,
    Raised,
    Rejected,
    Released,
    RetryPolicy,
    Succeeded,
    TimedOut,
    decide,
)
from jobmaster.signing import Signer

FAST = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

names = st.from_regex(r"[a-z][a-z0-9_.-]{0,30}", fullmatch=True)
lanes = st.from_regex(r"[a-z0-9_-]{1,30}", fullmatch=True)
times = st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner,
                                                                 max_size=4),
    max_leaves=12)


@st.composite
def envelopes(draw: Any) -> Envelope:
    return Envelope.from_fields(
        id=draw(st.uuids()).hex, cluster=draw(names), definition_id=draw(names),
        encoding=draw(st.sampled_from(["json", "pickle"])),
        payload=draw(st.binary(max_size=200)), created_at=draw(times), due=draw(times),
        attempt=draw(st.integers(1, 2**31 - 1)),
        lane=draw(lanes), priority=draw(st.integers(0, 4)))


@FAST
@given(st.binary(max_size=400))
def test_any_bytes_decode_or_are_refused_as_an_envelope_error(body: bytes) -> None:
    try:
        Envelope.from_bytes(body)
    except EnvelopeError:
        pass


@FAST
@given(envelopes(), st.dictionaries(st.sampled_from(
    ["id", "cluster", "definition_id", "encoding", "created_at", "due", "attempt",
     "lane", "priority", "timeout", "max_retries", "expires", "job_key", "sig",
     "schedule_name", "occurrence", "permit_at", "meta"]), json_values, max_size=4))
def test_a_header_with_any_field_replaced_decodes_or_is_refused(
        env: Envelope, changes: dict[str, Any]) -> None:
    header = {**env.header(), **changes}
    body = json.dumps(header).encode() + b"\n" + env.payload
    try:
        got = Envelope.from_bytes(body)
    except EnvelopeError:
        return
    assert got.id == header["id"] and math.isfinite(got.due) and 1 <= got.attempt


@FAST
@given(envelopes())
def test_envelopes_round_trip(env: Envelope) -> None:
    again = Envelope.from_bytes(env.to_bytes())
    assert again.header() == env.header() and again.payload == env.payload


@FAST
@given(envelopes(), st.binary(min_size=1, max_size=64), st.sampled_from(
    ["id", "cluster", "definition_id", "payload", "lane"]))
def test_a_signature_binds_every_signed_field(env: Envelope, key: bytes, field: str) -> None:
    signer = Signer([key])
    env.signature = signer.sign(env)
    assert signer.verify(Envelope.from_bytes(env.to_bytes()))
    if field == "lane":
        changed = replace(env, options=replace(env.options, lane=env.lane + "x"))
    elif field == "payload":
        changed = replace(env, payload=env.payload + b"x")
    else:
        changed = replace(env, **{field: getattr(env, field) + "x"})
    assert not signer.verify(changed)


error = JobError("E", "boom")
outcomes = st.one_of(
    st.builds(Succeeded, result=st.just(b"1")),
    st.builds(Raised, error=st.just(error),
              retry_after=st.none() | st.floats(allow_nan=True, allow_infinity=True),
              retryable=st.booleans(), retry_limit=st.none() | st.integers(0, 20)),
    st.builds(TimedOut, timeout=st.floats(0.1, 100)),
    st.builds(Cancelled), st.builds(Rejected, error=st.just(error)), st.builds(Released))
policies = st.builds(RetryPolicy, max_retries=st.integers(0, 20),
                     delay=st.floats(0, 3600), backoff=st.floats(1, 10),
                     jitter=st.floats(0, 10), max_wait=st.floats(1, 86_400))


@FAST
@given(outcomes, st.integers(1, 100), policies, times, st.floats(0, 1))
def test_a_decision_stays_inside_its_policy(outcome: Any, attempt: int, policy: RetryPolicy,
                                            now: float, rand: float) -> None:
    decision = decide(outcome, attempt=attempt, policy=policy, now=now, rand=rand)
    limit = outcome.retry_limit if isinstance(outcome, Raised) and \
        outcome.retry_limit is not None else policy.max_retries
    if decision.status is JobStatus.RETRYING:
        assert decision.action is AgentAction.RETRY and attempt <= limit
        assert decision.retry_at is not None and math.isfinite(decision.retry_at)
        assert now <= decision.retry_at
    else:
        assert decision.retry_at is None
    assert (decision.status is JobStatus.SUCCEEDED) == isinstance(outcome, Succeeded)
    if isinstance(outcome, Rejected):
        assert decision.action is AgentAction.DEAD_LETTER  # never retried forever
