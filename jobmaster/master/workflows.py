"""The master's side of workflows (chains, groups, chords, links): what waits for what,
and the one decision of when a waiting job runs.

A workflow is stored when it is applied, in one transaction: every job as a row of
``jobmaster_jobs`` (jobs that wait for others as ``scheduled`` with no time, so beat does
not promote them), and for each waiting job a row of ``jobmaster_workflow_steps`` with its
parents in ``jobmaster_workflow_parents``. When a parent ends, ``advance`` evaluates the
steps waiting for it: once every parent succeeded (read from the master, so results are
durable), a conditional update moves the step from ``waiting`` to ``released`` — exactly
once whoever tries — and gives the job its time and its arguments with the parents'
result(s) bound to its first positional parameter; beat's promotion pushes it like any
due job. A parent that failed or was cancelled abandons the steps after it (with the
reason), and those after them. ``sweep`` does the same for every step whose parents all
ended, for when the process that saw a parent end died before it could.

The decisions themselves (``decide``) are pure functions of the step and its parents'
statuses, tested without a database.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import sqlalchemy as sa

from jobmaster.exceptions import PayloadTooLargeError, SerializationError, SignatureError
from jobmaster.master.repository import Fence, LeadershipLost, Master, event_row, utcnow
from jobmaster.master.schema import events, jobs, workflow_parents, workflow_steps
from jobmaster.models import FINAL_STATUSES, JobStatus
from jobmaster.serialization import Serializer, encode_arguments

log = logging.getLogger("jobmaster.workflows")

Kind = Literal["chain", "chord", "link", "errback"]
Trigger = Literal["success", "failure"]
Argument = Literal["nothing", "result", "results", "job_id"]

WORKFLOW_KEY = "jobmaster.workflow"
"""The metadata key every job of a workflow carries, its value the workflow's id:
``app.jobs.list(metadata={"jobmaster.workflow": handle.workflow_id})`` lists them."""

WAITING = "waiting"
RELEASED = "released"
ABANDONED = "abandoned"

_FINAL = [s.value for s in FINAL_STATUSES]
_SUCCEEDED = JobStatus.SUCCEEDED.value
_FAILED = JobStatus.FAILED.value
_CANCELLED = JobStatus.CANCELLED.value
_MAX_CASCADE = 100_000


# -- the pure part ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Step:
    """A waiting job as the decision sees it."""

    job_id: str
    kind: str
    trigger: str
    argument: str


@dataclass(frozen=True, slots=True)
class Parent:
    """A parent of a waiting job as the decision sees it: its status in the master and,
    if it ended badly, its error."""

    job_id: str
    definition_id: str
    status: str
    error_type: str | None = None
    error_message: str | None = None
    error_traceback: str | None = None


@dataclass(frozen=True, slots=True)
class Wait:
    """Not yet: a parent has not ended."""


@dataclass(frozen=True, slots=True)
class Release:
    """Run it now. ``argument`` says what it receives first: nothing, the result of the one
    parent in ``sources``, the list of results of ``sources`` in order, or the id of the
    failed parent in ``sources``."""

    argument: str
    sources: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Abandon:
    """It will never run: recorded ``status`` (``cancelled``, or ``failed`` for a chord's
    callback), with the error that caused it (``error_type`` ``None``: no error, e.g. an
    error callback nothing called for)."""

    status: str
    reason: str
    error_type: str | None = None
    error_message: str | None = None
    error_traceback: str | None = None


Decision = Wait | Release | Abandon


def decide(step: Step, parents: Sequence[Parent]) -> Decision:
    """What becomes of a waiting step, given its parents (in order) as the master holds
    them. A parent missing from the master counts as not ended."""
    if step.trigger == "failure":
        return _decide_errback(step, parents)
    ended = True
    for parent in parents:
        if parent.status in (_FAILED, _CANCELLED):
            return _abandon(step, parent)
        if parent.status != _SUCCEEDED:
            ended = False
    if not ended:
        return Wait()
    ids = tuple(p.job_id for p in parents)
    reason = ("released: " + (f"job {ids[0]} succeeded" if len(ids) == 1
                              else f"all {len(ids)} jobs it waited for succeeded"))
    if step.argument == "result":
        return Release("result", ids[:1], reason)
    if step.argument == "results":
        return Release("results", ids, reason)
    return Release("nothing", (), reason)


def _decide_errback(step: Step, parents: Sequence[Parent]) -> Decision:
    """An error callback runs when one of the jobs it watches failed, with that job's id;
    once they all ended without a failure it is not needed."""
    for parent in parents:
        if parent.status == _FAILED:
            return Release("job_id", (parent.job_id,),
                           f"released: job {parent.job_id} ({parent.definition_id}) failed")
    if all(p.status in _FINAL for p in parents):
        return Abandon(_CANCELLED, "not needed: no job it watched failed")
    return Wait()


def _abandon(step: Step, parent: Parent) -> Abandon:
    what = "failed" if parent.status == _FAILED else "was cancelled"
    error_type = parent.error_type or ("JobCancelled" if parent.status == _CANCELLED
                                       else "JobFailed")
    detail = f": {parent.error_message}" if parent.error_message else ""
    if step.kind == "chord":
        message = f"chord member {parent.job_id} ({parent.definition_id}) {what}{detail}"
        return Abandon(_FAILED, f"the chord failed: member {parent.job_id} {what}",
                       error_type, message, parent.error_traceback)
    message = f"not run: job {parent.job_id} ({parent.definition_id}) before it {what}{detail}"
    return Abandon(_CANCELLED, f"not run: job {parent.job_id} before it {what}",
                   error_type, message, parent.error_traceback)


# -- the master's part --------------------------------------------------------------------
@dataclass(slots=True)
class Advanced:
    """What one ``advance`` or ``sweep`` did."""

    released: int = 0
    abandoned: int = 0
    unsettled: list[str] | None = None
    """Jobs given to ``advance`` the master does not hold as ended yet (try again later)."""


class Workflows:
    """Reads and writes of workflows in one master."""

    def __init__(self, master: Master, serializers: Mapping[str, Serializer],
                 max_payload_bytes: int) -> None:
        self.master = master
        self.serializers = serializers
        self.max_payload_bytes = max_payload_bytes

    def insert(self, job_rows: Sequence[Mapping[str, Any]],
               steps: Sequence[Mapping[str, Any]],
               parents: Sequence[Mapping[str, Any]]) -> None:
        """Store a workflow: its jobs, its waiting steps and their parents, at once."""
        with self.master._begin() as conn:
            conn.execute(jobs.insert(), [dict(r) for r in job_rows])
            conn.execute(events.insert(), [
                event_row(r["id"], r["status"], r["created_at"],
                          reason="enqueued" if r["scheduled_at"] is not None
                          else "enqueued: waits for the jobs before it in its workflow")
                for r in job_rows])
            if steps:
                conn.execute(workflow_steps.insert(), [dict(s) for s in steps])
                conn.execute(workflow_parents.insert(), [dict(p) for p in parents])

    def delete(self, job_ids: Sequence[str]) -> None:
        """Remove a workflow that could not be pushed (nothing of it ran)."""
        ids = list(job_ids)
        with self.master._begin() as conn:
            conn.execute(workflow_parents.delete().where(workflow_parents.c.job_id.in_(ids)))
            conn.execute(workflow_steps.delete().where(workflow_steps.c.job_id.in_(ids)))
            conn.execute(events.delete().where(events.c.job_id.in_(ids)))
            conn.execute(jobs.delete().where(jobs.c.id.in_(ids)))

    def advance(self, job_ids: Iterable[str]) -> Advanced:
        """Jobs ended: release or abandon the steps waiting for them. Jobs the master does
        not hold as ended yet (their record is still on its way) come back in
        ``unsettled``; their steps are left for a later call."""
        ids = list(dict.fromkeys(job_ids))
        report = Advanced(unsettled=[])
        if not ids:
            return report
        with self.master.engine.connect() as conn:
            statuses = {str(i): str(s) for i, s in conn.execute(
                sa.select(jobs.c.id, jobs.c.status).where(jobs.c.id.in_(ids)))}
            ended = [i for i in ids if statuses.get(i) in _FINAL]
            report.unsettled = [i for i in ids if statuses.get(i) not in _FINAL]
            children = self._waiting_children(conn, ended)
        for child in children:
            self._evaluate(child, report)
        return report

    def sweep(self, cluster: str, *, fence: Fence | None = None, limit: int = 500) -> Advanced:
        """Release or abandon every waiting step of a cluster that can be decided now: its
        parents all ended, an error callback's parent failed, or its own job was cancelled
        meanwhile. Covers a worker that died between recording a job and releasing the
        steps after it; fenced on beat's lease when given."""
        report = Advanced(unsettled=[])
        parents = workflow_parents.alias("p")
        parent_jobs = jobs.alias("pj")
        own = jobs.alias("own")
        unended = sa.exists().where(
            parents.c.job_id == workflow_steps.c.job_id,
            parent_jobs.c.id == parents.c.parent_id,
            parent_jobs.c.status.not_in(_FINAL))
        missing = sa.exists().where(
            parents.c.job_id == workflow_steps.c.job_id,
            ~sa.exists().where(parent_jobs.c.id == parents.c.parent_id))
        failed = sa.exists().where(
            parents.c.job_id == workflow_steps.c.job_id,
            parent_jobs.c.id == parents.c.parent_id,
            parent_jobs.c.status.in_([_FAILED, _CANCELLED]))
        gone = sa.exists().where(own.c.id == workflow_steps.c.job_id,
                                 own.c.status.in_(_FINAL))
        query = (sa.select(workflow_steps.c.job_id)
                 .where(workflow_steps.c.cluster == cluster,
                        workflow_steps.c.state == WAITING,
                        sa.or_(sa.and_(~unended, ~missing), failed, gone))
                 .limit(limit))
        with self.master.engine.connect() as conn:
            ready = [str(i) for i in conn.execute(query).scalars()]
        for job_id in ready:
            self._evaluate(job_id, report, fence=fence)
        return report

    def forget_finished(self, cluster: str, limit: int = 1000) -> int:
        """Delete step rows whose jobs retention already deleted; return how many."""
        with self.master._begin() as conn:
            ids = [str(i) for i in conn.execute(
                sa.select(workflow_steps.c.job_id).where(
                    workflow_steps.c.cluster == cluster,
                    workflow_steps.c.state != WAITING,
                    ~sa.exists().where(jobs.c.id == workflow_steps.c.job_id)).limit(limit)
            ).scalars()]
            if ids:
                conn.execute(workflow_parents.delete().where(
                    workflow_parents.c.job_id.in_(ids)))
                conn.execute(workflow_steps.delete().where(workflow_steps.c.job_id.in_(ids)))
        return len(ids)

    def waiting(self, workflow_id: str) -> list[str]:
        """Ids of a workflow's steps still waiting."""
        with self.master.engine.connect() as conn:
            return [str(i) for i in conn.execute(
                sa.select(workflow_steps.c.job_id).where(
                    workflow_steps.c.workflow_id == workflow_id,
                    workflow_steps.c.state == WAITING)).scalars()]

    # -- one step -----------------------------------------------------------------------
    @staticmethod
    def _waiting_children(conn: sa.Connection, parent_ids: Sequence[str]) -> list[str]:
        if not parent_ids:
            return []
        query = (sa.select(workflow_parents.c.job_id).distinct()
                 .join(workflow_steps, workflow_steps.c.job_id == workflow_parents.c.job_id)
                 .where(workflow_parents.c.parent_id.in_(list(parent_ids)),
                        workflow_steps.c.state == WAITING))
        return sorted(str(i) for i in conn.execute(query).scalars())

    def _evaluate(self, job_id: str, report: Advanced, *, fence: Fence | None = None) -> None:
        """Decide one waiting step in its own transaction; a step it abandons takes the
        steps waiting for it along, in the same transaction."""
        try:
            with self.master._begin() as conn:
                if fence is not None:
                    self.master._fence(conn, fence)
                queue = [job_id]
                seen = 0
                while queue and seen < _MAX_CASCADE:
                    seen += 1
                    current = queue.pop(0)
                    if self._decide_one(conn, current, report):
                        queue += [c for c in self._waiting_children(conn, [current])
                                  if c not in queue]
        except LeadershipLost:
            raise
        except Exception:  # noqa: BLE001 - one step must not stop the others
            log.exception("could not decide workflow step %s; beat's sweep tries again",
                          job_id, extra={"job_id": job_id})

    def _decide_one(self, conn: sa.Connection, job_id: str, report: Advanced) -> bool:
        """Decide and apply; ``True`` when the step ended without running (its own
        waiting children must be decided too)."""
        row = conn.execute(sa.select(workflow_steps).where(
            workflow_steps.c.job_id == job_id, workflow_steps.c.state == WAITING)
        ).mappings().first()
        if row is None:
            return False
        own = conn.execute(sa.select(jobs.c.status).where(jobs.c.id == job_id)).scalar()
        if own is None or own in _FINAL:  # cancelled meanwhile, or deleted: nothing to run
            return self._claim(conn, job_id, ABANDONED)
        order = [str(p) for p in conn.execute(
            sa.select(workflow_parents.c.parent_id).where(workflow_parents.c.job_id == job_id)
            .order_by(workflow_parents.c.position)).scalars()]
        found = {str(r["id"]): r for r in conn.execute(
            sa.select(jobs.c.id, jobs.c.definition_id, jobs.c.status, jobs.c.error_type,
                      jobs.c.error_message, jobs.c.error_traceback)
            .where(jobs.c.id.in_(order))).mappings()}
        parents = [Parent(p, str(found[p]["definition_id"]), str(found[p]["status"]),
                          found[p]["error_type"], found[p]["error_message"],
                          found[p]["error_traceback"])
                   if p in found else Parent(p, "?", "missing") for p in order]
        decision = decide(Step(job_id, row["kind"], row["trigger"], row["argument"]), parents)
        if isinstance(decision, Wait):
            return False
        if not self._claim(conn, job_id, RELEASED if isinstance(decision, Release)
                           else ABANDONED):
            return False
        if isinstance(decision, Release):
            try:
                payload = self._payload(conn, job_id, row, decision)
            except (SerializationError, PayloadTooLargeError, SignatureError, TypeError,
                    ValueError, KeyError) as exc:
                conn.execute(workflow_steps.update().where(workflow_steps.c.job_id == job_id)
                             .values(state=ABANDONED))
                self._end(conn, job_id, Abandon(
                    _FAILED, "its arguments could not be made from the results before it",
                    type(exc).__name__, f"could not pass the result(s) to it: {exc}"))
                report.abandoned += 1
                return True
            self._release(conn, job_id, row, payload, decision.reason)
            report.released += 1
            return False
        self._end(conn, job_id, decision)
        report.abandoned += 1
        return True

    @staticmethod
    def _claim(conn: sa.Connection, job_id: str, state: str) -> bool:
        """The exactly-once point: only one writer moves a step out of ``waiting``."""
        return bool(conn.execute(
            workflow_steps.update().where(workflow_steps.c.job_id == job_id,
                                          workflow_steps.c.state == WAITING)
            .values(state=state, updated_at=utcnow())).rowcount)

    def _payload(self, conn: sa.Connection, job_id: str, step: Mapping[Any, Any],
                 decision: Release) -> bytes | None:
        """The job's arguments with what the decision passes bound to its parameter
        (``None``: unchanged)."""
        if decision.argument == "nothing" or step["parameter"] is None:
            return None
        own = conn.execute(sa.select(jobs.c.definition_id, jobs.c.encoding, jobs.c.payload)
                           .where(jobs.c.id == job_id)).mappings().one()
        serializer = self.serializers[own["encoding"]]
        values = dict(serializer.loads(bytes(own["payload"])))
        value: Any
        if decision.argument == "job_id":
            value = decision.sources[0]
        else:
            results = {str(r["id"]): r for r in conn.execute(
                sa.select(jobs.c.id, jobs.c.encoding, jobs.c.result)
                .where(jobs.c.id.in_(list(decision.sources)))).mappings()}
            decoded = [self._result(results[s]) for s in decision.sources]
            value = decoded[0] if decision.argument == "result" else decoded
        values[step["parameter"]] = value
        return encode_arguments(serializer, own["definition_id"], values,
                                self.max_payload_bytes)

    def _result(self, row: Mapping[Any, Any]) -> Any:
        if row["result"] is None:
            return None
        return self.serializers[row["encoding"]].loads(bytes(row["result"]))

    @staticmethod
    def _release(conn: sa.Connection, job_id: str, step: Mapping[Any, Any],
                 payload: bytes | None, reason: str) -> None:
        now = utcnow()
        due = now + timedelta(seconds=step["delay"] or 0.0)
        if step["not_before"] is not None and step["not_before"] > due:
            due = step["not_before"]
        values: dict[str, Any] = {"scheduled_at": due, "updated_at": now}
        if payload is not None:
            values["payload"] = payload
        changed = conn.execute(jobs.update().where(
            jobs.c.id == job_id, jobs.c.status == JobStatus.SCHEDULED.value,
            jobs.c.scheduled_at.is_(None)).values(**values)).rowcount
        if changed:
            conn.execute(events.insert(), [event_row(
                job_id, JobStatus.SCHEDULED.value, now, reason=reason)])

    @staticmethod
    def _end(conn: sa.Connection, job_id: str, decision: Abandon) -> None:
        now = utcnow()
        values: dict[str, Any] = {"status": decision.status, "finished_at": now,
                                  "updated_at": now}
        if decision.error_type is not None:
            values.update(error_type=decision.error_type[:200],
                          error_message=(decision.error_message or "")[:10_000],
                          error_traceback=(decision.error_traceback or None))
        changed = conn.execute(jobs.update().where(
            jobs.c.id == job_id, jobs.c.status.not_in(_FINAL)).values(**values)).rowcount
        if changed:
            conn.execute(events.insert(), [event_row(
                job_id, decision.status, now, error_type=decision.error_type,
                error_message=decision.error_message, reason=decision.reason)])

