"""Conversions between envelopes, master rows and ``Job`` records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from jobmaster.envelope import Envelope
from jobmaster.master.repository import from_timestamp
from jobmaster.models import Job, JobError, JobStatus, Priority
from jobmaster.serialization import Serializer


def job_row(env: Envelope, status: JobStatus, now: datetime) -> dict[str, Any]:
    """A full ``jobmaster_jobs`` row for an envelope, as first recorded."""
    return {
        "id": env.id,
        "cluster": env.cluster,
        "definition_id": env.definition_id,
        "lane": env.lane,
        "priority": env.priority,
        "status": status.value,
        "agent": env.agent,
        "encoding": env.encoding,
        "payload": env.payload,
        "meta": env.metadata,
        "job_key": env.job_key,
        "attempts": 0,
        "max_retries": env.max_retries,
        "timeout": env.timeout,
        "retry_delay": env.retry_delay,
        "retry_backoff": env.retry_backoff,
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


def envelope_from_row(row: Mapping[Any, Any], *, attempt: int = 1) -> Envelope:
    """The envelope that runs a recorded job (promotion, manual retry)."""
    occurrence = row["occurrence"]
    return Envelope(
        id=row["id"],
        cluster=row["cluster"],
        definition_id=row["definition_id"],
        lane=row["lane"],
        priority=int(row["priority"]),
        encoding=row["encoding"],
        payload=bytes(row["payload"]),
        created_at=row["created_at"].timestamp(),
        due=(row["scheduled_at"] or row["created_at"]).timestamp(),
        attempt=attempt,
        max_retries=int(row["max_retries"]),
        timeout=row["timeout"],
        retry_delay=float(row["retry_delay"]),
        retry_backoff=float(row["retry_backoff"]),
        metadata=dict(row["meta"] or {}),
        job_key=row["job_key"],
        agent=row["agent"] or "main",
        schedule_name=row["schedule_name"],
        occurrence=None if occurrence is None else occurrence.timestamp(),
    )


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
        priority=Priority(int(row["priority"])),
        status=JobStatus(row["status"]),
        kwargs=kwargs,
        metadata=dict(row["meta"] or {}),
        attempts=int(row["attempts"]),
        max_retries=int(row["max_retries"]),
        timeout=row["timeout"],
        job_key=row["job_key"],
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
