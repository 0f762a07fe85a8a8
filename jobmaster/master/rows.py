"""Conversions between envelopes, master rows and ``Job`` records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from jobmaster.envelope import Envelope, EnvelopeError
from jobmaster.exceptions import InvalidOptionError
from jobmaster.master.timestamps import from_timestamp
from jobmaster.models import Job, JobError, JobEvent, JobStatus, Priority
from jobmaster.options import OPTIONS, JobOptions, option_values
from jobmaster.serialization import Serializer


def option_columns(options: JobOptions) -> dict[str, Any]:
    """The master columns of a job's resolved options (remembered per options object:
    jobs of one definition share theirs)."""
    cached = _COLUMNS_OF.get(id(options))
    if cached is not None and cached[0] is options:
        return cached[1]
    values: dict[str, Any] = {}
    for (column, stamp), value in zip(_COLUMNS, option_values(options), strict=True):
        if column is not None:
            values[column] = from_timestamp(value) if stamp else value
    if len(_COLUMNS_OF) >= 1024:
        _COLUMNS_OF.clear()
    _COLUMNS_OF[id(options)] = (options, values)
    return values


_COLUMNS = [(spec.column, spec.sql == "timestamp") for spec in OPTIONS.values()]
_COLUMNS_OF: dict[int, tuple[JobOptions, dict[str, Any]]] = {}


def options_from_row(row: Mapping[Any, Any]) -> JobOptions:
    """The resolved options stored in a job row, checked as strictly as at enqueue
    (``InvalidOptionError`` names the bad column)."""
    values: dict[str, Any] = {}
    for name, spec in OPTIONS.items():
        if spec.column is not None:
            value = row[spec.column]
            if spec.sql == "timestamp" and isinstance(value, datetime):
                value = value.timestamp()
            values[name] = value
    return JobOptions.from_stored(values, argument="stored ")


def job_row(env: Envelope, status: JobStatus, now: datetime) -> dict[str, Any]:
    """A full ``jobmaster_jobs`` row for an envelope, as first recorded."""
    row = {
        "id": env.id,
        "cluster": env.cluster,
        "definition_id": env.definition_id,
        "status": status.value,
        "encoding": env.encoding,
        "payload": env.payload,
        "job_key": env.job_key,
        "attempts": 0,
        "created_at": from_timestamp(env.created_at),
        "scheduled_at": from_timestamp(env.due),
        "started_at": None,
        "finished_at": None,
        "updated_at": now,
        "worker": None,
        "error_type": None,
        "error_message": None,
        "error_traceback": None,
        "result": None,
        "progress": None,
        "progress_message": None,
        "schedule_name": env.schedule_name,
        "occurrence": from_timestamp(env.occurrence),
    }
    row.update(option_columns(env.options))
    return row


def envelope_from_row(row: Mapping[Any, Any], *, attempt: int = 1) -> Envelope:
    """The envelope that runs a recorded job (promotion, manual retry). A row that does
    not make a well-formed envelope raises ``EnvelopeError`` naming the bad field."""
    try:
        options = options_from_row(row)
        occurrence = row["occurrence"]
        header = {
            "id": row["id"], "cluster": row["cluster"], "definition_id": row["definition_id"],
            "encoding": row["encoding"], "created_at": row["created_at"].timestamp(),
            "due": (row["scheduled_at"] or row["created_at"]).timestamp(),
            "attempt": attempt, "job_key": row["job_key"],
            "schedule_name": row["schedule_name"],
            "occurrence": None if occurrence is None else occurrence.timestamp(),
            **dict(options.items()),
        }
        return Envelope.from_header(header, bytes(row["payload"]))
    except (InvalidOptionError, EnvelopeError, AttributeError, TypeError, KeyError) as exc:
        raise EnvelopeError(f"job row {row.get('id')!r} is not runnable: {exc}") from None


def job_from_row(
    row: Mapping[Any, Any],
    serializers: Mapping[str, Serializer],
    errors: Sequence[Mapping[Any, Any]] = (),
) -> Job[Any]:
    """A ``Job`` record from its row, arguments and result decoded where possible."""
    serializer = serializers.get(row["encoding"])
    kwargs: dict[str, Any] | None = None
    result: Any = None
    if serializer is not None:
        try:
            kwargs = serializer.loads(bytes(row["payload"]))
        except Exception:  # noqa: BLE001 - a record stays readable even if its payload is not
            kwargs = None
        if row["result"] is not None:
            try:
                result = serializer.loads(bytes(row["result"]))
            except Exception:  # noqa: BLE001
                result = None
    error = None
    if row["error_type"] is not None:
        error = JobError(row["error_type"], row["error_message"] or "",
                         row["error_traceback"] or "")
    return Job(
        id=row["id"],
        cluster=row["cluster"],
        definition_id=row["definition_id"],
        lane=row["lane"],
        priority=_priority(row["priority"]),
        status=JobStatus(row["status"]),
        kwargs=kwargs,
        metadata=dict(row["meta"] or {}),
        attempts=int(row["attempts"]),
        max_retries=int(row["max_retries"]),
        timeout=row["timeout"],
        job_key=row["job_key"],
        options=_options(row),
        created_at=row["created_at"],
        scheduled_at=row["scheduled_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        worker=row["worker"],
        result=result,
        error=error,
        progress=row["progress"],
        progress_message=row["progress_message"],
        schedule_name=row["schedule_name"],
        occurrence=row["occurrence"],
        errors=tuple(
            JobError(e["error_type"] or "", e["error_message"] or "", e["error_traceback"] or "")
            for e in errors
        ),
    )


def _priority(value: Any) -> Priority | int:
    try:
        return Priority(int(value))
    except (TypeError, ValueError):
        return -1  # a record stays readable even if a stored value is not


def _options(row: Mapping[Any, Any]) -> JobOptions:
    try:
        return options_from_row(row)
    except InvalidOptionError:
        return JobOptions()  # a record stays readable even if a stored value is not


def event_from_row(row: Mapping[Any, Any]) -> JobEvent:
    """An audit-trail entry from its ``jobmaster_events`` row (a status this version does
    not know is kept as its text)."""
    error = None
    if row["error_type"] is not None:
        error = JobError(row["error_type"], row["error_message"] or "")
    try:
        status: Any = JobStatus(row["status"])
    except ValueError:
        status = row["status"]
    return JobEvent(status, row["at"], int(row["attempt"]), row["worker"], error, row["reason"])
