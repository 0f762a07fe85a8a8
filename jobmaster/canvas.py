"""Celery's canvas, kept in the master: signatures, ``chain``, ``group``, ``chord``, and
``link``/``link_error`` callbacks.

::

    chain(add.s(1, 2), add.s(10)).apply_async().get(timeout=10)         # 13
    group(add.s(i, i) for i in range(10)).apply_async().get(timeout=10)  # [0, 2, ..., 18]
    chord(group(add.s(i, i) for i in range(10)), tsum.s()).apply_async() # tsum([0, ..., 18])
    add.apply_async((1, 2), link=log.s(), link_error=alert.s())

Applying a workflow stores every one of its jobs in the master in one transaction: the
jobs that can start now are pushed to their agents as usual; the others wait in the master
(``scheduled``, with no time) until the jobs before them succeed. The master decides when
a waiting job runs (``jobmaster.master.workflows``), so a worker that dies mid-workflow
loses nothing and no job waits for another while holding a worker slot.

A job that follows another receives the other's result as its first positional argument
(``add.s(10)`` after a job returning 3 runs ``add(3, 10)``); after a group, the list of the
group's results, in order; ``si`` (an immutable signature) receives nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from jobmaster.envelope import Envelope
from jobmaster.exceptions import ArgumentsError, JobTimeoutError
from jobmaster.host import AppResources
from jobmaster.ids import new_job_id
from jobmaster.jobs import CELERY_STATES, JobHandle, JobsAPI
from jobmaster.master.rows import job_row
from jobmaster.master.timestamps import from_timestamp, utcnow
from jobmaster.models import JobStatus
from jobmaster.options import JobOptions, duration
from jobmaster.producer import Producer, due_time

R = TypeVar("R")


_REFUSED = {"job_key": "a job key cannot dedupe one step of a workflow",
            "cluster": "a workflow runs in one cluster",
            "link": "pass link= to apply_async", "link_error": "pass link_error= to apply_async"}
_CELERY_NAMES = {"countdown": "after", "eta": "at", "queue": "lane"}


class WorkflowHost(AppResources, Protocol):
    """What applying a workflow needs from the app of its jobs."""

    @property
    def producer(self) -> Producer: ...

    @property
    def jobs(self) -> JobsAPI: ...


class CanvasDefinition(Protocol):
    """What a signature needs from a job definition."""

    definition_id: str
    options: JobOptions

    @property
    def app(self) -> WorkflowHost: ...

    def bind(self, args: Iterable[Any] = (), kwargs: Mapping[str, Any] | None = None
             ) -> dict[str, Any]: ...

    def apply(self, args: Iterable[Any] = (), kwargs: Mapping[str, Any] | None = None, *,
              at: datetime | None = None, after: timedelta | float | None = None,
              job_key: str | None = None, cluster: str | None = None, **options: Any
              ) -> JobHandle[Any]: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


class Canvas:
    """What ``chain``, ``group``, ``chord`` and signatures have in common: ``|`` chains
    them, ``apply_async`` runs them."""

    def __or__(self, other: Canvas) -> Canvas:
        if not isinstance(other, Canvas):
            return NotImplemented
        if isinstance(self, group) and isinstance(other, Signature | chain):
            return chord(self, other)
        head = list(self.tasks) if isinstance(self, chain) else [self]
        tail = list(other.tasks) if isinstance(other, chain) else [other]
        return chain(*head, *tail)

    def apply_async(self, *, link: Canvas | Sequence[Canvas] | None = None,
                    link_error: Signature[Any] | Sequence[Signature[Any]] | None = None
                    ) -> WorkflowHandle:
        """Store the workflow in the master and start the jobs that can start; return a
        handle on its result. ``link``: run after it succeeded, with its result;
        ``link_error``: run if one of its jobs failed, with that job's id."""
        return apply_workflow(plan(self, link=link, link_error=link_error))

    def delay(self) -> WorkflowHandle:
        """``apply_async()``."""
        return self.apply_async()


