"""How job arguments and results become bytes, and back.

JSON is the default: plain data plus ``datetime``, ``date``, ``time``, ``timedelta``,
``UUID``, ``Decimal`` and ``bytes``, which round-trip through tagged objects
(``{"__jm__": "datetime", "v": "..."}``); tuples come back as lists. Pickle (cloudpickle)
is opt-in per app and every pickled payload carries an HMAC-SHA256 signature made with the
app's secret; an unsigned or wrongly signed payload is refused before it is unpickled.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Protocol

from jobmaster.exceptions import (
    ConfigurationError,
    PayloadTooLargeError,
    SerializationError,
    SignatureError,
)

_TAG = "__jm__"
_TAG_BYTES = b'"__jm__"'
JSON_TYPES = "str, int, float, bool, None, list, dict, datetime, date, time, timedelta, UUID, " \
    "Decimal, bytes"


class Serializer(Protocol):
    """Turns Python values into bytes and back."""

    name: str

    def dumps(self, value: Any) -> bytes:
        """Encode a value; raise ``TypeError`` naming the type it cannot carry."""
        ...

    def loads(self, data: bytes) -> Any:
        """Decode what ``dumps`` made."""
        ...


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return {_TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, date):
        return {_TAG: "date", "v": value.isoformat()}
    if isinstance(value, time):
        return {_TAG: "time", "v": value.isoformat()}
    if isinstance(value, timedelta):
        return {_TAG: "timedelta", "v": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, uuid.UUID):
        return {_TAG: "uuid", "v": str(value)}
    if isinstance(value, Decimal):
        return {_TAG: "decimal", "v": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {_TAG: "bytes", "v": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, set | frozenset):
        raise TypeError(f"{type(value).__name__} is not JSON data (pass a sorted list)")
    raise TypeError(f"{type(value).__module__}.{type(value).__qualname__} is not JSON data")


_DECODERS: dict[str, Any] = {
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "time": time.fromisoformat,
    "timedelta": lambda v: timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "uuid": uuid.UUID,
    "decimal": Decimal,
    "bytes": lambda v: base64.b64decode(v),
}


def _hook(obj: dict[str, Any]) -> Any:
    tag = obj.get(_TAG)
    if tag is not None and len(obj) == 2 and "v" in obj:
        decoder = _DECODERS.get(tag)
        if decoder is not None:
            return decoder(obj["v"])
    return obj


_encoder = json.JSONEncoder(default=_default, ensure_ascii=False, separators=(",", ":"),
                            allow_nan=False)
_plain_decoder = json.JSONDecoder()
_tagged_decoder = json.JSONDecoder(object_hook=_hook)


class JSONSerializer:
    """The default serializer: JSON with tagged extra types (see the module docstring)."""

    name = "json"

    def dumps(self, value: Any) -> bytes:
        """Encode ``value`` as UTF-8 JSON."""
        try:
            return _encoder.encode(value).encode("utf-8")
        except ValueError as exc:  # NaN / infinity
            raise TypeError(str(exc)) from exc

    def loads(self, data: bytes) -> Any:
        """Decode JSON made by ``dumps``, restoring tagged types."""
        text = data.decode("utf-8")
        if _TAG_BYTES in data:
            return _tagged_decoder.decode(text)
        return _plain_decoder.decode(text)


class PickleSerializer:
    """cloudpickle with an HMAC-SHA256 signature over every payload (opt-in)."""

    name = "pickle"
    _SIG = 32

    def __init__(self, secret: str | bytes | Sequence[str | bytes]) -> None:
        values = [secret] if isinstance(secret, str | bytes) else list(secret)
        self._keys = [k.encode() if isinstance(k, str) else bytes(k) for k in values if k]
        if not self._keys:
            raise ConfigurationError(
                "serializer='pickle' needs secret=...: pickled payloads are signed with it "
                "and refused unsigned (set App(secret=...) or JOBMASTER_SECRET)"
            )
        try:
            import cloudpickle
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "serializer='pickle' needs cloudpickle: pip install 'jobmaster[pickle]'"
            ) from exc
        self._pickle = cloudpickle

    def dumps(self, value: Any) -> bytes:
        """Pickle ``value`` and prefix the signature."""
        try:
            data: bytes = self._pickle.dumps(value)
        except Exception as exc:
            raise TypeError(f"{type(value).__qualname__} cannot be pickled: {exc}") from exc
        return hmac.new(self._keys[0], data, hashlib.sha256).digest() + data

    def loads(self, data: bytes) -> Any:
        """Check the signature, then unpickle; refuse anything unsigned or tampered with."""
        if len(data) <= self._SIG:
            raise SignatureError("pickled payload is unsigned (too short to hold a signature)")
        signature, body = data[: self._SIG], data[self._SIG :]
        if not any(hmac.compare_digest(signature,
                                       hmac.new(key, body, hashlib.sha256).digest())
                   for key in self._keys):
            raise SignatureError(
                "pickled payload signature does not match this app's secret; it was made "
                "with another secret or altered, and was not unpickled"
            )
        import pickle

        return pickle.loads(body)  # noqa: S301 - signature checked above


def make_serializer(name: str, secret: str | bytes | Sequence[str] | None) -> Serializer:
    """The serializer an app asked for by name."""
    if name == "json":
        return JSONSerializer()
    if name == "pickle":
        return PickleSerializer(secret or b"")
    raise ConfigurationError(f"serializer={name!r} is unknown; use 'json' or 'pickle'")


def encode_arguments(
    serializer: Serializer,
    definition_id: str,
    kwargs: Mapping[str, Any],
    max_bytes: int,
) -> bytes:
    """Encode a job's keyword arguments, refusing what cannot travel.

    Raises ``SerializationError`` naming the first argument that cannot be encoded and its
    type, or ``PayloadTooLargeError`` with the size and the limit.
    """
    try:
        data = serializer.dumps(dict(kwargs))
    except (TypeError, ValueError, RecursionError):
        for name, value in kwargs.items():
            try:
                serializer.dumps(value)
            except (TypeError, ValueError, RecursionError) as exc:
                hint = (
                    f"pass plain data ({JSON_TYPES}), or opt in to pickle with "
                    "App(serializer='pickle', secret=...)"
                    if serializer.name == "json"
                    else "make it picklable"
                )
                raise SerializationError(
                    f"argument {name!r} of job {definition_id!r} cannot be serialized with "
                    f"{serializer.name}: {exc}; {hint}"
                ) from None
        raise
    if len(data) > max_bytes:
        raise PayloadTooLargeError(
            f"arguments of job {definition_id!r} encode to {len(data):,} bytes, over the "
            f"{max_bytes:,}-byte limit; pass a reference (an id, a URL, a file path) instead "
            "of the data, or raise App(max_payload_bytes=...)"
        )
    return data
