"""``app.jobs``: look up, list, cancel and retry jobs recorded in the master; and
``JobHandle``, a job that was enqueued."""

from __future__ import annotations

import time
import typing
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Generic, Protocol, TypeVar

from jobmaster.exceptions import JobFailedError, JobmasterError, JobNotFoundError, JobTimeoutError
from jobmaster.host import AppResources
from jobmaster.master.repository import from_timestamp
from jobmaster.master.rows import envelope_from_row, job_from_row
from jobmaster.models import Job, JobStatus
from jobmaster.producer import Producer

R = TypeVar("R")


class JobsHost(AppResources, Protocol):
    """What ``app.jobs`` needs from its app."""

    @property
    def producer(self) -> Producer: ...


class JobHandle(Generic[R]):
    """A job that was enqueued: its id, and ways to follow it in the master of the
    cluster it was sent to."""

    __slots__ = ("_jobs", "definition_id", "id")

    def __init__(self, jobs: JobsAPI, job_id: str, definition_id: str) -> None:
        self._jobs = jobs
        self.id = job_id
        self.definition_id = definition_id

    def __repr__(self) -> str:
        return f"<JobHandle {self.definition_id} {self.id}>"

    def status(self) -> JobStatus:
        """The job's current status (``queued`` while the master has not heard of it yet)."""
        return self._jobs.status(self.id)

    def get(self) -> Job[R]:
        """The job's record in the master, as it is now."""
        return typing.cast(Job[R], self._jobs.get(self.id))

    def wait(self, timeout: float | timedelta | None = None, *, interval: float = 0.05) -> Job[R]:
        """Block until the job succeeded, failed or was cancelled; return its record.

        Raises ``JobTimeoutError`` if that takes longer than ``timeout`` seconds."""
        limit = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        deadline = None if limit is None else time.monotonic() + limit
        self._jobs.flush()
        pause = min(interval, 0.01)
        while True:
            job = self._jobs.find(self.id)
            if job is not None and job.status.is_final:
                return typing.cast(Job[R], job)
            if deadline is not None and time.monotonic() >= deadline:
                status = "unknown to the master" if job is None else job.status.value
                raise JobTimeoutError(
                    f"job {self.id} ({self.definition_id}) is still {status} after "
                    f"{limit:g} s; is a worker running for its lane?"
                )
            time.sleep(pause)
            pause = min(pause * 2, interval)

    def result(self, timeout: float | timedelta | None = None) -> R:
        """Wait for the job and return its result; raise ``JobFailedError`` if it did not
        succeed."""
        job = self.wait(timeout)
        if job.status is not JobStatus.SUCCEEDED:
            detail = f": {job.error.type}: {job.error.message}" if job.error else ""
            raise JobFailedError(f"job {self.id} ({self.definition_id}) {job.status}{detail}",
                                 job=job)
        return typing.cast(R, job.result)

    def cancel(self) -> JobStatus:
        """Cancel the job unless it already finished; return its status afterwards."""
        return self._jobs.cancel(self.id)


class JobsAPI:
    """Operations on recorded jobs of one app's cluster."""

    def __init__(self, app: JobsHost) -> None:
        self._app = app

    def handle(self, job_id: str, definition_id: str = "") -> JobHandle[Any]:
        """A handle to follow a job of this cluster by id."""
        return JobHandle(self, job_id, definition_id)

    def flush(self) -> None:
        """Write what this process enqueued to the master now (see ``Producer.flush``)."""
        self._app.producer.flush()

    def find(self, job_id: str) -> Job[Any] | None:
        """The job's record, or ``None`` if the master does not hold it (yet)."""
        row = self._app.master.get_job(job_id)
        if row is None:
            return None
        detailed = row["error_type"] or row["status"] in ("succeeded", "failed", "cancelled")
        errors = self._app.master.job_errors(job_id) if detailed else []
        return job_from_row(row, self._app.serializers, errors)

    def get(self, job_id: str) -> Job[Any]:
        """The job's record; ``JobNotFoundError`` if there is no such job."""
        self.flush()
        job = self.find(job_id)
        if job is None:
            raise JobNotFoundError(f"no job {job_id!r} in the master of cluster "
                                   f"{self._app.name!r}")
        return job

    def status(self, job_id: str) -> JobStatus:
        """The job's status; ``queued`` for a job this process pushed but has not yet
        written to the master."""
        value = self._app.master.job_status(job_id)
        if value is not None:
            return JobStatus(value)
        if self._app.producer.is_pending(job_id):
            return JobStatus.QUEUED
        raise JobNotFoundError(f"no job {job_id!r} in the master of cluster {self._app.name!r}")

    def list(
        self,
        *,
        status: JobStatus | str | Sequence[JobStatus | str] | None = None,
        definition_id: str | None = None,
        lane: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Job[Any]]:
        """Jobs of this cluster, newest first, filtered by status, definition id, lane and
        metadata values. A metadata value matches only a stored value of the same JSON type
        (``1`` never matches ``"1"`` or ``true``); ``None`` matches a JSON null or a job
        without that key."""
        self.flush()
        if status is None:
            statuses = None
        elif isinstance(status, str | JobStatus):
            statuses = [JobStatus(status).value]
        else:
            statuses = [JobStatus(s).value for s in status]
        rows = self._app.master.list_jobs(
            cluster=self._app.name, status=statuses, definition_id=definition_id, lane=lane,
            metadata=metadata, limit=limit, offset=offset,
        )
        return [job_from_row(r, self._app.serializers) for r in rows]

    def counts(self) -> dict[str, int]:
        """How many jobs of this cluster are in each status."""
        self.flush()
        return self._app.master.count_jobs(cluster=self._app.name)

    def cancel(self, job_id: str) -> JobStatus:
        """Cancel a job that has not finished: a queued or scheduled job never runs, a
        running one is asked to stop (``ctx.should_stop()``). Returns the status after."""
        self.flush()
        value = self._app.master.cancel_job(job_id)
        if value is None:
            raise JobNotFoundError(f"no job {job_id!r} in the master of cluster "
                                   f"{self._app.name!r}")
        return JobStatus(value)

    def retry(self, job_id: str) -> JobHandle[Any]:
        """Run a finished job (failed, cancelled or succeeded) again now, with a fresh retry
        budget; its attempt count and error history are kept."""
        current = self.get(job_id)
        if not current.status.is_final:
            raise JobmasterError(
                f"job {job_id} is {current.status}, not finished; only succeeded, failed or "
                "cancelled jobs can be retried"
            )
        row = self._app.master.requeue_job(job_id, due=from_timestamp(time.time()))  # type: ignore[arg-type]
        if row is None:
            raise JobNotFoundError(f"job {job_id!r} disappeared from the master")
        self._app.producer.push([envelope_from_row(row)])
        return JobHandle(self, job_id, current.definition_id)
