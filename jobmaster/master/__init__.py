"""The master: the database that is the source of truth for jobs, schedules and workers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobmaster.master.repository import Master

__all__ = ["Master"]


def __getattr__(name: str) -> Any:
    if name == "Master":  # SQLAlchemy: imported when the master is used
        from jobmaster.master.repository import Master

        return Master
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
