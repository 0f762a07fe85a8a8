"""The envelope: one job's wire form through an agent."""

from __future__ import annotations

import dataclasses
import json

import pytest

from jobmaster.agents.base import AgentMessage
from jobmaster.envelope import Envelope, EnvelopeError


def make(**changes: object) -> Envelope:
    values: dict[str, object] = {
        "id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "cluster": "billing",
        "definition_id": "send-email", "lane": "emails", "priority": 3, "encoding": "json",
        "payload": b'{"to":"a@b.c"}', "created_at": 1_800_000_000.25, "due": 1_800_000_005.5,
        "attempt": 2, "max_retries": 3, "timeout": 30.0, "retry_delay": 10.0,
        "retry_backoff": 2.0, "metadata": {"category": "mail", "n": 1, "ok": True},
        "job_key": "k-1", "agent": "fast", "schedule_name": "nightly",
        "occurrence": 1_800_000_000.0,
    }
    values.update(changes)
    return Envelope.from_fields(**values)


def test_round_trip_every_field() -> None:
    env = make()
    assert Envelope.from_bytes(env.to_bytes()) == env


def test_round_trip_defaults() -> None:
    env = Envelope.from_fields(id="x", cluster="c", definition_id="d", lane="default", priority=2,
                   encoding="json", payload=b"{}", created_at=1.0, due=1.0)
    back = Envelope.from_bytes(env.to_bytes())
    assert back == env
    assert back.attempt == 1 and back.timeout is None and back.job_key is None
    assert back.agent == "main" and back.options.metadata == {}


@pytest.mark.parametrize("payload", [b"", b"\n\n", b"\x80\x05line1\nline2\n\x00", b"{}\n"],
                         ids=["empty", "newlines", "binary-with-newlines", "trailing-newline"])
def test_payload_travels_untouched(payload: bytes) -> None:
    env = make(payload=payload, encoding="pickle")
    back = Envelope.from_bytes(env.to_bytes())
    assert back.payload == payload
    assert back == env


def test_wire_form_is_header_line_then_payload() -> None:
    env = make()
    head, _, payload = env.to_bytes().partition(b"\n")
    header = json.loads(head)
    assert header["id"] == env.id
    assert header["definition_id"] == "send-email"
    assert "payload" not in header
    assert payload == env.payload


def test_from_bytes_accepts_bytearray_and_memoryview() -> None:
    data = make().to_bytes()
    assert Envelope.from_bytes(bytearray(data)) == make()
    assert Envelope.from_bytes(memoryview(data)) == make()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"garbage",
        b"\xff\xfe\x00\x01",
        b"not json\n{}",
        b"\xff\xfe\n{}",
        b"[1, 2]\n{}",
        b"null\n{}",
        b"42\n{}",
        b'{"id": "x"}\n{}',
        b'{"id":"x","cluster":"c","definition_id":"d","lane":"l","priority":1,"encoding":"json",'
        b'"created_at":1,"due":1,"surprise":1}\n{}',
        b'{"id":"x","cluster":"c","definition_id":"d","lane":"l","priority":1,"encoding":"json",'
        b'"created_at":1,"due":1,"payload":"sneaky"}\n{}',
    ],
    ids=["empty", "no-newline", "binary", "not-json", "bad-utf8", "list", "null", "number",
         "missing-fields", "unknown-field", "payload-in-header"],
)
def test_garbage_is_an_envelope_error(garbage: bytes) -> None:
    with pytest.raises(EnvelopeError, match="not a jobmaster envelope"):
        Envelope.from_bytes(garbage)


def test_envelope_error_is_a_value_error() -> None:
    assert issubclass(EnvelopeError, ValueError)


def test_next_attempt() -> None:
    env = make(attempt=1)
    nxt = env.next_attempt(1_900_000_000.0)
    assert nxt.attempt == 2
    assert nxt.due == 1_900_000_000.0
    assert dataclasses.replace(nxt, attempt=1, due=env.due) == env
    assert env.attempt == 1 and env.due == 1_800_000_005.5  # the original is unchanged
    assert nxt.next_attempt(2.0).attempt == 3


def test_next_attempt_leaves_the_original_alone() -> None:
    env = make()
    retry = env.next_attempt(due=env.due + 10)
    assert (env.attempt, retry.attempt) == (2, 3)
    assert retry.due == env.due + 10 and retry.id == env.id


def test_to_message() -> None:
    env = make()
    message = env.to_message()
    assert isinstance(message, AgentMessage)
    assert (message.id, message.lane, message.priority, message.due) == (
        env.id, "emails", 3, 1_800_000_005.5)
    assert Envelope.from_bytes(message.body) == env
    assert message.bucket == ("emails", 3)


def test_payload_not_in_repr() -> None:
    assert "to\":" not in repr(make(payload=b'{"to":"secret@example.com"}'))


def test_a_header_template_writes_the_same_bytes_as_the_envelope() -> None:
    from jobmaster.envelope import HeaderTemplate
    from jobmaster.options import JobOptions

    env = Envelope.from_fields(id="j1", cluster="c", definition_id="send", encoding="json",
                               payload=b'{"to":"x"}', created_at=1.5, due=2.5, lane="mail",
                               priority=3, max_retries=2, metadata={"tenant": "a"})
    template = HeaderTemplate(env.options)
    assert template.to_bytes(env) == env.to_bytes()
    signed = dataclasses.replace(env, signature="abc", job_key="k", attempt=2)
    assert template.to_bytes(signed) == signed.to_bytes()
    assert template.to_message(signed) == signed.to_message()
    other = dataclasses.replace(env, options=JobOptions(lane="mail"))  # not its options
    assert template.to_bytes(other) == other.to_bytes()


def test_the_redis_push_is_packed_as_redis_py_packs_it() -> None:
    from redis.connection import Connection

    from jobmaster.agents.redis import _packed_evalsha

    args = ["id-1", b"\x00body", 3, 1.25, "lane:é", 1795687895.3986292]
    expected = b"".join(Connection().pack_command("EVALSHA", "abc123", 1, "ns:jobs", *args))
    assert _packed_evalsha("abc123", "ns:jobs", args) == expected
    with pytest.raises(TypeError):
        _packed_evalsha("abc123", "ns:jobs", [object()])
