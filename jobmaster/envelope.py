"""The envelope: how one job travels through an agent.

An envelope is a one-line JSON header, a newline, then the encoded arguments untouched::

    {"id":"...","definition_id":"add","lane":"default",...}\\n{"x":1,"y":2}

The header holds the job's identity and every option of ``JobOptions`` under its own name.
Workers read the header without decoding the arguments; agents never look inside at all.
Nothing read back is trusted: ``from_bytes`` checks every field's type and range as
strictly as enqueue does, and raises ``EnvelopeError`` saying which field is wrong.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

from jobmaster.agents.base import AgentMessage
from jobmaster.exceptions import InvalidOptionError
from jobmaster.options import OPTION_NAMES, OPTIONS, JobOptions, check_name, option_values

try:  # orjson is optional: faster headers where it is installed
    import orjson

    def _dumps(value: dict[str, Any]) -> bytes:
        return orjson.dumps(value)

    def _loads(data: bytes) -> Any:
        return orjson.loads(data)

except ImportError:  # pragma: no cover - depends on the environment

    def _dumps(value: dict[str, Any]) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    def _loads(data: bytes) -> Any:
        return json.loads(data)


MAX_ATTEMPT = 2**31 - 1
_MAX_TIME = 253402300799.0  # 9999-12-31
_KNOWN_NAMES: set[str] = set()
_BAD = "not a jobmaster envelope: bad field "


class EnvelopeError(ValueError):
    """Bytes that are not a well-formed jobmaster envelope (the worker dead-letters them)."""


@dataclass(slots=True)
class Envelope:
    """One job as it travels: identity, resolved options and the encoded arguments.

    Treat it as immutable (``next_attempt`` makes a changed copy); it is not frozen only
    because frozen dataclasses are several times slower to build, and workers build one
    per job claimed.

    ``attempt`` is 1 on the first run and grows by one on each retry. Times are Unix
    timestamps. ``options.agent`` names the app agent the job was routed to.
    """

    id: str
    cluster: str
    definition_id: str
    encoding: str
    payload: bytes = field(repr=False)
    created_at: float
    due: float
    options: JobOptions
    attempt: int = 1
    job_key: str | None = None
    schedule_name: str | None = None
    occurrence: float | None = None
    permit_at: float | None = None
    """Set on a job a rate limit held back: the time of the slot reserved for it, so it runs
    then without asking the limiter again."""
    signature: str | None = None
    """The app's signature over the job's identity and arguments (``jobmaster.signing``),
    when the app signs envelopes."""

    @property
    def lane(self) -> str:
        """The job's lane."""
        return self.options.lane or ""

    @property
    def priority(self) -> int:
        """The job's priority (0-4)."""
        return self.options.priority or 0

    @property
    def timeout(self) -> float | None:
        """The job's hard time limit in seconds, if any."""
        return self.options.timeout

    @property
    def agent(self) -> str:
        """The name of the agent carrying the job."""
        return self.options.agent or ""

    def header(self) -> dict[str, Any]:
        """The header fields, options inlined under their names."""
        header = self.own_header()
        header.update(zip(OPTION_NAMES, option_values(self.options), strict=True))
        return header

    def own_header(self) -> dict[str, Any]:
        """The header fields of this job's own, without its options (``header`` adds
        them; ``HeaderTemplate`` adds them serialized once for many jobs)."""
        header: dict[str, Any] = {
            "id": self.id, "cluster": self.cluster, "definition_id": self.definition_id,
            "encoding": self.encoding, "created_at": self.created_at, "due": self.due,
            "attempt": self.attempt, "job_key": self.job_key,
            "schedule_name": self.schedule_name, "occurrence": self.occurrence,
        }
        if self.permit_at is not None:
            header["permit_at"] = self.permit_at
        if self.signature is not None:
            header["sig"] = self.signature
        return header

    def to_bytes(self) -> bytes:
        """The wire form: header line + newline + payload."""
        return _dumps(self.header()) + b"\n" + self.payload

    @classmethod
    def from_bytes(cls, body: bytes) -> Envelope:
        """Parse and check the wire form; ``EnvelopeError`` says what is wrong."""
        head, sep, payload = bytes(body).partition(b"\n")
        if not sep:
            raise EnvelopeError("not a jobmaster envelope: no header line")
        try:
            header = _loads(head)
        except ValueError as exc:
            raise EnvelopeError(f"not a jobmaster envelope: header is not JSON ({exc})") from None
        if not isinstance(header, dict):
            raise EnvelopeError("not a jobmaster envelope: header is not a JSON object")
        return cls.from_header(header, payload)

    @classmethod
    def from_checked_bytes(cls, body: bytes) -> Envelope:
        """Parse the wire form of an envelope that ``from_bytes`` already accepted (the
        worker's supervisor checks every claimed envelope before its child gets the same
        bytes): no check is repeated."""
        head, _, payload = body.partition(b"\n")
        h = _loads(head)
        return cls(h["id"], h["cluster"], h["definition_id"], h["encoding"], payload,
                   h["created_at"], h["due"], JobOptions.from_stored(h), h.get("attempt", 1),
                   h.get("job_key"), h.get("schedule_name"), h.get("occurrence"),
                   h.get("permit_at"), h.get("sig"))

    @classmethod
    def from_header(cls, header: dict[str, Any], payload: bytes) -> Envelope:
        """An envelope from its header fields (checked) and payload."""
        try:
            options = JobOptions.from_stored(header)
        except InvalidOptionError as exc:
            raise EnvelopeError(f"not a jobmaster envelope: bad field {exc}") from None
        get = header.get
        job_id, cluster, definition_id = get("id"), get("cluster"), get("definition_id")
        encoding, created_at, due = get("encoding"), get("created_at"), get("due")
        attempt, job_key, schedule_name = get("attempt", 1), get("job_key"), get("schedule_name")
        occurrence, sig = get("occurrence"), get("sig")
        if (type(job_id) is str and 0 < len(job_id) <= 100 and "\x00" not in job_id
                and type(cluster) is str and 0 < len(cluster) <= 100 and "\x00" not in cluster
                and type(encoding) is str and 0 < len(encoding) <= 16
                and type(definition_id) is str and definition_id in _KNOWN_NAMES
                and type(created_at) is float and 0.0 <= created_at < _MAX_TIME
                and type(due) is float and 0.0 <= due < _MAX_TIME
                and type(attempt) is int and 1 <= attempt <= MAX_ATTEMPT
                and job_key is None and schedule_name is None and occurrence is None
                and "permit_at" not in header
                and (sig is None or (type(sig) is str and 0 < len(sig) <= 100))):
            # the common shape, checked in one expression (the slow path below says what
            # is wrong when this does not hold)
            return cls(job_id, cluster, definition_id, encoding, payload, created_at, due,
                       options, attempt, signature=sig)
        env = cls(
            id=_text(header, "id", 100),
            cluster=_text(header, "cluster", 100),
            definition_id=_name(header, "definition_id"),
            encoding=_text(header, "encoding", 16),
            payload=payload,
            created_at=_time(header, "created_at"),
            due=_time(header, "due"),
            options=options,
            attempt=_attempt(header.get("attempt", 1)),
            job_key=_optional_name(header, "job_key"),
            schedule_name=_optional_name(header, "schedule_name"),
            occurrence=None if header.get("occurrence") is None else _time(header, "occurrence"),
            permit_at=None if header.get("permit_at") is None else _time(header, "permit_at"),
            signature=None if sig is None else _text(header, "sig", 100),
        )
        if len(_KNOWN_NAMES) >= 4096:
            _KNOWN_NAMES.clear()
        _KNOWN_NAMES.add(env.definition_id)  # checked: later envelopes skip the pattern
        return env

    @classmethod
    def from_fields(cls, **fields: Any) -> Envelope:
        """An envelope from flat fields, options among them (``lane=...``); options not
        given take the built-in defaults. For tools and tests: jobs are made by
        ``delay()``."""
        options = {k: fields.pop(k) for k in list(fields) if k in OPTIONS}
        base = JobOptions(**options).resolved({"agent": "main", "lane": "default",
                                                "max_retries": 0, "retry_delay": 10.0,
                                                "retry_backoff": 2.0}, 0.0)
        if "expires" in options:  # given as stored: an absolute time
            base = replace(base, expires=options["expires"])
        return cls(options=base, **fields)

    def to_message(self) -> AgentMessage:
        """The agent message carrying this envelope."""
        return AgentMessage(self.id, self.lane, self.priority, self.due, self.to_bytes())

    def next_attempt(self, due: float) -> Envelope:
        """The envelope of the retry, due at ``due``."""
        return replace(self, attempt=min(self.attempt + 1, MAX_ATTEMPT), due=due,
                       permit_at=None)


