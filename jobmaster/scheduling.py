"""``app.schedules``: recurring schedules stored in the master.

Static schedules are declared in code with ``app.recurring(...)`` (no I/O) and written to
the master by beat when it starts leading; static schedules no longer declared are made
inactive, their history kept. Dynamic schedules are created at runtime with
``job.recurring(...)`` or ``app.schedules.create(...)`` and persisted at once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from jobmaster.definitions import JobDefinition
from jobmaster.exceptions import (
    ConfigurationError,
    InvalidOptionError,
    ScheduleError,
    ScheduleNotFoundError,
)
from jobmaster.host import AppResources
from jobmaster.ids import new_job_id
from jobmaster.jobs import JobHandle, JobsAPI
from jobmaster.master.timestamps import utcnow
from jobmaster.options import NO_OPTIONS, OPTIONS, JobOptions, duration
from jobmaster.schedules import MisfirePolicy, OverlapPolicy, Schedule, first_fire
from jobmaster.serialization import encode_arguments

if TYPE_CHECKING:
    from jobmaster.producer import Producer

_SCHEDULE_OPTIONS = ("tz", "start", "end", "misfire", "misfire_cap", "overlap", "continuous")


class SchedulesHost(AppResources, Protocol):
    """What ``app.schedules`` needs from its app."""

    definitions: dict[str, JobDefinition[Any, Any]]
    static_schedules: dict[str, dict[str, Any]]

    @property
    def producer(self) -> Producer: ...

    @property
    def jobs(self) -> JobsAPI: ...


def stored_job_options(row_options: Mapping[str, Any]) -> JobOptions:
    """The job options a stored schedule gives its occurrences."""
    return JobOptions.build({k: v for k, v in row_options.items() if k in OPTIONS})


@dataclass(frozen=True, slots=True)
class RecurringSchedule:
    """A recurring schedule as the master holds it."""

    name: str
    definition_id: str
    expression: str
    timezone: str
    kwargs: dict[str, Any]
    options: dict[str, Any]
    static: bool
    active: bool
    paused: bool
    start_at: datetime | None
    end_at: datetime | None
    next_fire_at: datetime | None
    last_fire_at: datetime | None
    created_at: datetime
    updated_at: datetime
    schedule: Schedule = field(repr=False, compare=False)

    @property
    def misfire(self) -> MisfirePolicy:
        """What to do with occurrences missed while no beat was leading."""
        return MisfirePolicy(self.options.get("misfire", MisfirePolicy.RUN_ONCE.value))

    @property
    def overlap(self) -> OverlapPolicy:
        """Whether an occurrence may start while the previous one still runs."""
        return OverlapPolicy(self.options.get("overlap", OverlapPolicy.ALLOW.value))


def _aware(value: datetime | None, argument: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ConfigurationError(f"{argument}={value!r} must be a datetime")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class SchedulesAPI:
    """Create, inspect and change the recurring schedules of one app's cluster."""

    def __init__(self, app: SchedulesHost) -> None:
        self._app = app

    # -- validation ------------------------------------------------------------------------
    def _prepare(
        self,
        expression: str | timedelta,
        job: JobDefinition[Any, Any] | str,
        *,
        name: str,
        kwargs: Mapping[str, Any] | None,
        static: bool,
        options: Mapping[str, Any],
    ) -> dict[str, Any]:
        app = self._app
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise ScheduleError(f"name={name!r} must be a non-empty str of at most 200 "
                                "characters")
        unknown = set(options) - set(OPTIONS) - set(_SCHEDULE_OPTIONS) - {"timezone"}
        if unknown:
            raise ScheduleError(
                f"schedule {name!r}: unknown option(s) {sorted(unknown)}; schedules take "
                f"{', '.join((*OPTIONS, *_SCHEDULE_OPTIONS))}"
            )
        if isinstance(job, JobDefinition):
            definition: JobDefinition[Any, Any] | None = job
            definition_id = job.definition_id
        elif isinstance(job, str):
            definition = app.definitions.get(job)
            definition_id = job
        else:
            raise ScheduleError(f"schedule {name!r}: job must be a job definition or its id, "
                                f"not {type(job).__name__}")
        values = definition.bind((), kwargs) if definition is not None else dict(kwargs or {})
        tz = options.get("tz", options.get("timezone")) or app.config.timezone
        start = _aware(options.get("start"), "start")
        end = _aware(options.get("end"), "end")
        schedule = Schedule.parse(expression, tz, start=start, end=end)
        job_options = JobOptions.build({k: v for k, v in options.items() if k in OPTIONS})
        stored: dict[str, Any] = job_options.given()
        for key, value in stored.items():
            if isinstance(value, datetime):
                raise ScheduleError(f"schedule {name!r}: {key} must be seconds (relative to each "
                                    "occurrence), not a datetime")
        if job_options.agent is not None and job_options.agent not in app.config.agents:
            raise ConfigurationError(f"agent={job_options.agent!r} is not one of "
                                     f"{sorted(app.config.agents)}")
        try:
            stored["misfire"] = MisfirePolicy(options.get("misfire", "run_once")).value
            stored["overlap"] = OverlapPolicy(options.get("overlap", "allow")).value
        except ValueError:
            raise ScheduleError(
                f"schedule {name!r}: misfire must be one of run_once, skip, run_all and "
                "overlap one of allow, skip"
            ) from None
        cap = options.get("misfire_cap", 100)
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            raise ScheduleError(f"misfire_cap={cap!r} must be an int >= 1")
        stored["misfire_cap"] = cap
        if options.get("continuous") is not None:
            stored["continuous"] = _continuous(name, options["continuous"])
        payload = encode_arguments(app.serializer, definition_id, values,
                                   app.config.max_payload_bytes)
        now = utcnow()
        return {
            "id": new_job_id(),
            "cluster": app.name,
            "name": name,
            "definition_id": definition_id,
            "expression": expression if isinstance(expression, str) else
            f"{int(expression.total_seconds())}s",
            "timezone": schedule.tz.key,
            "encoding": app.serializer.name,
            "payload": payload,
            "options": stored,
            "static": static,
            "active": True,
            "paused": False,
            "start_at": start,
            "end_at": end,
            "next_fire_at": now if "continuous" in stored else
            first_fire(schedule, start=start, now=now),
            "created_at": now,
            "updated_at": now,
        }

    # -- static (declared in code) ------------------------------------------------------------
    def declare_static(self, expression: str | timedelta, job: JobDefinition[Any, Any] | str,
                       *, name: str, kwargs: Mapping[str, Any] | None = None,
                       **options: Any) -> None:
        """Remember a schedule declared in code; validated now, stored when beat starts."""
        row = self._prepare(expression, job, name=name, kwargs=kwargs, static=True,
                            options=options)
        self._app.static_schedules[name] = row

    def sync_static(self) -> tuple[list[str], list[str]]:
        """Write the declared static schedules to the master and deactivate the static ones
        no longer declared. Returns (names written, names deactivated). A schedule whose
        expression, arguments and options are unchanged keeps its next fire time."""
        master = self._app.master
        written: list[str] = []
        for name, row in self._app.static_schedules.items():
            existing = master.schedule_by_name(self._app.name, name)
            if existing is not None and existing["active"] and _same(existing, row):
                continue
            values = dict(row)
            values["updated_at"] = utcnow()
            if existing is not None and existing["paused"]:
                values["paused"] = True
            master.save_schedule(values)
            written.append(name)
        gone = master.deactivate_static_schedules(self._app.name, self._app.static_schedules)
        return written, gone

    # -- dynamic ---------------------------------------------------------------------------
    def create(self, expression: str | timedelta, job: JobDefinition[Any, Any] | str, *,
               name: str, kwargs: Mapping[str, Any] | None = None, static: bool = False,
               **options: Any) -> RecurringSchedule:
        """Create (or replace) a schedule now, persisted in the master."""
        row = self._prepare(expression, job, name=name, kwargs=kwargs, static=static,
                            options=options)
        self._app.master.save_schedule(row)
        return self.get(name)

    def get(self, name: str) -> RecurringSchedule:
        """One schedule; ``ScheduleNotFoundError`` if there is none by that name."""
        row = self._app.master.schedule_by_name(self._app.name, name)
        if row is None:
            raise ScheduleNotFoundError(f"no schedule {name!r} in cluster {self._app.name!r}")
        return self._record(row)

    def list(self, *, include_inactive: bool = False) -> list[RecurringSchedule]:
        """Schedules of this cluster by name (inactive static ones only if asked)."""
        rows = self._app.master.list_schedules(self._app.name, include_inactive=include_inactive)
        return [self._record(r) for r in rows]

    def update(self, name: str, *, expression: str | timedelta | None = None,
               kwargs: Mapping[str, Any] | None = None, **options: Any) -> RecurringSchedule:
        """Change a schedule's expression, arguments or options; the next fire time is
        computed again from now."""
        current = self.get(name)
        merged_options: dict[str, Any] = dict(current.options)
        merged_options.pop("misfire_cap", None)
        merged_options.update(options)
        merged_options.setdefault("tz", current.timezone)
        if current.start_at is not None:
            merged_options.setdefault("start", current.start_at)
        if current.end_at is not None:
            merged_options.setdefault("end", current.end_at)
        if "misfire_cap" in current.options and "misfire_cap" not in options:
            merged_options["misfire_cap"] = current.options["misfire_cap"]
        row = self._prepare(expression if expression is not None else current.expression,
                            current.definition_id, name=name,
                            kwargs=kwargs if kwargs is not None else current.kwargs,
                            static=current.static, options=merged_options)
        row["paused"] = current.paused
        self._app.master.save_schedule(row)
        return self.get(name)

    def pause(self, name: str) -> RecurringSchedule:
        """Stop firing until resumed."""
        if not self._app.master.update_schedule(self._app.name, name, paused=True):
            raise ScheduleNotFoundError(f"no schedule {name!r} in cluster {self._app.name!r}")
        return self.get(name)

    def resume(self, name: str) -> RecurringSchedule:
        """Fire again, from the next occurrence after now (missed ones are skipped)."""
        current = self.get(name)
        next_fire = first_fire(current.schedule, start=current.start_at, now=utcnow())
        self._app.master.update_schedule(self._app.name, name, paused=False,
                                         next_fire_at=next_fire)
        return self.get(name)

    def trigger(self, name: str) -> JobHandle[Any]:
        """Run a schedule's job once now, with its arguments and options, outside its
        occurrences (its next fire time is unchanged); the job's metadata names the
        schedule (``{"schedule": name}``)."""
        current = self.get(name)
        app, producer = self._app, self._app.producer
        definition = app.definitions.get(current.definition_id)
        metadata = {**(current.options.get("metadata") or {}), "schedule": name}
        call = stored_job_options({**current.options, "metadata": metadata})
        now = time.time()
        env = producer.build(current.definition_id, current.kwargs, producer.options(
            definition.options if definition is not None else NO_OPTIONS, call, now),
            now=now, due=now, schedule_name=name)  # among the schedule's runs, no occurrence
        producer.dispatch([app.pipeline.enqueueing(env)])
        return app.jobs.handle(env.id, current.definition_id)

    def delete(self, name: str) -> None:
        """Delete a schedule; the jobs it created stay in the master."""
        if not self._app.master.delete_schedule(self._app.name, name):
            raise ScheduleNotFoundError(f"no schedule {name!r} in cluster {self._app.name!r}")

    def _record(self, row: Mapping[Any, Any]) -> RecurringSchedule:
        serializer = self._app.serializers.get(row["encoding"])
        kwargs = serializer.loads(bytes(row["payload"])) if serializer else {}
        return RecurringSchedule(
            name=row["name"], definition_id=row["definition_id"],
            expression=row["expression"], timezone=row["timezone"], kwargs=kwargs,
            options=dict(row["options"] or {}), static=bool(row["static"]),
            active=bool(row["active"]), paused=bool(row["paused"]),
            start_at=row["start_at"], end_at=row["end_at"],
            next_fire_at=row["next_fire_at"], last_fire_at=row["last_fire_at"],
            created_at=row["created_at"], updated_at=row["updated_at"],
            schedule=parse_stored(row),
        )


