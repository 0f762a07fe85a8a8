"""The master: the database that is the source of truth for jobs, schedules and workers."""

from jobmaster.master.repository import Master

__all__ = ["Master"]