class Signature(Canvas, Generic[R]):
    """One job to run later, with some of its arguments: ``add.s(1, 2)``. In a workflow,
    the result of the job before it comes first, then these arguments (``add.s(10)`` after
    a job returning 3 runs ``add(3, 10)``); an immutable signature (``add.si(1, 2)``)
    receives nothing from before.

    ``options`` are those of ``apply_async``: ``countdown``, ``eta``, ``queue``,
    ``priority``, ``expires`` and every job option (``set`` returns a copy with more)."""

    def __init__(self, definition: CanvasDefinition, args: Iterable[Any] = (),
                 kwargs: Mapping[str, Any] | None = None, *, immutable: bool = False,
                 options: Mapping[str, Any] | None = None) -> None:
        if not hasattr(definition, "definition_id") or not hasattr(definition, "bind"):
            raise ArgumentsError(f"a signature is made from a job definition, not "
                                 f"{definition!r} (use add.s(...) or signature(add, ...))")
        if isinstance(args, str | bytes) or not isinstance(args, Iterable):
            raise ArgumentsError(f"args must be a tuple or list, not {type(args).__name__}")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise ArgumentsError(f"kwargs must be a dict, not {type(kwargs).__name__}")
        self.definition = definition
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.immutable = bool(immutable)
        self.options = _checked_options(options or {})

    @property
    def definition_id(self) -> str:
        """The id of the job definition it runs."""
        return self.definition.definition_id

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.definition_id}{'.si' if self.immutable else '.s'}({', '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Signature) and other.definition_id == self.definition_id
                and (other.args, other.kwargs, other.immutable, other.options)
                == (self.args, self.kwargs, self.immutable, self.options))

    __hash__ = None  # type: ignore[assignment]

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        """Run the job here and now, with these arguments after the given ones."""
        result: R = self.definition(*args, *self.args, **{**self.kwargs, **kwargs})
        return result

    def set(self, **options: Any) -> Signature[R]:
        """A copy with more options: ``countdown``, ``eta``, ``queue``, ``priority``,
        ``expires`` and every job option (``timeout``, ``max_retries``, ``metadata``...)."""
        return Signature(self.definition, self.args, self.kwargs, immutable=self.immutable,
                         options={**self.options, **options})

    def clone(self, args: Iterable[Any] = (), kwargs: Mapping[str, Any] | None = None,
              **options: Any) -> Signature[R]:
        """A copy with ``args`` before its own, ``kwargs`` over its own, more options."""
        return Signature(self.definition, (*tuple(args), *self.args),
                         {**self.kwargs, **(kwargs or {})}, immutable=self.immutable,
                         options={**self.options, **options})

    def apply_async(self, args: Iterable[Any] | None = None,  # type: ignore[override]
                    kwargs: Mapping[str, Any] | None = None, *,
                    link: Canvas | Sequence[Canvas] | None = None,
                    link_error: Signature[Any] | Sequence[Signature[Any]] | None = None,
                    **options: Any) -> JobHandle[R]:
        """Enqueue the job (``args`` before its own, ``kwargs`` over its own, options over
        its own); with ``link``/``link_error``, stored with its callbacks as a workflow.
        Returns the job's handle."""
        sig = self.clone(args or (), kwargs, **options) if args or kwargs or options else self
        if link is None and link_error is None:
            values = dict(sig.options)
            for celery, ours in _CELERY_NAMES.items():
                if celery in values:
                    values[ours] = values.pop(celery)
            handle: JobHandle[R] = sig.definition.apply(sig.args, sig.kwargs, **values)
            return handle
        run = apply_workflow(plan(sig, link=link, link_error=link_error))
        return run.outputs[0]

    def delay(self, *args: Any, **kwargs: Any) -> JobHandle[R]:  # type: ignore[override]
        """``apply_async(args, kwargs)``."""
        return self.apply_async(args, kwargs)


class chain(Canvas):  # noqa: N801 - Celery's name
    """Jobs one after the other, each receiving the result of the one before as its first
    argument: ``chain(add.s(1, 2), add.s(10))`` gives 13. A step that fails cancels the
    steps after it (their error says which step failed)."""

    def __init__(self, *tasks: Canvas | Iterable[Canvas]) -> None:
        items = _items(tasks, "chain")
        self.tasks: tuple[Canvas, ...] = items

    def __repr__(self) -> str:
        return " | ".join(repr(t) for t in self.tasks)


class group(Canvas):  # noqa: N801 - Celery's name
    """Jobs that run side by side; its result is the list of theirs, in order:
    ``group(add.s(i, i) for i in range(10))``. Its members are signatures or chains."""

    def __init__(self, *tasks: Canvas | Iterable[Canvas]) -> None:
        items = _items(tasks, "group")
        for item in items:
            if isinstance(item, group):
                raise ArgumentsError("a group inside a group is not supported: put its "
                                     "members in the outer group, or wrap it in a chain "
                                     "or chord")
        self.tasks: tuple[Canvas, ...] = items

    def __repr__(self) -> str:
        return f"group({', '.join(repr(t) for t in self.tasks)})"

    def __len__(self) -> int:
        return len(self.tasks)


