"""The options record: every job option once, checked at every level, resolved once."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobmaster import App, ConfigurationError, InvalidOptionError
from jobmaster.config import Config
from jobmaster.envelope import Envelope, EnvelopeError
from jobmaster.master.rows import envelope_from_row, job_row
from jobmaster.master.schema import jobs
from jobmaster.models import JobStatus
from jobmaster.options import MAX_SECONDS, NO_OPTIONS, OPTIONS, JobOptions, app_defaults


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"retry_backoff": math.nan}, "retry_backoff=nan"),
        ({"retry_backoff": math.inf}, "retry_backoff=inf"),
        ({"retry_backoff": 0.5}, "retry_backoff=0.5"),
        ({"retry_delay": math.inf}, "retry_delay=inf"),
        ({"retry_delay": 1e300}, "retry_delay=1e+300"),
        ({"timeout": 1e300}, "timeout=1e+300"),
        ({"timeout": math.nan}, "timeout=nan"),
        ({"max_retries": 2**31}, "max_retries=2147483648"),
        ({"max_retries": True}, "max_retries=True"),
        ({"metadata": {"m": math.nan}}, "metadata['m']=nan"),
        ({"metadata": {"m": math.inf}}, "metadata['m']=inf"),
        ({"metadata": {"m": 2**64}}, "does not fit a 64-bit integer"),
        ({"metadata": {"m": "a\x00b"}}, "NUL"),
        ({"metadata": {"m": "x" * 20_000}}, "metadata may be at most"),
        ({"metadata": {"bad\nkey": 1}}, "metadata keys"),
        ({"lane": "default\n"}, "lane='default\\n'"),
        ({"lane": "a" * 101}, "is not a lane name"),
        ({"priority": 7}, "priority=7"),
        ({"agent": ""}, "agent=''"),
        ({"expires": -1}, "expires=-1"),
        ({"expires": math.inf}, "expires=inf"),
        ({"expires": datetime(10000 - 1, 12, 31, 23, 59, 59, tzinfo=UTC) + timedelta(0)},
         "between 1970 and 9999"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_bad_values_are_refused_naming_the_option(values: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidOptionError) as info:
        JobOptions.build(values)
    assert named in str(info.value)


def test_unknown_option_is_refused_with_the_list() -> None:
    with pytest.raises(InvalidOptionError, match="unknown job option.*'timeot'.*timeout"):
        JobOptions.build({"timeot": 3})


def test_values_are_normalised() -> None:
    options = JobOptions.build(timeout=timedelta(minutes=1), priority="high", retry_backoff=2)
    assert options.timeout == 60.0 and options.priority == 3 and options.retry_backoff == 2.0
    assert JobOptions.build() is NO_OPTIONS and JobOptions.build(timeout=None) is NO_OPTIONS


def test_duration_limit_is_ten_years() -> None:
    assert JobOptions.build(timeout=MAX_SECONDS).timeout == MAX_SECONDS
    with pytest.raises(InvalidOptionError):
        JobOptions.build(timeout=MAX_SECONDS * 1.01)


def test_call_over_definition_over_app_defaults() -> None:
    definition = JobOptions.build(lane="mail", timeout=30, metadata={"a": 1, "b": 2})
    call = JobOptions.build(timeout=5, metadata={"b": 3})
    config = Config(default_max_retries=4, default_retry_delay=1.5)
    resolved = call.over(definition).resolved(app_defaults(config), now=1000.0)
    assert resolved.lane == "mail" and resolved.timeout == 5.0
    assert resolved.metadata == {"a": 1, "b": 3}  # merged, the call's keys win
    assert resolved.max_retries == 4 and resolved.retry_delay == 1.5
    assert resolved.priority == 2 and resolved.expires is None


def test_expires_becomes_an_absolute_time_at_enqueue() -> None:
    relative = JobOptions.build(expires=60).resolved({}, now=1000.0)
    assert relative.expires == 1060.0
    when = datetime(2030, 1, 1, tzinfo=UTC)
    assert JobOptions.build(expires=when).resolved({}, now=1000.0).expires == when.timestamp()
    naive = datetime(2030, 1, 1)  # naive = UTC
    assert JobOptions.build(expires=naive).resolved({}, now=0.0).expires == when.timestamp()
    assert JobOptions.build(expires=60).needs_enqueue_time()


def test_app_defaults_are_checked_like_options() -> None:
    with pytest.raises(ConfigurationError, match="default_retry_backoff=nan"):
        Config(default_retry_backoff=math.nan)
    with pytest.raises(ConfigurationError, match="default_lane=.a b."):
        App("x", master="sqlite:///:memory:", default_lane="a b")


def test_app_defaults_come_from_the_environment() -> None:
    app = App("x", master="sqlite:///:memory:", environ={"JOBMASTER_DEFAULT_TIMEOUT": "12.5"})
    assert app_defaults(app.config)["timeout"] == 12.5
    with pytest.raises(Exception, match="JOBMASTER_DEFAULT_MAX_RETRIES"):
        App("x", master="sqlite:///:memory:",
            environ={"JOBMASTER_DEFAULT_MAX_RETRIES": "99999999999"})


def test_every_stored_option_has_its_column() -> None:
    for spec in OPTIONS.values():
        if spec.column is not None:
            column = jobs.c[spec.column]
            assert column.nullable == spec.nullable, spec.name


def test_every_option_travels_in_the_envelope_and_the_row() -> None:
    """One field in JobOptions reaches the wire and the master with nothing else to edit."""
    options = JobOptions.build(lane="l", priority=4, timeout=3, max_retries=2, retry_delay=1,
                               retry_backoff=3, retry_backoff_max=60, retry_jitter=0.5,
                               metadata={"k": "v"}, agent="main",
                               expires=datetime(2030, 1, 1, tzinfo=UTC),
                               trace_context={"traceparent": "00-" + "1" * 32 + "-"
                                              + "2" * 16 + "-01"}).resolved({}, 0.0)
    assert all(value is not None for _, value in options.items())
    env = Envelope(id="j", cluster="c", definition_id="d", encoding="json", payload=b"{}",
                   created_at=1.0, due=2.0, options=options)
    assert Envelope.from_bytes(env.to_bytes()).options == options
    row = job_row(env, JobStatus.QUEUED, datetime.now(UTC))
    envelope_only = {n: None for n, spec in OPTIONS.items() if spec.column is None}
    assert envelope_only  # trace_context travels with the job but is not stored
    assert envelope_from_row(row).options == dataclasses.replace(options, **envelope_only)
    assert {f.name for f in dataclasses.fields(JobOptions)} == set(OPTIONS)


def test_a_stored_row_with_a_bad_option_is_not_runnable() -> None:
    env = Envelope.from_fields(id="j", cluster="c", definition_id="d", encoding="json",
                               payload=b"{}", created_at=1.0, due=2.0)
    row = job_row(env, JobStatus.SCHEDULED, datetime.now(UTC))
    row["priority"] = "high-ish"
    with pytest.raises(EnvelopeError, match="priority"):
        envelope_from_row(row)
