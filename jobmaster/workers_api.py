"""``app.workers``: the workers of an app's cluster as the master last heard of them.

Each worker upserts its row at every heartbeat (``Worker._worker_row``): where it runs,
what it serves, how it runs jobs, and the ids of the jobs in its slots. A worker that
stopped heartbeating without saying goodbye (kill -9, a lost machine) is reported ``lost``
once it has not been seen for two leases, whether or not beat has marked it yet.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jobmaster.host import AppResources

STATUSES = ("running", "stopping", "stopped", "lost")
"""What ``WorkerInfo.status`` may be."""


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker of the cluster, as of its last heartbeat."""

    id: str
    host: str
    pid: int
    lanes: tuple[str, ...]
    agent: str
    concurrency: int
    pool: str | None
    version: str | None
    started: datetime
    last_seen: datetime
    status: str
    processed: int
    running: tuple[str, ...]

    @property
    def alive(self) -> bool:
        """Running or stopping, and seen recently."""
        return self.status in ("running", "stopping")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (times as ISO 8601 UTC)."""
        return {
            "id": self.id, "host": self.host, "pid": self.pid, "lanes": list(self.lanes),
            "agent": self.agent, "concurrency": self.concurrency, "pool": self.pool,
            "version": self.version, "started": self.started.isoformat(),
            "last_seen": self.last_seen.isoformat(), "status": self.status,
            "processed": self.processed, "running": list(self.running),
        }


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _strings(value: Any) -> tuple[str, ...]:
    """A JSON list of strings read back from the master (anything else counts as empty)."""
    if not isinstance(value, list):
        return ()
    return tuple(str(v) for v in value if isinstance(v, str | int))


def worker_from_row(row: Mapping[Any, Any], *, lost_before: datetime) -> WorkerInfo:
    """A ``WorkerInfo`` from a ``jobmaster_workers`` row; a running or stopping worker
    last seen before ``lost_before`` is ``lost``."""
    last_seen = _aware(row["last_seen"])
    status = str(row["status"])
    if status in ("running", "stopping") and last_seen < lost_before:
        status = "lost"
    if status not in STATUSES:
        status = "lost"
    return WorkerInfo(
        id=str(row["id"]), host=str(row["hostname"]), pid=int(row["pid"]),
        lanes=_strings(row["lanes"]), agent=str(row["agent"]),
        concurrency=int(row["concurrency"]), pool=row.get("pool"),
        version=row.get("version"), started=_aware(row["started_at"]),
        last_seen=last_seen, status=status, processed=int(row["processed"] or 0),
        running=() if status in ("stopped", "lost") else _strings(row.get("running")),
    )


class WorkersAPI:
    """The workers of one app's cluster."""

    def __init__(self, app: AppResources) -> None:
        self._app = app

    def list(self, *, include_stopped: bool = True) -> builtins.list[WorkerInfo]:
        """Workers of the cluster, most recently seen first; ``include_stopped=False``
        leaves out stopped and lost ones."""
        config = self._app.config
        lost_before = datetime.now(UTC) - timedelta(seconds=2 * config.lease_seconds)
        found = [worker_from_row(row, lost_before=lost_before)
                 for row in self._app.master.list_workers(cluster=self._app.name)]
        return [w for w in found if include_stopped or w.alive]