class chord(Canvas):  # noqa: N801 - Celery's name
    """A group, then a callback that receives the list of the group's results, once, after
    every member succeeded: ``chord(group(add.s(i, i) for i in range(10)), tsum.s())``.
    A member that fails fails the callback, with the member's error."""

    def __init__(self, header: group | Iterable[Canvas], body: Canvas) -> None:
        self.header = header if isinstance(header, group) else group(header)
        if not isinstance(body, Canvas):
            raise ArgumentsError(f"the body of a chord is a signature (tsum.s()), not "
                                 f"{body!r}")
        self.body = body

    def __repr__(self) -> str:
        return f"chord({self.header!r}, {self.body!r})"


def signature(job: Any, args: Iterable[Any] = (), kwargs: Mapping[str, Any] | None = None,
              *, immutable: bool = False, **options: Any) -> Signature[Any]:
    """A signature of ``job`` (a job definition, or one made with ``@jobmaster.job``):
    ``signature(add, args=(1,))`` is ``add.s(1)``."""
    definition = getattr(job, "definition", job) if not hasattr(job, "bind") else job
    return Signature(definition, args, kwargs, immutable=immutable, options=options)


def _items(tasks: tuple[Any, ...], what: str) -> tuple[Canvas, ...]:
    """The members given to ``chain(...)``/``group(...)``: one iterable or several
    arguments, each a signature, chain, group or chord."""
    if len(tasks) == 1 and not isinstance(tasks[0], Canvas) and isinstance(tasks[0], Iterable):
        tasks = tuple(tasks[0])
    if not tasks:
        raise ArgumentsError(f"an empty {what}: give it at least one signature (add.s(...))")
    for item in tasks:
        if not isinstance(item, Canvas):
            raise ArgumentsError(
                f"a {what} holds signatures (add.s(...)), chains, groups or chords, not "
                f"{item!r}; write job.s(...) rather than job(...) or job")
    return tuple(tasks)


def _checked_options(options: Mapping[str, Any]) -> dict[str, Any]:
    values = {k: v for k, v in options.items() if v is not None}
    for name, why in _REFUSED.items():
        if name in values:
            raise ArgumentsError(f"{name}= is not a signature option: {why}")
    for celery, ours in _CELERY_NAMES.items():
        if values.get(celery) is not None and values.get(ours) is not None:
            raise ArgumentsError(f"give {celery}= or {ours}=, not both")
    return values


# -- planning: a workflow as a list of jobs and what each waits for (pure) --------------------
@dataclass(frozen=True, slots=True)
class Node:
    """One job of a planned workflow: its signature, the nodes it waits for (indexes into
    ``Plan.nodes``), why (``kind``), on what (``trigger``) and what it receives
    (``argument``)."""

    signature: Signature[Any]
    parents: tuple[int, ...] = ()
    kind: str = "first"
    trigger: str = "success"
    argument: str = "nothing"


@dataclass(frozen=True, slots=True)
class Plan:
    """A workflow as jobs: ``outputs`` are the nodes whose results are the workflow's
    (one, or several for a workflow ending in a group: ``many``)."""

    nodes: tuple[Node, ...]
    outputs: tuple[int, ...]
    many: bool


def plan(item: Canvas, *, link: Canvas | Sequence[Canvas] | None = None,
         link_error: Signature[Any] | Sequence[Signature[Any]] | None = None) -> Plan:
    """The jobs of a workflow and what each waits for; ``ArgumentsError`` for what is not
    a workflow."""
    if not isinstance(item, Canvas):
        raise ArgumentsError(f"not a signature, chain, group or chord: {item!r}")
    nodes: list[Node] = []
    outputs, many = _place(item, (), False, "chain", nodes)
    main = len(nodes)
    for callback in _callbacks(link, "link"):
        _place(callback, outputs, many, "link", nodes)
    for errback in _callbacks(link_error, "link_error"):
        if not isinstance(errback, Signature):
            raise ArgumentsError(f"link_error takes signatures, not {errback!r}")
        nodes.append(Node(errback, tuple(range(main)), "errback", "failure",
                          "nothing" if errback.immutable else "job_id"))
    return Plan(tuple(nodes), outputs, many)


def _callbacks(value: Any, name: str) -> list[Canvas]:
    if value is None:
        return []
    items = [value] if isinstance(value, Canvas) else list(value)
    for item in items:
        if not isinstance(item, Canvas):
            raise ArgumentsError(f"{name} takes signatures (job.s(...)), not {item!r}")
    return items


