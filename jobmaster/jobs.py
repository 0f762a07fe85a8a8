"""``app.jobs``: look up, list, cancel and retry jobs recorded in the master; and
``JobHandle``, a job that was enqueued."""

from __future__ import annotations

import base64
import binascii
import time
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from jobmaster.exceptions import (
    InvalidOptionError,
    JobFailedError,
    JobmasterError,
    JobNotFoundError,
    JobTimeoutError,
)
from jobmaster.host import AppResources
from jobmaster.master.timestamps import from_timestamp
from jobmaster.models import Job, JobEvent, JobStatus
from jobmaster.options import check_priority
from jobmaster.priority import Priority
from jobmaster.producer import Producer

R = TypeVar("R")


MAX_PAGE = 10_000
"""The largest ``limit`` of one ``app.jobs.list`` page."""


class JobPage(list[Job[Any]]):
    """One page of ``app.jobs.list``: a list of jobs (newest first), and ``next_cursor``,
    the cursor of the next page (``None`` when this is the last one)."""

    def __init__(self, items: Iterable[Job[Any]] = (), next_cursor: str | None = None) -> None:
        super().__init__(items)
        self.next_cursor = next_cursor

    @property
    def items(self) -> list[Job[Any]]:
        """The jobs of this page, as a plain list."""
        return list(self)

    def __repr__(self) -> str:
        return f"JobPage({list.__repr__(self)}, next_cursor={self.next_cursor!r})"


class JobCount(int):
    """A number of jobs; ``exact`` is ``False`` when it is the database's estimate."""

    exact: bool

    def __new__(cls, value: int, exact: bool = True) -> JobCount:
        count = super().__new__(cls, value)
        count.exact = exact
        return count

    def __repr__(self) -> str:
        return f"{int(self)}" if self.exact else f"~{int(self)}"


def encode_cursor(created_at: datetime, job_id: str) -> str:
    """An opaque cursor for the jobs after (older than) ``(created_at, job_id)``."""
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    raw = f"1:{micros}:{job_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The ``(created_at, id)`` a cursor from ``encode_cursor`` holds; ``InvalidOptionError``
    if it is not one."""
    try:
        text = cursor.strip()
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        version, micros, job_id = raw.split(":", 2)
        if version != "1" or not job_id or not micros.lstrip("-").isdigit():
            raise ValueError(raw)
        return _EPOCH + timedelta(microseconds=int(micros)), job_id
    except (ValueError, TypeError, AttributeError, OverflowError, binascii.Error):
        raise InvalidOptionError(
            f"cursor={cursor!r} is not a cursor from app.jobs.list (pass a page's "
            "next_cursor unchanged)") from None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _moment(value: datetime | float | None, name: str) -> datetime | None:
    """An aware UTC datetime from a datetime (naive = UTC) or a Unix time."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (ValueError, OverflowError, OSError):
            pass
    raise InvalidOptionError(f"{name}={value!r} must be a datetime or a Unix time")


class JobsHost(AppResources, Protocol):
    """What ``app.jobs`` needs from its app."""

    @property
    def producer(self) -> Producer: ...