class HeaderTemplate:
    """The options part of the header of every envelope that carries one resolved
    ``JobOptions``, serialized once: ``to_bytes(env)`` serializes only the job's own
    fields, and gives the same bytes as ``env.to_bytes()``."""

    __slots__ = ("options", "_lane", "_priority", "_tail")

    def __init__(self, options: JobOptions) -> None:
        self.options = options
        self._lane = options.lane or ""
        self._priority = options.priority or 0
        # '"lane":...,"metadata":...}': the options object without its opening brace
        self._tail = _dumps(dict(zip(OPTION_NAMES, option_values(options), strict=True)))[1:]

    def to_bytes(self, env: Envelope) -> bytes:
        """``env``'s wire form (``env.to_bytes()``; the same, faster, when ``env`` carries
        this template's options)."""
        if env.options is not self.options:
            return env.to_bytes()
        return _dumps(env.own_header())[:-1] + b"," + self._tail + b"\n" + env.payload

    def to_message(self, env: Envelope) -> AgentMessage:
        """``env.to_message()``, through ``to_bytes``."""
        if env.options is not self.options:
            return env.to_message()
        return AgentMessage(env.id, self._lane, self._priority, env.due, self.to_bytes(env))


def _text(header: dict[str, Any], key: str, limit: int) -> str:
    value = header.get(key)
    if not isinstance(value, str) or not value or len(value) > limit or "\x00" in value:
        raise EnvelopeError(f"{_BAD}{key}={_short(value)}: expected a non-empty str of at "
                            f"most {limit} characters")
    return value


def _name(header: dict[str, Any], key: str) -> str:
    try:
        return check_name(header.get(key), key)
    except InvalidOptionError as exc:
        raise EnvelopeError(f"not a jobmaster envelope: bad field {exc}") from None


def _optional_name(header: dict[str, Any], key: str) -> str | None:
    return None if header.get(key) is None else _name(header, key)


def _time(header: dict[str, Any], key: str) -> float:
    value = header.get(key)
    if (not isinstance(value, int | float) or isinstance(value, bool)
            or not math.isfinite(value) or not 0 <= value < _MAX_TIME):
        raise EnvelopeError(f"{_BAD}{key}={_short(value)}: expected a Unix time")
    return float(value)


def _attempt(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_ATTEMPT:
        raise EnvelopeError(f"{_BAD}attempt={_short(value)}: expected an int >= 1")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