def _place(item: Canvas, inputs: tuple[int, ...], many: bool, kind: str,
           nodes: list[Node]) -> tuple[tuple[int, ...], bool]:
    """Add the nodes of ``item`` after ``inputs`` (whose results are a list when
    ``many``); return its outputs and whether they are a list."""
    if isinstance(item, Signature):
        if not inputs:
            nodes.append(Node(item))
        else:
            argument = "nothing" if item.immutable else "results" if many else "result"
            nodes.append(Node(item, inputs, "chord" if many else kind, "success", argument))
        return (len(nodes) - 1,), False
    if isinstance(item, chain):
        for task in item.tasks:
            inputs, many = _place(task, inputs, many, "chain", nodes)
        return inputs, many
    if isinstance(item, chord):
        header, _ = _place(item.header, inputs, many, kind, nodes)
        return _place(item.body, header, True, "chord", nodes)
    if isinstance(item, group):
        outputs: list[int] = []
        for task in item.tasks:
            out, nested = _place(task, inputs, many, kind, nodes)
            if nested:
                raise ArgumentsError("a group member that ends in a group is not supported; "
                                     "end it with a chord callback")
            outputs += out
        return tuple(outputs), True
    raise ArgumentsError(f"not a signature, chain, group or chord: {item!r}")


# -- applying ------------------------------------------------------------------------------
_PARENT = object()


@dataclass(slots=True)
class _Built:
    env: Envelope
    parameter: str | None
    delay: float | None
    not_before: datetime | None


def _build(host: WorkflowHost, node: Node, workflow_id: str, now: float) -> _Built:
    """The envelope of one node, its arguments checked against its definition."""
    from jobmaster.master.workflows import WORKFLOW_KEY  # SQLAlchemy: on use

    sig = node.signature
    definition = sig.definition
    values = dict(sig.options)
    for celery, ours in _CELERY_NAMES.items():
        if celery in values:
            values[ours] = values.pop(celery)
    at, after = values.pop("at", None), values.pop("after", None)
    metadata = {**(values.pop("metadata", None) or {}), WORKFLOW_KEY: workflow_id}
    call = JobOptions.build(values, metadata=metadata)
    parameter = None
    if node.argument != "nothing":
        try:
            bound = definition.bind((_PARENT, *sig.args), sig.kwargs)
        except ArgumentsError as exc:
            raise ArgumentsError(
                f"{exc} (in a workflow, {sig!r} receives the result of the job before it as "
                "its first argument; use .si(...) for a step that ignores it)") from None
        parameter = next((k for k, v in bound.items() if v is _PARENT), None)
        if parameter is None:
            raise ArgumentsError(f"job {definition.definition_id!r} takes no positional "
                                 "parameter for the result before it; use .si(...)")
        del bound[parameter]
    else:
        bound = definition.bind(sig.args, sig.kwargs)
    options = host.producer.options(definition.options, call, now)
    delay = not_before = None
    if node.parents:
        due = now
        if after is not None:
            delay = duration(after, "countdown", allow_zero=True)
        if at is not None:
            not_before = from_timestamp(due_time(at, None, now))
    else:
        due = due_time(at, after, now)
    env = host.producer.build(definition.definition_id, bound, options, now=now, due=due)
    return _Built(host.pipeline.enqueueing(env), parameter, delay, not_before)


def apply_workflow(planned: Plan) -> WorkflowHandle:
    """Store a planned workflow in the master, in one transaction, and push the jobs that
    can start now; return its handle. Nothing is stored if an argument is refused."""
    from jobmaster.master.workflows import WAITING, Workflows  # SQLAlchemy: on use

    hosts = {id(n.signature.definition.app): n.signature.definition.app for n in planned.nodes}
    host = next(iter(hosts.values()))
    names = {h.name for h in hosts.values()}
    if len(names) > 1:
        raise ArgumentsError(f"a workflow runs in one cluster; its jobs belong to "
                             f"{sorted(names)}")
    workflow_id = new_job_id()
    now = time.time()
    built = [_build(host, node, workflow_id, now) for node in planned.nodes]
    stamp = utcnow()
    horizon = now + host.config.agent_horizon
    rows, steps, parents, pushed = [], [], [], []
    for node, b in zip(planned.nodes, built, strict=True):
        env = b.env
        if node.parents:
            row = job_row(env, JobStatus.SCHEDULED, stamp)
            row["scheduled_at"] = None
            steps.append({"job_id": env.id, "workflow_id": workflow_id, "cluster": env.cluster,
                          "kind": node.kind, "trigger": node.trigger,
                          "argument": node.argument, "parameter": b.parameter,
                          "delay": b.delay, "not_before": b.not_before, "state": WAITING,
                          "created_at": stamp, "updated_at": stamp})
            parents += [{"job_id": env.id, "position": i, "parent_id": built[p].env.id}
                        for i, p in enumerate(node.parents)]
        elif env.due > horizon:
            row = job_row(env, JobStatus.SCHEDULED, stamp)
        else:
            row = job_row(env, JobStatus.QUEUED, stamp)
            pushed.append(env)
        rows.append(row)
    store = Workflows(host.master, host.serializers, host.config.max_payload_bytes)
    store.insert(rows, steps, parents)
    try:
        host.producer.push(pushed)
    except BaseException:
        store.delete([b.env.id for b in built])  # nothing ran: the workflow never happened
        raise
    host.pipeline.enqueued([b.env for b in built])
    handles = [JobHandle[Any](host.jobs, b.env.id, b.env.definition_id) for b in built]
    return WorkflowHandle(workflow_id, handles, [handles[i] for i in planned.outputs],
                          planned.many)