CELERY_STATES = {
    JobStatus.SCHEDULED: "PENDING", JobStatus.QUEUED: "PENDING", JobStatus.RUNNING: "STARTED",
    JobStatus.RETRYING: "RETRY", JobStatus.SUCCEEDED: "SUCCESS", JobStatus.FAILED: "FAILURE",
    JobStatus.CANCELLED: "REVOKED",
}
"""A job status → the name Celery gives that state."""


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

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobHandle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def status(self) -> JobStatus:
        """The job's current status (``queued`` while the master has not heard of it yet)."""
        return self._jobs.status(self.id)

    def record(self) -> Job[R]:
        """The job's record in the master, as it is now."""
        return typing.cast(Job[R], self._jobs.get(self.id))

    def get(self, timeout: float | timedelta | None = None, propagate: bool = True, *,
            interval: float = 0.05) -> Any:
        """Celery's ``AsyncResult.get``: wait for the job and return its result. If it
        failed or was cancelled, raise ``JobFailedError`` (carrying the job and its error),
        or with ``propagate=False`` return the error (a ``JobError``, ``None`` for a job
        cancelled without one). ``JobTimeoutError`` after ``timeout`` seconds."""
        job = self.wait(timeout, interval=interval)
        if job.status is JobStatus.SUCCEEDED:
            return job.result
        if propagate:
            detail = f": {job.error.type}: {job.error.message}" if job.error else ""
            raise JobFailedError(f"job {self.id} ({self.definition_id}) {job.status}{detail}",
                                 job=job)
        return job.error

    @property
    def state(self) -> str:
        """The status under Celery's state names: ``PENDING`` (scheduled or queued),
        ``STARTED``, ``RETRY``, ``SUCCESS``, ``FAILURE``, ``REVOKED`` (cancelled)."""
        return CELERY_STATES[self._jobs.status(self.id)]

    def ready(self) -> bool:
        """Whether the job has finished (succeeded, failed or was cancelled)."""
        return self._jobs.status(self.id).is_final

    def successful(self) -> bool:
        """Whether the job succeeded."""
        return self._jobs.status(self.id) is JobStatus.SUCCEEDED

    def failed(self) -> bool:
        """Whether the job failed (retries exhausted, or failed without retry)."""
        return self._jobs.status(self.id) is JobStatus.FAILED

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
        from jobmaster.master.rows import job_from_row  # with the master, on first use

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

    def history(self, job_id: str) -> list[JobEvent]:
        """The job's audit trail, oldest first: every status it entered, when, on which
        worker, in which attempt, with the error and the reason. ``JobNotFoundError`` if
        the master holds neither the job nor any of its history."""
        from jobmaster.master.rows import event_from_row  # with the master, on first use

        self.flush()
        rows = self._app.master.history(job_id)
        if not rows and self._app.master.job_status(job_id) is None:
            raise JobNotFoundError(f"no job {job_id!r} in the master of cluster "
                                   f"{self._app.name!r}")
        return [event_from_row(row) for row in rows]

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
        priority: Priority | int | str | None = None,
        metadata: Mapping[str, Any] | None = None,
        worker: str | None = None,
        created_after: datetime | float | None = None,
        created_before: datetime | float | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> JobPage:
        """One page of this cluster's jobs, newest first, filtered by status (one or
        several), definition id, lane, priority, worker, creation time
        (``created_after <= created_at < created_before``; aware datetimes, naive = UTC, or
        Unix times) and metadata values. A metadata value matches only a stored value of
        the same JSON type (``1`` never matches ``"1"`` or ``true``); ``None`` matches a
        JSON null or a job without that key.

        The page is a list of at most ``limit`` jobs; its ``next_cursor`` (``None`` on the
        last page), passed back as ``cursor=`` with the same filters, gives the next page.
        Paging is by keyset (the last job's creation time and id), so a deep page costs what
        the first does, and jobs enqueued while paging never repeat nor shift others."""
        filters = self._filters(status, definition_id, lane, priority, metadata, worker,
                                created_after, created_before)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise InvalidOptionError(f"limit={limit!r} must be an integer from 1 to {MAX_PAGE}")
        from jobmaster.master.rows import job_from_row  # with the master, on first use

        after = None if cursor is None else decode_cursor(cursor)
        self.flush()
        rows = self._app.master.list_jobs(cluster=self._app.name, after=after,
                                          limit=limit + 1, **filters)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
        return JobPage([job_from_row(r, self._app.serializers) for r in rows], next_cursor)

    def count(
        self,
        *,
        status: JobStatus | str | Sequence[JobStatus | str] | None = None,
        definition_id: str | None = None,
        lane: str | None = None,
        priority: Priority | int | str | None = None,
        metadata: Mapping[str, Any] | None = None,
        worker: str | None = None,
        created_after: datetime | float | None = None,
        created_before: datetime | float | None = None,
        exact: bool = True,
    ) -> JobCount:
        """How many jobs of this cluster match the filters of ``list`` (over all pages).

        ``exact=False`` bounds the time it takes on a large PostgreSQL master: a count that
        would take long (hundreds of thousands of matches no index narrows down) is
        answered with the database's estimate instead, and ``.exact`` on the result says
        which it is."""
        filters = self._filters(status, definition_id, lane, priority, metadata, worker,
                                created_after, created_before)
        self.flush()
        value, is_exact = self._app.master.count_matching_jobs(
            cluster=self._app.name, exact=exact, **filters)
        return JobCount(value, is_exact)

    @staticmethod
    def _filters(
        status: JobStatus | str | Sequence[JobStatus | str] | None,
        definition_id: str | None,
        lane: str | None,
        priority: Priority | int | str | None,
        metadata: Mapping[str, Any] | None,
        worker: str | None,
        created_after: datetime | float | None,
        created_before: datetime | float | None,
    ) -> dict[str, Any]:
        """The filters of ``list`` and ``count``, checked and in the master's terms."""
        statuses: list[str] | None
        if status is None:
            statuses = None
        else:
            values = [status] if isinstance(status, str | JobStatus) else list(status)
            statuses = []
            for value in values:
                try:
                    statuses.append(JobStatus(value).value)
                except ValueError:
                    raise InvalidOptionError(
                        f"status={value!r} is not a job status; use one of "
                        f"{', '.join(s.value for s in JobStatus)}") from None
        for name, text in (("definition_id", definition_id), ("lane", lane),
                           ("worker", worker)):
            if text is not None and not isinstance(text, str):
                raise InvalidOptionError(f"{name}={text!r} must be a string")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidOptionError(f"metadata={metadata!r} must be a mapping of key to value")
        return {
            "status": statuses, "definition_id": definition_id, "lane": lane,
            "priority": None if priority is None else check_priority(priority),
            "metadata": metadata, "worker": worker,
            "created_after": _moment(created_after, "created_after"),
            "created_before": _moment(created_before, "created_before"),
        }

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
        from jobmaster.master.rows import envelope_from_row  # with the master, on first use

        row = self._app.master.requeue_job(job_id, due=from_timestamp(time.time()))  # type: ignore[arg-type]
        if row is None:
            raise JobNotFoundError(f"job {job_id!r} disappeared from the master")
        self._app.producer.push([envelope_from_row(row)])
        return JobHandle(self, job_id, current.definition_id)

    def purge(
        self,
        *,
        status: JobStatus | str | Sequence[JobStatus | str] | None = None,
        before: datetime | float | timedelta | None = None,
        definition_id: str | None = None,
        force: bool = False,
        dry_run: bool = False,
        batch_size: int = 1000,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Delete jobs of this cluster from the master for good, with their attempt
        history, in batches of ``batch_size`` (one transaction each; ``on_batch(n)`` is
        called after each). Return how many were deleted (with ``dry_run``: would be).

        ``status``: one status or several; by default every finished one (succeeded,
        failed, cancelled). ``before``: an aware datetime (naive = UTC), a Unix time, or a
        ``timedelta`` age: only jobs that finished before then (unfinished ones: created
        before then). Unfinished statuses (scheduled, queued, running, retrying) are
        refused unless ``force=True``: a worker may be running such a job, and an agent
        still holds it."""
        if status is None:
            wanted = sorted(s.value for s in JobStatus if s.is_final)
        else:
            values = [status] if isinstance(status, str | JobStatus) else status
            try:
                wanted = sorted({JobStatus(s).value for s in values})
            except ValueError:
                raise JobmasterError(
                    f"status={status!r}: use {', '.join(s.value for s in JobStatus)}"
                ) from None
        unfinished = [s for s in wanted if not JobStatus(s).is_final]
        if unfinished and not force:
            raise JobmasterError(
                f"refusing to purge {', '.join(unfinished)} jobs: they have not finished "
                "(a worker may be running them, an agent still holds them); purge finished "
                "jobs, or pass force=True (--force) to delete them anyway")
        if batch_size < 1:
            raise JobmasterError(f"batch_size={batch_size!r} must be >= 1")
        cutoff: datetime | None
        if isinstance(before, timedelta):
            cutoff = datetime.now(UTC) - before
        elif isinstance(before, int | float):
            cutoff = datetime.fromtimestamp(before, UTC)
        elif isinstance(before, datetime):
            cutoff = before if before.tzinfo is not None else before.replace(tzinfo=UTC)
        else:
            cutoff = None
        self.flush()
        master = self._app.master
        if dry_run:
            return master.count_purgeable(self._app.name, statuses=wanted, before=cutoff,
                                          definition_id=definition_id)
        total = 0
        while True:
            deleted = master.purge_jobs(self._app.name, statuses=wanted, before=cutoff,
                                        definition_id=definition_id, limit=batch_size)
            total += deleted
            if deleted and on_batch is not None:
                on_batch(deleted)
            if deleted < batch_size:
                return total
