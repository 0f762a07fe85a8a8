"""Times as the master stores them (aware UTC datetimes), without SQLAlchemy: the modules
``import jobmaster`` loads use these, and the master's repository is imported only when
the master is used."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


def from_timestamp(value: float | None) -> datetime | None:
    """A Unix timestamp as an aware UTC datetime."""
    return None if value is None else datetime.fromtimestamp(value, UTC)