class WorkflowHandle:
    """An applied workflow: ``get`` waits for its result (a chain's or chord's: its last
    job's; a group's: the list of its members', in order). ``id`` is the last job's id
    (the workflow's id for a group); ``jobs`` are the handles of all its jobs, ``outputs``
    of those whose results are its result."""

    def __init__(self, workflow_id: str, jobs: list[JobHandle[Any]],
                 outputs: list[JobHandle[Any]], many: bool) -> None:
        self.workflow_id = workflow_id
        self.jobs = jobs
        self.outputs = outputs
        self.many = many

    def __repr__(self) -> str:
        return f"<WorkflowHandle {self.workflow_id} jobs={len(self.jobs)}>"

    @property
    def id(self) -> str:
        """The last job's id, or the workflow's id for a workflow ending in a group."""
        return self.workflow_id if self.many else self.outputs[0].id

    @property
    def results(self) -> list[JobHandle[Any]]:
        """Handles of the jobs whose results make its result (Celery's ``results``)."""
        return list(self.outputs)

    def __iter__(self) -> Iterator[JobHandle[Any]]:
        return iter(self.outputs)

    def get(self, timeout: float | timedelta | None = None, propagate: bool = True, *,
            interval: float = 0.05) -> Any:
        """Wait for the result: the last job's, or the list of a group's, in order. A job
        that failed (or was cancelled because one before it failed) raises
        ``JobFailedError`` with its error; ``propagate=False`` returns the error instead.
        ``JobTimeoutError`` after ``timeout`` seconds in all."""
        limit = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        deadline = None if limit is None else time.monotonic() + limit
        values = []
        for handle in self.outputs:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise JobTimeoutError(f"workflow {self.workflow_id} did not finish within "
                                      f"{limit:g} s")
            values.append(handle.get(left, propagate, interval=interval))
        return values if self.many else values[0]

    def ready(self) -> bool:
        """Whether its result is known (its last jobs ended)."""
        return all(h.ready() for h in self.outputs)

    def successful(self) -> bool:
        """Whether its last jobs succeeded."""
        return all(h.successful() for h in self.outputs)

    def failed(self) -> bool:
        """Whether one of its jobs failed."""
        return any(h.failed() for h in self.jobs)

    def completed_count(self) -> int:
        """How many of its last jobs succeeded (Celery's ``GroupResult.completed_count``)."""
        return sum(h.successful() for h in self.outputs)

    @property
    def state(self) -> str:
        """Celery's state name of its result: the last job's state; for a group,
        ``FAILURE`` if a member failed, ``REVOKED`` if one was cancelled, ``SUCCESS`` when
        all succeeded, else ``STARTED`` or ``PENDING``."""
        if not self.many:
            return self.outputs[0].state
        states = {h.status() for h in self.outputs}
        for status in (JobStatus.FAILED, JobStatus.CANCELLED):
            if status in states:
                return CELERY_STATES[status]
        if states == {JobStatus.SUCCEEDED}:
            return "SUCCESS"
        return "PENDING" if states <= {JobStatus.SCHEDULED, JobStatus.QUEUED} else "STARTED"

    def cancel(self) -> None:
        """Cancel every job of the workflow that has not ended (Celery's ``revoke``)."""
        for handle in self.jobs:
            handle.cancel()


__all__ = ["Canvas", "Signature", "WorkflowHandle", "chain", "chord", "group", "plan",
           "signature"]

