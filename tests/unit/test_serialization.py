"""JSON and signed-pickle serialization, and the refusals at enqueue that keep bad input out."""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from jobmaster import (
    App,
    ConfigurationError,
    EnqueueError,
    PayloadTooLargeError,
    SerializationError,
    SignatureError,
)
from jobmaster.envelope import Envelope
from jobmaster.serialization import (
    JSONSerializer,
    PickleSerializer,
    encode_arguments,
    make_serializer,
)

JSON = JSONSerializer()


@pytest.fixture(autouse=True)
def _no_jobmaster_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("JOBMASTER_"):
            monkeypatch.delenv(key)


def make_app(tmp_path: Path, **options: Any) -> App:
    return App("unit-ser", master=f"sqlite:///{tmp_path}/m.db",
               agents={"main": f"memory://{uuid.uuid4().hex}"}, **options)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    a = make_app(tmp_path)
    yield a
    a.close()


def assert_nothing_stored(app: App) -> None:
    assert app.agent().length() == 0
    app.flush()
    assert app.jobs.list() == []


# -- JSON round trips ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        datetime(2026, 1, 2, 3, 4, 5, 6),  # naive stays naive
        date(2026, 2, 28),
        time(23, 59, 58, 999),
        time(8, 30, tzinfo=UTC),
        timedelta(days=-3, seconds=5, microseconds=7),
        timedelta(0),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        Decimal("10.25"),
        Decimal("-0.000000000000000000001"),
        b"\x00\xff\n\"{}",
        b"",
        "plain", 0, -1, 1.5, True, False, None,
        [], {},
    ],
    ids=repr,
)
def test_json_round_trip_of_each_supported_type(value: Any) -> None:
    back = JSON.loads(JSON.dumps(value))
    assert back == value
    assert type(back) is type(value)
    if isinstance(value, datetime | time):
        assert back.tzinfo == value.tzinfo
        assert (back.utcoffset() is None) == (value.utcoffset() is None)


def test_json_round_trip_nested() -> None:
    value = {
        "when": [datetime(2026, 1, 1, tzinfo=UTC), {"day": date(2026, 1, 1)}],
        "ids": {"a": [uuid.UUID(int=1), uuid.UUID(int=2)]},
        "money": {"amounts": [Decimal("1.10"), Decimal("2")]},
        "raw": [[b"a", b"b"], {"deep": {"deeper": [b"\x01", timedelta(hours=1)]}}],
        "plain": [1, "two", None, 3.5, True, {"k": []}],
    }
    assert JSON.loads(JSON.dumps(value)) == value


def test_bytearray_and_memoryview_come_back_as_bytes() -> None:
    assert JSON.loads(JSON.dumps([bytearray(b"ab"), memoryview(b"cd")])) == [b"ab", b"cd"]


def test_tuples_come_back_as_lists() -> None:
    back = JSON.loads(JSON.dumps({"t": (1, (2, 3)), "l": [(4,)]}))
    assert back == {"t": [1, [2, 3]], "l": [[4]]}
    assert isinstance(back["t"], list) and isinstance(back["t"][1], list)


@pytest.mark.parametrize(
    "value",
    [
        {"__jm__": "datetime", "v": "2026-01-01T00:00:00", "extra": 1},
        {"__jm__": "bytes", "v": "AAE=", "w": None},
        {"__jm__": "nonsense", "v": 1},
        {"__jm__": "datetime"},
        {"__jm__": "uuid", "value": "12345678-1234-5678-1234-567812345678"},
    ],
    ids=["extra-key", "second-extra-key", "unknown-tag", "no-v", "v-misnamed"],
)
def test_dict_that_merely_looks_like_a_tag_stays_a_dict(value: dict[str, Any]) -> None:
    back = JSON.loads(JSON.dumps({"arg": value, "list": [value]}))
    assert back == {"arg": value, "list": [value]}
    assert isinstance(back["arg"], dict)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_nan_and_infinity_are_refused(bad: float) -> None:
    with pytest.raises(TypeError):
        JSON.dumps({"x": bad})
    with pytest.raises(SerializationError, match="'x'"):
        encode_arguments(JSON, "job", {"x": bad}, 1000)


def test_json_output_is_compact_utf8() -> None:
    data = JSON.dumps({"name": "Zoë", "n": [1, 2]})
    assert data == '{"name":"Zoë","n":[1,2]}'.encode()


# -- encode_arguments: what cannot travel is named --------------------------------------


def _lambda() -> Any:
    return lambda: 1


