"""jobmaster in a Django project.

Add the app and the settings of its ``App``::

    INSTALLED_APPS = [..., "jobmaster.contrib.django"]
    JOBMASTER = {"name": "shop", "master": "postgresql+psycopg://db/shop",
                 "agents": {"main": "redis://redis:6379/0"}}   # every App(...) keyword

Then ``jobmaster.contrib.django.app`` (or ``get_app()``) is that ``App``, made with
``default=True`` so module-level ``@jobmaster.job`` definitions use it; the ``jobs.py``
module of every installed app is imported when Django is ready (``JOBMASTER_AUTODISCOVER``
names other modules); ``delay_on_commit(job, ...)`` enqueues once the current transaction
commits; ``manage.py jobmaster worker|beat|migrate|...`` runs jobmaster's command line
with this app; worker processes close Django's database connections they inherited and
those a job left old or broken, as Django does around a request.
"""

from __future__ import annotations

from typing import Any

from jobmaster.contrib.django.config import autodiscover, get_app
from jobmaster.contrib.django.connections import (
    DjangoConnections,
    close_inherited_connections,
)
from jobmaster.contrib.django.transactions import apply_on_commit, delay_on_commit

__all__ = [
    "DjangoConnections",
    "apply_on_commit",
    "autodiscover",
    "close_inherited_connections",
    "delay_on_commit",
    "get_app",
]


def __getattr__(name: str) -> Any:
    """``jobmaster.contrib.django.app``: the project's ``App`` (built on first access,
    setting Django up first if needed, so ``jobmaster worker -A
    jobmaster.contrib.django:app`` works with ``DJANGO_SETTINGS_MODULE`` set)."""
    if name == "app":
        return get_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
