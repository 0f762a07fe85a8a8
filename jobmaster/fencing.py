"""Whether a delivery may run, judged against the master: a pure decision, no I/O.

An agent's lease keeps a job with one worker at a time, but some deliveries cannot promise
it: a message delivered again (its earlier claim was not settled: the worker died, or only
seemed to), and on NATS every delivery for a while after the client (re)connects, because a
server killed with ``kill -9`` can forget acknowledgements and in-flight leases and hand
those messages out again. The worker marks such claims (``Claimed.fence``, or more than one
delivery), reads what the master holds for them in one query per claimed batch, and asks
``fence`` about each one:

- the master shows the job ``succeeded`` or ``failed``: the delivery is a leftover of a
  settled run; it is acknowledged and not run (``Superseded`` with no holder);
- ``cancelled``: not superseded here; the worker ends it as it ends every cancelled job it
  finds, ``cancelled`` without running, which middleware sees (a workflow moves on);
- the master shows it ``running`` under another worker that heartbeated within
  ``alive_seconds``: that worker's lease is live; this delivery is left alone, unsettled,
  so its lease brings the message back if that worker dies (``Superseded(held_by=...)``);
- this worker already holds the job (the same message delivered twice to one worker): left
  alone too, its first claim settles it;
- this worker itself ran this very version of the job (same attempt and due time) to a
  final status moments ago, and its record may not have reached the master yet (the
  writer waits behind an agent that is down): acknowledged and not run;
- otherwise (unknown to the master, queued, retrying, running under a worker not seen
  lately): it runs.

A job recorded ``running`` only when its batch ends (jobs shorter than a few milliseconds
run in batches) is not seen as running by another worker before then: such a job can still
run twice inside a lease after a NATS server restart, and the master keeps the first final
status either way (final statuses never move back).
"""

from __future__ import annotations

from dataclasses import dataclass

from jobmaster.models import FINAL_STATUSES, JobStatus
from jobmaster.outcomes import Superseded

__all__ = ["Holder", "fence"]

_SETTLED = FINAL_STATUSES - {JobStatus.CANCELLED}


@dataclass(frozen=True, slots=True)
class Holder:
    """What the master holds for a delivered job: its status, the worker it last recorded
    and when that worker last heartbeated (a Unix time; ``None``: not known)."""

    status: JobStatus
    worker: str | None = None
    worker_seen: float | None = None


def fence(holder: Holder | None, *, me: str, holding: bool, now: float,
          alive_seconds: float, settled_here: JobStatus | None = None) -> Superseded | None:
    """``None`` if the delivery may run; else why not (see the module docstring).
    ``holding``: this worker already holds a claim of the same job; ``settled_here``: the
    final status this worker gave this same version of the job, if it did."""
    if holding:
        return Superseded(JobStatus.RUNNING, held_by=me)
    if settled_here is not None and settled_here in _SETTLED:
        return Superseded(settled_here)
    if holder is None:
        return None
    if holder.status in _SETTLED:
        return Superseded(holder.status)
    if (holder.status is JobStatus.RUNNING and holder.worker is not None
            and holder.worker != me and holder.worker_seen is not None
            and now - holder.worker_seen <= alive_seconds):
        return Superseded(JobStatus.RUNNING, held_by=holder.worker)
    return None
