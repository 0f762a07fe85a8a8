"""Fan-out jobs: a query that yields work items, each run as a job of another definition
(``@app.fan_out(...)``).

The query runs as a job on a worker. It streams the items it yields into jobs of the
target definition in batches of ``batch_size`` (one master write and one push per batch,
memory flat however many items). An item's job id is derived from the query job's id and
the item's position, so a query run again after a crash (its worker died half-way) finds
the jobs it already made and makes only the rest — provided it yields its items in the
same order. A batch is written to the master first, as ``scheduled`` a minute ahead, then
pushed and marked ``queued``: if the worker dies in between, beat pushes them after that
minute; none is lost and none is made twice.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from jobmaster.context import JobContext
from jobmaster.exceptions import ArgumentsError, DefinitionError
from jobmaster.host import AppResources
from jobmaster.master.rows import job_row
from jobmaster.master.timestamps import from_timestamp, utcnow
from jobmaster.models import JobStatus
from jobmaster.options import NO_OPTIONS

if TYPE_CHECKING:
    from jobmaster.definitions import JobDefinition
    from jobmaster.producer import Producer


class FanOutHost(AppResources, Protocol):
    """What a fan-out needs from its app."""

    @property
    def producer(self) -> Producer: ...

    @property
    def definitions(self) -> Mapping[str, JobDefinition[Any, Any]]: ...

_ITEMS = uuid.UUID("6a6f626d-6173-7465-7266-616e6f757473")  # "jobmasterfanouts"
_GRACE = 60.0
"""Seconds a batch written to the master waits for its push before beat takes it over."""


def item_job_id(query_job_id: str, index: int) -> str:
    """The id of the job made for item ``index`` of the query job ``query_job_id``: the same
    whenever that query runs again."""
    return str(uuid.uuid5(_ITEMS, f"{query_job_id}:{index}"))


def batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last one shorter), read as they come."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


class FanOut:
    """The job function of a fan-out query: runs the query and enqueues its items."""

    def __init__(self, app: FanOutHost, query: Callable[..., Any], target: str,
                 batch_size: int) -> None:
        if not (inspect.isgeneratorfunction(query) or inspect.isasyncgenfunction(query)):
            raise DefinitionError(f"fan_out: {getattr(query, '__qualname__', query)} must be a "
                                  "generator (or async generator) yielding kwargs dicts")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or \
                not 1 <= batch_size <= 100_000:
            raise DefinitionError(f"batch_size={batch_size!r} must be an int from 1 to 100,000")
        self.app = app
        self.query = query
        self.target = target
        self.batch_size = batch_size
        params = list(inspect.signature(query).parameters.values())
        context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    annotation=JobContext)
        self.__signature__ = inspect.Signature([context, *params])
        self.__name__ = getattr(query, "__name__", "fan_out")
        self.__qualname__ = getattr(query, "__qualname__", self.__name__)
        self.__module__ = query.__module__
        self.__doc__ = query.__doc__

    def __call__(self, ctx: JobContext, **kwargs: Any) -> dict[str, int]:
        """Run the query; return how many items it yielded and how many jobs were new."""
        counts = {"items": 0, "enqueued": 0}
        if inspect.isasyncgenfunction(self.query):
            asyncio.run(self._drain_async(self.query(**kwargs), ctx, counts))
        else:
            for batch in batches(self.query(**kwargs), self.batch_size):
                self._enqueue(ctx, batch, counts)
        return counts

    async def _drain_async(self, items: AsyncIterator[Any], ctx: JobContext,
                           counts: dict[str, int]) -> None:
        batch: list[Any] = []
        async for item in items:
            batch.append(item)
            if len(batch) >= self.batch_size:
                await asyncio.to_thread(self._enqueue, ctx, batch, counts)
                batch = []
        if batch:
            await asyncio.to_thread(self._enqueue, ctx, batch, counts)

    def _enqueue(self, ctx: JobContext, items: list[Any], counts: dict[str, int]) -> None:
        app = self.app
        definition = _target(app, self.target)
        first = counts["items"]
        counts["items"] += len(items)
        now = time.time()
        options = app.producer.options(definition.options, NO_OPTIONS, now)
        envs = []
        for offset, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise ArgumentsError(f"fan_out {ctx.definition_id!r}: item {first + offset} is "
                                     f"a {type(item).__name__}, not a dict of arguments")
            env = app.producer.build(self.target, definition.bind((), item), options,
                                     now=now, due=now)
            envs.append(replace(env, id=item_job_id(ctx.job_id, first + offset)))
        known = app.master.job_statuses(e.id for e in envs)
        fresh = [e for e in envs if e.id not in known]
        if not fresh:
            return
        later = utcnow()
        rows = [job_row(e, JobStatus.SCHEDULED, later) for e in fresh]
        for row in rows:  # beat's to push if this worker dies before it does
            row["scheduled_at"] = from_timestamp(now + _GRACE)
        app.master.insert_jobs(rows)
        app.producer.push(fresh)
        app.master.mark_promoted([e.id for e in fresh], fence=None)
        app.pipeline.enqueued(fresh)
        counts["enqueued"] += len(fresh)


def _target(app: FanOutHost, target: str) -> JobDefinition[Any, Any]:
    definition = app.definitions.get(target)
    if definition is None:
        raise DefinitionError(f"fan_out: the target job {target!r} is not registered in app "
                              f"{app.name!r}")
    return definition
