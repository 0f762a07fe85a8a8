"""Enqueueing when the caller's Django transaction commits: the job exists only if the
rows it is about were committed (``transaction.on_commit``)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any, ParamSpec

from jobmaster.app import SharedJob
from jobmaster.definitions import JobDefinition

P = ParamSpec("P")


def delay_on_commit(definition: JobDefinition[P, Any] | SharedJob[P, Any], /,
                    *args: P.args, **kwargs: P.kwargs) -> None:
    """``definition.delay(*args, **kwargs)`` once the current transaction of the default
    database commits; nothing if it rolls back. Outside a transaction (autocommit) the job
    is enqueued at once. The arguments are checked now (``ArgumentsError``), so a bad call
    fails in the request, not after the commit. Returns ``None``: the job does not exist
    yet (Celery's ``delay_on_commit`` does the same)."""
    apply_on_commit(definition, args, kwargs)


def apply_on_commit(
    definition: JobDefinition[Any, Any] | SharedJob[Any, Any],
    args: Iterable[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    using: str | None = None,
    robust: bool = False,
    **options: Any,
) -> None:
    """``definition.apply(args, kwargs, **options)`` once the transaction of database
    ``using`` commits. ``robust=True`` logs a failing enqueue instead of raising it from
    the commit (Django's ``on_commit(robust=...)``)."""
    from django.db import transaction

    args = tuple(args)
    kwargs = dict(kwargs or {})
    definition.bind(args, kwargs)  # refuse arguments that do not fit, before the commit
    enqueue = functools.partial(definition.apply, args, kwargs, **options)
    transaction.on_commit(enqueue, using=using, robust=robust)
