"""``app.jobs``: look up, list, cancel and retry jobs recorded in the master."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from jobmaster.exceptions import JobmasterError, JobNotFoundError
from jobmaster.master.rows import envelope_from_row, job_from_row
from jobmaster.models import Job, JobStatus

if TYPE_CHECKING:
    from jobmaster.app import App
    from jobmaster.definitions import JobHandle


class JobsAPI:
    """Operations on recorded jobs of one app's cluster."""

    def __init__(self, app: App) -> None:
        self._app = app

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
        self._app.flush()
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
        if self._app._is_pending(job_id):
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
        metadata values."""
        self._app.flush()
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
        self._app.flush()
        return self._app.master.count_jobs(cluster=self._app.name)

    def cancel(self, job_id: str) -> JobStatus:
        """Cancel a job that has not finished: a queued or scheduled job never runs, a
        running one is asked to stop (``ctx.should_stop()``). Returns the status after."""
        self._app.flush()
        value = self._app.master.cancel_job(job_id)
        if value is None:
            raise JobNotFoundError(f"no job {job_id!r} in the master of cluster "
                                   f"{self._app.name!r}")
        return JobStatus(value)

    def retry(self, job_id: str) -> JobHandle[Any]:
        """Run a finished job (failed, cancelled or succeeded) again now, with a fresh retry
        budget; its attempt count and error history are kept."""
        from jobmaster.definitions import JobHandle

        self._app.flush()
        current = self.get(job_id)
        if not current.status.is_final:
            raise JobmasterError(
                f"job {job_id} is {current.status}, not finished; only succeeded, failed or "
                "cancelled jobs can be retried"
            )
        due = time.time()
        from jobmaster.master.repository import from_timestamp

        row = self._app.master.requeue_job(job_id, due=from_timestamp(due))  # type: ignore[arg-type]
        assert row is not None
        env = envelope_from_row(row)
        self._app._push([env])
        return JobHandle(self._app, job_id, current.definition_id)