@pytest.mark.parametrize(
    ("bad", "type_word"),
    [
        (object(), "object"),
        ({1, 2}, "set"),
        (frozenset({1}), "frozenset"),
        (_lambda(), "function"),
        (complex(1, 2), "complex"),
        ([1, {"deep": object()}], "object"),
    ],
    ids=["object", "set", "frozenset", "lambda", "complex", "nested-object"],
)
def test_encode_arguments_names_the_argument_its_type_and_pickle(bad: Any, type_word: str
                                                                 ) -> None:
    with pytest.raises(SerializationError) as info:
        encode_arguments(JSON, "my-job", {"good": 1, "payload": bad}, 10_000)
    message = str(info.value)
    assert "'payload'" in message
    assert "'good'" not in message
    assert "my-job" in message
    assert type_word in message
    assert "pickle" in message
    assert isinstance(info.value, EnqueueError) and isinstance(info.value, TypeError)


def test_set_hint_says_pass_a_list() -> None:
    with pytest.raises(SerializationError, match="sorted list"):
        encode_arguments(JSON, "job", {"tags": {"a", "b"}}, 10_000)


def test_non_string_dict_keys_that_json_cannot_carry_are_named() -> None:
    with pytest.raises(SerializationError, match="'mapping'"):
        encode_arguments(JSON, "job", {"mapping": {(1, 2): "x"}}, 10_000)


def test_payload_too_large_names_size_and_limit() -> None:
    kwargs = {"blob": "x" * 500}
    size = len(JSON.dumps(kwargs))
    with pytest.raises(PayloadTooLargeError) as info:
        encode_arguments(JSON, "big-job", kwargs, 100)
    message = str(info.value)
    assert f"{size:,}" in message
    assert "100" in message
    assert "big-job" in message
    assert "max_payload_bytes" in message
    assert isinstance(info.value, EnqueueError)


def test_payload_exactly_at_the_limit_is_accepted() -> None:
    kwargs = {"blob": "x" * 50}
    size = len(JSON.dumps(kwargs))
    assert encode_arguments(JSON, "job", kwargs, size) == JSON.dumps(kwargs)
    with pytest.raises(PayloadTooLargeError):
        encode_arguments(JSON, "job", kwargs, size - 1)


# -- pickle ------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", [None, "", b""], ids=["none", "empty-str", "empty-bytes"])
def test_pickle_needs_a_secret(secret: Any) -> None:
    with pytest.raises(ConfigurationError, match="secret"):
        make_serializer("pickle", secret)


def test_pickle_without_secret_refused_by_the_app(tmp_path: Path) -> None:
    """Refused when the app is made or at the latest at the first enqueue; nothing stored."""
    with pytest.raises(ConfigurationError, match="secret"):
        app = make_app(tmp_path, serializer="pickle")

        @app.job(definition_id="p")
        def p(x: int) -> int:
            return x

        try:
            p.delay(x=1)
        finally:
            assert_nothing_stored(app)


def test_unknown_serializer_refused() -> None:
    with pytest.raises(ConfigurationError, match="yaml"):
        make_serializer("yaml", None)
    with pytest.raises(ConfigurationError, match="serializer='yaml'"):
        App("x", master="sqlite:///x.db", agents={"main": "memory://"}, serializer="yaml")


def test_pickle_round_trips_lambda_and_closure() -> None:
    ser = PickleSerializer("s3cret")
    factor = 7

    def closure(x: int) -> int:
        return x * factor

    back = ser.loads(ser.dumps({"f": lambda y: y + 1, "g": closure, "s": {1, 2}}))
    assert back["f"](1) == 2
    assert back["g"](6) == 42
    assert back["s"] == {1, 2}


def test_pickle_accepts_bytes_secret() -> None:
    ser = PickleSerializer(b"\x00key")
    assert ser.loads(ser.dumps([1, 2])) == [1, 2]


def test_tampered_pickle_is_refused() -> None:
    ser = PickleSerializer("s3cret")
    data = bytearray(ser.dumps({"x": 1}))
    data[-2] ^= 0x01
    with pytest.raises(SignatureError, match="signature"):
        ser.loads(bytes(data))


def test_tampered_signature_is_refused() -> None:
    ser = PickleSerializer("s3cret")
    data = bytearray(ser.dumps({"x": 1}))
    data[0] ^= 0x01
    with pytest.raises(SignatureError):
        ser.loads(bytes(data))


@pytest.mark.parametrize("data", [b"", b"\x80\x05N.", b"x" * 32], ids=["empty", "bare", "32"])
def test_unsigned_pickle_is_refused(data: bytes) -> None:
    with pytest.raises(SignatureError, match="unsigned"):
        PickleSerializer("s3cret").loads(data)


def test_plain_unsigned_pickle_is_refused_not_unpickled() -> None:
    import pickle

    body = pickle.dumps({"x": "a" * 100})  # longer than a signature, but not signed
    assert len(body) > 32
    with pytest.raises(SignatureError):
        PickleSerializer("s3cret").loads(body)


