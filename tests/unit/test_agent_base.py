"""The agent contract's helpers: message checks, storable reasons, redaction, polling."""

from __future__ import annotations

import math

import pytest

from jobmaster.agents.base import (
    AgentMessage,
    Claimed,
    Malformed,
    check_messages,
    poll_claims,
    read_message,
    redact_text,
    redact_url,
    salvage_message,
    storable_reason,
    url_secrets,
)
from jobmaster.exceptions import ConfigurationError


# -- reading records back ------------------------------------------------------------------
def test_a_well_formed_record_reads_as_the_message() -> None:
    assert read_message("j1", "emails", 4, 12.5, b"body") == AgentMessage(
        "j1", "emails", 4, 12.5, b"body"
    )
    # what drivers return for good rows: an int due, a memoryview body
    got = read_message("j1", "emails", 0, 12, memoryview(b"body"))
    assert got == AgentMessage("j1", "emails", 0, 12.0, b"body")
    assert type(got.body) is bytes and type(got.due) is float  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (("j", "l", "x", 1.0, b""), "stored record has priority 'x', not an int 0..4"),
        (("j", "l", 5, 1.0, b""), "stored record has priority 5, not an int 0..4"),
        (("j", "l", -1, 1.0, b""), "stored record has priority -1, not an int 0..4"),
        (("j", "l", None, 1.0, b""), "stored record has priority None, not an int 0..4"),
        (("j", "l", True, 1.0, b""), "stored record has priority True, not an int 0..4"),
        (("j", "l", 2, "abc", b""), "stored record has due time 'abc', not a number"),
        (("j", "l", 2, math.nan, b""), "stored record has due time nan, not a finite number"),
        (("j", "l", 2, -math.inf, b""), "stored record has due time -inf, not a finite number"),
        (("j", "l", 2, None, b""), "stored record has due time None, not a number"),
        (("", "l", 2, 1.0, b""), "stored record has id '', not a non-empty string"),
        ((b"\xff", "l", 2, 1.0, b""), "stored record has id b'\\xff', not a non-empty string"),
        (("j", None, 2, 1.0, b""), "stored record has lane None, not a string"),
        (("j", "l", 2, 1.0, "text"), "stored record has body of type str, not bytes"),
        (("j", "l", 2, 1.0, None), "stored record has body of type NoneType, not bytes"),
    ],
)
def test_a_malformed_record_says_what_is_wrong(fields: tuple[object, ...], reason: str) -> None:
    got = read_message(*fields)
    assert isinstance(got, Malformed)
    assert got.reason == reason
    kept = got.message  # storable anywhere: right types, priority 0..4, finite due
    assert isinstance(kept.id, str) and isinstance(kept.lane, str)
    assert kept.priority in range(5) and math.isfinite(kept.due)
    assert isinstance(kept.body, bytes)


def test_salvage_keeps_what_it_can() -> None:
    assert salvage_message(b"id\xff", "lane", 3, 7.5, "t\udcffext") == AgentMessage(
        "id\ufffd", "lane", 3, 7.5, b"t\xed\xb3\xbfext"
    )
    assert salvage_message(None, 42, 9, math.inf, None) == AgentMessage("", "42", 0, 0.0, b"")


def test_a_long_value_is_shortened_in_the_reason() -> None:
    got = read_message("j", "l", "p" * 500, 1.0, b"")
    assert isinstance(got, Malformed)
    assert len(got.reason) < 150


# -- checking pushes -----------------------------------------------------------------------
def test_well_formed_messages_pass() -> None:
    check_messages([AgentMessage("a", "l", p, 1.0, b"") for p in range(5)])
    check_messages([AgentMessage("a", "", 2, 1, bytearray(b"x"))])  # type: ignore[arg-type]
    check_messages([])


@pytest.mark.parametrize(
    ("message", "words"),
    [
        (AgentMessage("a", "l", 5, 1.0, b""), "priority 5"),
        (AgentMessage("a", "l", 2, math.nan, b""), "due time nan"),
        (AgentMessage("", "l", 2, 1.0, b""), "id ''"),
        (AgentMessage("a", "l", 2, 1.0, "s"), "body of type str"),  # type: ignore[arg-type]
    ],
)
def test_a_malformed_message_is_refused_by_name(message: AgentMessage, words: str) -> None:
    good = AgentMessage("good", "l", 2, 1.0, b"")
    with pytest.raises(ConfigurationError, match=words) as info:
        check_messages([good, message])
    assert "nothing of this batch was stored" in str(info.value)


