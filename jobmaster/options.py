"""Every job option, once: its default, its validation, where the app-wide default and its
environment variable live, where the master stores it, and what it means.

A job's options are set at three levels — the definition (``@app.job(timeout=30)``), the
call (``apply(timeout=10)``) or schedule, and the app (``App(default_timeout=...)``, env
``JOBMASTER_DEFAULT_TIMEOUT``) — and resolved once, at enqueue, into the ``JobOptions`` an
envelope carries. Definitions, per-call overrides, schedules, beat, the envelope, the
master's rows and columns all read the list below, so adding an option is one field here
(and, when the master stores it, one migration)::

    expires: float | datetime | None = option(
        "Not started by then (seconds after enqueue, or a datetime): cancelled, never run.",
        check=_check_expires, stored=_check_timestamp, at_enqueue=_expires_at,
        column="expires_at", sql=_timestamp)

Every number is checked finite and within what its column holds; strings for what their
column takes. A bad value raises ``InvalidOptionError`` naming the option and what to pass.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from jobmaster.exceptions import InvalidOptionError
from jobmaster.priority import Priority

MAX_SECONDS = 10 * 366 * 86400.0
"""The longest duration any option accepts (ten years): beyond it, times stop fitting the
master's columns and the operating system's timers."""
MAX_RETRIES = 1_000_000
"""The most retries a job may ask for (the master's column is a 32-bit integer)."""
MAX_BACKOFF = 1000.0
"""The largest retry backoff multiplier."""
MAX_METADATA_BYTES = 16 * 1024
"""The largest metadata, encoded as JSON."""
MAX_NAME = 200
"""The longest definition id, job key or schedule name (the master's column width)."""

_LANE = re.compile(r"[A-Za-z0-9_-]{1,100}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_META_KEY = re.compile(r'[ !#-\[\]-~]{1,100}')  # printable ASCII but " and \
_INT64 = 2**63


def _bad(argument: str, value: Any, what: str) -> InvalidOptionError:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return InvalidOptionError(f"{argument}={text} {what}")


def check_name(value: Any, argument: str) -> str:
    """A definition id, job key or schedule name: a non-empty str of at most 200
    characters without control characters."""
    if (not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME
            or _CONTROL.search(value)):
        raise _bad(argument, value, f"must be a non-empty str of at most {MAX_NAME} "
                   "characters, without control characters (NUL, newline...)")
    return value


def check_lane(value: Any, argument: str = "lane") -> str:
    """A lane name: 1-100 letters, digits, ``_`` or ``-``."""
    if not isinstance(value, str) or not _LANE.fullmatch(value):
        raise _bad(argument, value, "is not a lane name; use 1-100 letters, digits, '_' or '-'")
    return value


def check_priority(value: Any, argument: str = "priority") -> int:
    """A ``Priority``, its name or its number 0-4."""
    try:
        return int(Priority.coerce(value, argument))
    except ValueError as exc:
        raise InvalidOptionError(str(exc)) from None


def duration(value: Any, argument: str, *, allow_zero: bool = False) -> float:
    """Seconds from an int, float or ``timedelta``: finite, not negative (zero only if
    allowed), at most ``MAX_SECONDS``."""
    if isinstance(value, timedelta):
        result = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            result = float(value)
        except OverflowError:
            result = math.inf
    else:
        raise _bad(argument, value, "must be seconds (int or float) or a timedelta, not "
                   f"{type(value).__name__}")
    if not math.isfinite(result) or result < 0 or (result == 0 and not allow_zero):
        raise _bad(argument, value, "must be a finite, positive number of seconds"
                   + (" (or 0)" if allow_zero else ""))
    if result > MAX_SECONDS:
        raise _bad(argument, value, f"is longer than the {MAX_SECONDS:g} s (ten years) "
                   "any duration may be")
    return result


def _check_timeout(value: Any, argument: str = "timeout") -> float:
    return duration(value, argument)


def _check_delay(value: Any, argument: str = "retry_delay") -> float:
    return duration(value, argument, allow_zero=True)


def _check_retries(value: Any, argument: str = "max_retries") -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_RETRIES:
        raise _bad(argument, value, f"must be an int from 0 to {MAX_RETRIES:,}")
    return value


def _check_backoff(value: Any, argument: str = "retry_backoff") -> float:
    if (not isinstance(value, int | float) or isinstance(value, bool)
            or not 1.0 <= float(value) <= MAX_BACKOFF):  # false for nan
        raise _bad(argument, value, f"must be a number from 1.0 to {MAX_BACKOFF:g}")
    return float(value)


def _check_backoff_max(value: Any, argument: str = "retry_backoff_max") -> float:
    return duration(value, argument)


def _check_jitter(value: Any, argument: str = "retry_jitter") -> float:
    if (not isinstance(value, int | float) or isinstance(value, bool)
            or not 0.0 <= float(value) <= 10.0):  # false for nan
        raise _bad(argument, value, "must be a number from 0 to 10 (a fraction of the wait)")
    return float(value)


def check_metadata(value: Any, argument: str = "metadata") -> dict[str, Any]:
    """A flat dict of str keys to str, int, float, bool or None values (so it can be
    queried), finite numbers, no control characters in keys or NUL in values, at most
    ``MAX_METADATA_BYTES`` as JSON."""
    if not isinstance(value, Mapping):
        raise InvalidOptionError(f"{argument} must be a dict, not {type(value).__name__}")
    result = dict(value)
    size = 2
    for key, item in result.items():
        if not isinstance(key, str) or not _META_KEY.fullmatch(key):
            raise InvalidOptionError(f"{argument} keys must be str of 1-100 printable ASCII "
                                     f"characters other than '\"' and '\\' (so every master "
                                     f"can query them), got {key!r}")
        if isinstance(item, str):
            if "\x00" in item:
                raise InvalidOptionError(f"{argument}[{key!r}] holds a NUL character, which "
                                         "the master cannot store")
            size += len(item.encode("utf-8", "replace"))
        elif isinstance(item, bool) or item is None:
            pass
        elif isinstance(item, int):
            if not -_INT64 <= item < _INT64:
                raise InvalidOptionError(f"{argument}[{key!r}]={item} does not fit a 64-bit "
                                         "integer")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidOptionError(f"{argument}[{key!r}]={item!r}: metadata numbers "
                                         "must be finite")
        else:
            raise InvalidOptionError(
                f"{argument}[{key!r}]={item!r}: metadata values must be str, int, float, "
                "bool or None so they can be queried"
            )
        size += len(key) + 24
    if size > MAX_METADATA_BYTES:
        raise InvalidOptionError(f"{argument} is about {size:,} bytes; metadata may be at most "
                                 f"{MAX_METADATA_BYTES:,} (put large values in the arguments)")
    return result


def _check_agent(value: Any, argument: str = "agent") -> str:
    if not isinstance(value, str) or not value or len(value) > 100 or _CONTROL.search(value):
        raise _bad(argument, value, "must be the name of one of the app's agents")
    return value


def _check_expires(value: Any, argument: str = "expires") -> float | datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        _check_timestamp(value.timestamp(), argument)
        when: datetime = value
        return when
    return duration(value, argument)


def _check_timestamp(value: Any, argument: str) -> float:
    if (not isinstance(value, int | float) or isinstance(value, bool)
            or not 0.0 <= float(value) < 253402300799.0):  # up to 9999-12-31
        raise _bad(argument, value, "must be a Unix time between 1970 and 9999")
    return float(value)


def _expires_at(value: float | datetime, now: float) -> float:
    return value.timestamp() if isinstance(value, datetime) else now + value


MAX_TRACE_CONTEXT_BYTES = 8 * 1024
"""The largest trace context (W3C ``traceparent``, ``tracestate``, ``baggage``...)."""
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
_HEADER_VALUE = re.compile(r"[ -~]*")  # printable ASCII


def _check_trace_context(value: Any, argument: str = "trace_context") -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise _bad(argument, value, "must be a dict of propagation headers (str to str)")
    result = dict(value)
    size = 0
    for key, item in result.items():
        if not isinstance(key, str) or not _HEADER_NAME.fullmatch(key) \
                or not isinstance(item, str) or not _HEADER_VALUE.fullmatch(item):
            raise _bad(argument, value, "must map header names to printable ASCII str values")
        size += len(key) + len(item)
    if len(result) > 32 or size > MAX_TRACE_CONTEXT_BYTES:
        raise _bad(argument, value, f"holds more than 32 entries or {MAX_TRACE_CONTEXT_BYTES:,} "
                   "bytes")
    return result


@dataclass(frozen=True, slots=True)
class Option:
    """How one job option behaves; see the module docstring."""

    name: str
    doc: str
    check: Callable[[Any, str], Any]
    """Validates a value given by a user and returns it normalised (``None`` means unset
    and is never checked)."""
    stored: Callable[[Any, str], Any]
    """Validates the resolved value as an envelope or a row carries it."""
    default: Any = None
    """The value when neither call, definition nor app sets one."""
    config: str | None = None
    """The ``Config`` field holding the app-wide default (env ``JOBMASTER_<FIELD>``)."""
    at_enqueue: Callable[[Any, float], Any] | None = None
    """Turns the resolved value into what the envelope carries, given the enqueue time."""
    column: str | None = None
    """The ``jobmaster_jobs`` column storing it (``None``: travels in the envelope only)."""
    sql: str = "double"
    """The column's kind: ``string``, ``smallint``, ``integer``, ``double``, ``json`` or
    ``timestamp``."""
    nullable: bool = True
    merge: bool = False
    """Dict options merge levels (the call's keys over the definition's) instead of
    replacing them."""


def option(doc: str, check: Callable[[Any, str], Any], *,
           stored: Callable[[Any, str], Any] | None = None, **spec: Any) -> Any:
    """A ``JobOptions`` field: ``None`` (unset) by default, described by an ``Option``."""
    return field(default=None, metadata={"option": (doc, check, stored or check, spec)})


def _optional(check: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    def checked(value: Any, argument: str) -> Any:
        return None if value is None else check(value, argument)

    return checked


@dataclass(frozen=True, slots=True)
class JobOptions:
    """A job's options. ``None`` means "not set at this level": a definition's options
    leave unset what the app decides, a call's what the definition decides. In an envelope
    every option is resolved (``timeout``, ``expires`` and ``agent`` may stay ``None``)."""

    lane: str | None = option(
        "Lane (queue) of the job: workers serve lanes.", check_lane,
        config="default_lane", column="lane", sql="string", nullable=False)
    priority: int | None = option(
        "Priority within the lane: VERY_LOW, LOW, MEDIUM, HIGH, CRITICAL (0-4).",
        check_priority, default=int(Priority.MEDIUM), column="priority", sql="smallint",
        nullable=False)
    timeout: float | None = option(
        "Hard time limit of one run, in seconds; the run is stopped after it.",
        _check_timeout, stored=_optional(_check_timeout), config="default_timeout",
        column="timeout")
    max_retries: int | None = option(
        "How many times a failed run is retried.", _check_retries,
        config="default_max_retries", column="max_retries", sql="integer", nullable=False)
    retry_delay: float | None = option(
        "Seconds before the first retry.", _check_delay, config="default_retry_delay",
        column="retry_delay", nullable=False)
    retry_backoff: float | None = option(
        "Each retry waits this many times longer than the one before.", _check_backoff,
        config="default_retry_backoff", column="retry_backoff", nullable=False)
    retry_backoff_max: float | None = option(
        "The longest wait before a retry, in seconds, however far backoff grows it.",
        _check_backoff_max, stored=_optional(_check_backoff_max), column="retry_backoff_max")
    retry_jitter: float | None = option(
        "Each retry waits up to this fraction longer, at random (default: the app's "
        "retry_jitter).", _check_jitter, stored=_optional(_check_jitter),
        column="retry_jitter")
    metadata: dict[str, Any] | None = option(
        "Queryable labels: str keys to str, int, float, bool or None.", check_metadata,
        default={}, column="meta", sql="json", nullable=False, merge=True)
    agent: str | None = option(
        "Name of the agent that carries the job (default: the lane's route, else the app's "
        "default agent).", _check_agent, stored=_optional(_check_agent), column="agent",
        sql="string")
    expires: float | datetime | None = option(
        "Not started by then — seconds after enqueue, or a datetime — the job is cancelled "
        "(reason: expired) and never runs.", _check_expires,
        stored=_optional(_check_timestamp), at_enqueue=_expires_at, column="expires_at",
        sql="timestamp")
    trace_context: dict[str, str] | None = option(
        "Trace propagation headers (W3C traceparent...), set by tracing middleware so the "
        "run continues the producer's trace.", _check_trace_context,
        stored=_optional(_check_trace_context))

    @classmethod
    def build(cls, values: Mapping[str, Any] | None = None, /, *, prefix: str = "",
              **given: Any) -> JobOptions:
        """Options from user input, each checked (``InvalidOptionError`` names the first
        bad one); ``None`` values stay unset. Unknown names are refused."""
        merged = {**(values or {}), **given}
        unknown = set(merged) - _NAMES
        if unknown:
            raise InvalidOptionError(
                f"unknown job option(s) {sorted(unknown)}; job options are "
                f"{', '.join(sorted(_NAMES))}")
        checked = {name: OPTIONS[name].check(value, prefix + name)
                   for name, value in merged.items() if value is not None}
        return cls(**checked) if checked else NO_OPTIONS

    @classmethod
    def from_stored(cls, values: Mapping[str, Any], *, argument: str = "") -> JobOptions:
        """Resolved options read back from an envelope header or a row, each checked as
        strictly as at enqueue (``InvalidOptionError`` otherwise).

        Jobs of one definition carry the same options, so a combination checked once is
        remembered (by value and type) and shared: options are immutable."""
        try:
            scalars = tuple(map(values.get, _SCALARS))
            key: tuple[Any, ...] = (scalars, tuple(map(type, scalars)))
            metadata = values.get("metadata")
            if type(metadata) is dict and not metadata:
                cached = _STORED.get(key)
                if cached is not None:
                    return cached
            else:
                key = ()
            hash(key)
        except TypeError:  # an unhashable value where a scalar belongs: checked below
            key = ()
        options = cls._check_stored(values, argument)
        if key:
            if len(_STORED) >= 4096:
                _STORED.clear()
            _STORED[key] = options
        return options

    @classmethod
    def _check_stored(cls, values: Mapping[str, Any], argument: str) -> JobOptions:
        checked: dict[str, Any] = {}
        for spec in OPTIONS.values():
            value = values.get(spec.name)
            if value is None:
                if not spec.nullable:
                    raise InvalidOptionError(f"{argument}{spec.name} is missing")
                checked[spec.name] = None
            else:
                checked[spec.name] = spec.stored(value, argument + spec.name)
        return cls(**checked)

    def items(self) -> Iterator[tuple[str, Any]]:
        """``(name, value)`` of every option, set or not."""
        for name in OPTIONS:
            yield name, getattr(self, name)

    def given(self) -> dict[str, Any]:
        """The options set at this level."""
        return {name: value for name, value in self.items() if value is not None}

    def over(self, base: JobOptions) -> JobOptions:
        """These options where set, ``base``'s elsewhere (dict options merged)."""
        if self is NO_OPTIONS:
            return base
        values = {}
        for name, spec in OPTIONS.items():
            mine, theirs = getattr(self, name), getattr(base, name)
            if mine is None:
                values[name] = theirs
            elif spec.merge and theirs:
                values[name] = {**theirs, **mine}
            else:
                values[name] = mine
        return JobOptions(**values)

    def resolved(self, defaults: Mapping[str, Any], now: float) -> JobOptions:
        """Every option filled: these, else ``defaults`` (the app's, by option name), else
        the built-in default; then made absolute for an enqueue at ``now``."""
        values = {}
        for name, spec in OPTIONS.items():
            value = getattr(self, name)
            if value is None:
                value = defaults.get(name, spec.default)
                if isinstance(value, dict):
                    value = dict(value)
            if value is not None and spec.at_enqueue is not None:
                value = spec.at_enqueue(value, now)
            values[name] = value
        return JobOptions(**values)

    def needs_enqueue_time(self) -> bool:
        """Whether resolving depends on when the job is enqueued (``expires``...)."""
        return any(getattr(self, name) is not None for name in _AT_ENQUEUE)


def _specs() -> dict[str, Option]:
    result = {}
    for f in dataclasses.fields(JobOptions):
        doc, check, stored, spec = f.metadata["option"]
        result[f.name] = Option(f.name, doc, check, stored, **spec)
    return result


OPTIONS: dict[str, Option] = _specs()
"""Every job option by name, in declaration order."""
_NAMES = frozenset(OPTIONS)
_AT_ENQUEUE = tuple(name for name, spec in OPTIONS.items() if spec.at_enqueue is not None)
OPTION_NAMES = tuple(OPTIONS)
"""Every option's name, in declaration order."""
option_values: Callable[[JobOptions], tuple[Any, ...]] = operator.attrgetter(*OPTIONS)
"""Every option's value of a ``JobOptions``, in declaration order (fast)."""
_SCALARS = tuple(name for name, spec in OPTIONS.items() if spec.sql != "json")
_STORED: dict[tuple[Any, ...], JobOptions] = {}
NO_OPTIONS = JobOptions()
"""Options with nothing set."""


def app_defaults(config: Any) -> dict[str, Any]:
    """The app-wide defaults of a ``Config``, by option name."""
    return {name: getattr(config, spec.config) for name, spec in OPTIONS.items()
            if spec.config is not None}