def test_pickle_made_with_another_secret_is_refused() -> None:
    data = PickleSerializer("one").dumps({"x": 1})
    with pytest.raises(SignatureError, match="secret"):
        PickleSerializer("two").loads(data)


def test_unpicklable_value_is_named_at_enqueue() -> None:
    import threading

    ser = PickleSerializer("s3cret")
    with pytest.raises(SerializationError) as info:
        encode_arguments(ser, "pj", {"ok": 1, "lock": threading.Lock()}, 10_000)
    assert "'lock'" in str(info.value)
    assert "pickle" in str(info.value)


def test_pickle_app_enqueues_a_lambda(tmp_path: Path) -> None:
    app = make_app(tmp_path, serializer="pickle", secret="s3cret")

    @app.job(definition_id="call")
    def call(f: Any) -> Any:
        return f()

    handle = call.delay(f=lambda: 41 + 1)
    [claimed] = app.agent().claim(["default"], 10, lease_seconds=30.0, consumer="test")
    env = Envelope.from_bytes(claimed.message.body)
    assert env.id == handle.id
    assert env.encoding == "pickle"
    assert app.serializers["pickle"].loads(env.payload)["f"]() == 42
    app.close()


# -- refused at enqueue through the public API: nothing stored --------------------------


def test_unserializable_argument_refused_by_delay_and_nothing_stored(app: App) -> None:
    @app.job(definition_id="echo")
    def echo(value: Any, other: int = 0) -> Any:
        return value

    with pytest.raises(SerializationError) as info:
        echo.delay(value=object(), other=1)
    assert "'value'" in str(info.value)
    assert "echo" in str(info.value)
    assert "object" in str(info.value)
    assert "pickle" in str(info.value)
    assert_nothing_stored(app)


@pytest.mark.parametrize("how", ["delay", "apply", "enqueue", "apply_after"])
def test_unserializable_argument_refused_by_every_entry_point(app: App, how: str) -> None:
    @app.job(definition_id="echo")
    def echo(value: Any) -> Any:
        return value

    bad = {"value": {1, 2, 3}}
    with pytest.raises(SerializationError, match="'value'.*set"):
        if how == "delay":
            echo.delay(**bad)
        elif how == "apply":
            echo.apply(kwargs=bad)
        elif how == "enqueue":
            app.enqueue("echo", kwargs=bad)
        else:
            echo.apply_after(timedelta(hours=2), **bad)
    assert_nothing_stored(app)


def test_nan_refused_at_enqueue(app: App) -> None:
    @app.job(definition_id="num")
    def num(x: float) -> float:
        return x

    with pytest.raises(SerializationError, match="'x'"):
        num.delay(x=float("nan"))
    assert_nothing_stored(app)


def test_oversized_payload_refused_and_nothing_stored(tmp_path: Path) -> None:
    app = make_app(tmp_path, max_payload_bytes=1000)

    @app.job(definition_id="blob")
    def blob(data: str) -> int:
        return len(data)

    with pytest.raises(PayloadTooLargeError) as info:
        blob.delay(data="y" * 2000)
    message = str(info.value)
    assert "1,000" in message
    assert f"{len(JSON.dumps({'data': 'y' * 2000})):,}" in message
    assert_nothing_stored(app)
    blob.delay(data="y" * 100)  # under the limit: accepted
    assert app.agent().length() == 1
    app.close()


def test_default_payload_limit_is_128_kib(app: App) -> None:
    assert app.config.max_payload_bytes == 128 * 1024

    @app.job(definition_id="blob")
    def blob(data: str) -> int:
        return len(data)

    with pytest.raises(PayloadTooLargeError, match="131,072"):
        blob.delay(data="z" * (128 * 1024))
    assert_nothing_stored(app)


def test_one_bad_job_in_delay_many_stores_none(app: App) -> None:
    @app.job(definition_id="echo")
    def echo(value: Any) -> Any:
        return value

    with pytest.raises(SerializationError, match="'value'"):
        echo.delay_many([{"value": 1}, {"value": object()}, {"value": 3}])
    assert_nothing_stored(app)


def test_supported_types_survive_enqueue(app: App) -> None:
    @app.job(definition_id="echo")
    def echo(value: Any) -> Any:
        return value

    value = {"when": datetime(2026, 1, 2, tzinfo=UTC), "naive": datetime(2026, 1, 2),
             "amount": Decimal("1.5"), "id": uuid.UUID(int=5), "raw": b"\x00"}
    handle = echo.delay(value=value)
    app.flush()
    assert app.jobs.get(handle.id).kwargs == {"value": value}