# -- storable reasons ----------------------------------------------------------------------
def test_a_plain_reason_is_kept_as_it_is() -> None:
    reason = "ValueError: bad input\n  at line 3\tcol 4 — é中😀"
    assert storable_reason(reason, 65536) == reason


def test_control_characters_go_but_newlines_and_tabs_stay() -> None:
    assert storable_reason("a\x00b\x07c\r\nd\te\x7f\x85f\x1b", 1000) == "abc\nd\tef"


def test_unencodable_characters_are_replaced() -> None:
    got = storable_reason("lone \ud800 surrogate \udfff", 1000)
    assert got == "lone \ufffd surrogate \ufffd"
    got.encode()  # encodable now


@pytest.mark.parametrize("limit", [10, 64, 1024, 65535])
def test_a_long_reason_is_cut_on_a_character_boundary_with_a_marker(limit: int) -> None:
    reason = "é中😀x" * 100_000
    got = storable_reason(reason, limit)
    data = got.encode()  # valid UTF-8 after the cut
    assert len(data) <= limit
    if limit >= 64:
        assert got.endswith(f"[reason cut: {len(reason.encode())} bytes in all]")
        assert reason.startswith(got.split("\n… [reason cut")[0])
        assert len(data) > limit - 5  # nearly all of the room is used


def test_a_reason_exactly_at_the_limit_is_not_cut() -> None:
    assert storable_reason("é" * 50, 100) == "é" * 50
    assert "reason cut" in storable_reason("é" * 51, 100)


# -- redaction -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("redis://jm:s3cret@host:6379/0", "redis://jm:***@host:6379/0"),
        ("redis://:s3cret@host/0", "redis://:***@host/0"),
        ("redis://s3cret@host/0", "redis://***@host/0"),
        ("rediss://s3cret@host/0", "rediss://***@host/0"),
        ("nats://t0ken@host:4222", "nats://***@host:4222"),
        ("nats://a:pw1@h1:4222,nats://t0ken@h2:4222?timeout=1",
         "nats://a:***@h1:4222,nats://***@h2:4222?timeout=1"),
        ("postgresql+psycopg://jm@host/db", "postgresql+psycopg://jm@host/db"),
        ("postgresql://jm:p%40ss@host/db?sslmode=require",
         "postgresql://jm:***@host/db?sslmode=require"),
        ("postgresql://host/db?user=jm&password=s3cret", "postgresql://host/db?user=jm&password=***"),
        ("redis://host/0?token=abc&db=1&Auth=x&api_key=k&client_secret=c",
         "redis://host/0?token=***&db=1&Auth=***&api_key=***&client_secret=***"),
        ("mysql://root@127.0.0.1:3306/test", "mysql://root@127.0.0.1:3306/test"),
        ("redis://u:pa/ss@host/0", "redis://u:***@host/0"),
        ("redis://u:p@ss@host/0", "redis://u:***@host/0"),
        ("redis://u:p?ss@host/0", "redis://u:***@host/0"),
        ("redis://host/0?x=a@b", "redis://host/0?x=a@b"),
        ("redis://user:@host/0", "redis://user:@host/0"),
        ("sqlite:///agent.db", "sqlite:///agent.db"),
        ("memory://", "memory://"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_url_secrets_and_redact_text() -> None:
    url = "nats://a:p%40ss@h1,nats://t0ken@h2?password=zz9"
    assert set(url_secrets(url)) == {"p%40ss", "p@ss", "t0ken", "zz9"}
    text = "auth failed for p@ss and t0ken (zz9), user a"
    assert redact_text(text, url) == "auth failed for *** and *** (***), user a"
    assert url_secrets("postgresql://jm@host/db") == []  # a user name is no secret


# -- polling ---------------------------------------------------------------------------------
def _claim(n: int) -> Claimed:
    return Claimed(AgentMessage(str(n), "l", 2, 0.0, b""), n)


def test_poll_claims_looks_again_at_once_after_a_batch_of_only_malformed_records() -> None:
    rounds = iter([([], True), ([], True), ([_claim(1)], False)])
    assert poll_claims(lambda: next(rounds), wait=0.0) == [_claim(1)]


def test_poll_claims_returns_empty_when_nothing_is_due_and_nothing_was_removed() -> None:
    calls: list[int] = []

    def once() -> tuple[list[Claimed], bool]:
        calls.append(1)
        return [], False

    assert poll_claims(once, wait=0.0) == []
    assert len(calls) == 1


def test_poll_claims_gives_up_on_malformed_records_that_never_go_away() -> None:
    calls: list[int] = []

    def once() -> tuple[list[Claimed], bool]:
        calls.append(1)
        return [], True

    assert poll_claims(once, wait=0.0) == []
    assert 1 < len(calls) <= 102