def parse_stored(row: Mapping[Any, Any]) -> Schedule:
    """The ``Schedule`` of a stored row."""
    return Schedule.parse(row["expression"], row["timezone"], start=row["start_at"],
                          end=row["end_at"])


def _same(existing: Mapping[Any, Any], declared: Mapping[str, Any]) -> bool:
    return (existing["expression"] == declared["expression"]
            and existing["timezone"] == declared["timezone"]
            and existing["definition_id"] == declared["definition_id"]
            and bytes(existing["payload"]) == declared["payload"]
            and dict(existing["options"] or {}) == declared["options"]
            and existing["start_at"] == declared["start_at"]
            and existing["end_at"] == declared["end_at"]
            and bool(existing["static"]))


def _continuous(name: str, value: Any) -> dict[str, Any]:
    """The checked ``continuous`` option of a schedule: ``{"interval": seconds,
    "iterations": n or None}``."""
    if not isinstance(value, Mapping):
        raise ScheduleError(f"schedule {name!r}: continuous must be a dict")
    interval, iterations = value.get("interval"), value.get("iterations")
    try:
        seconds = duration(interval, "interval", allow_zero=True)
    except InvalidOptionError as exc:
        raise ScheduleError(f"schedule {name!r}: {exc}") from None
    if iterations is not None and (not isinstance(iterations, int)
                                   or isinstance(iterations, bool) or iterations < 1):
        raise ScheduleError(f"schedule {name!r}: iterations={iterations!r} must be an int >= 1 "
                            "(or None: for ever)")
    return {"interval": seconds, "iterations": iterations}
