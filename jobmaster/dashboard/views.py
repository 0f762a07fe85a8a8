"""The dashboard's pages and actions: Starlette routes rendering Jinja2 templates from the
master (and the agents, for queue depths and dead letters)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from jobmaster.dashboard import charts, reads, security
from jobmaster.exceptions import JobmasterError
from jobmaster.jobs import JobCount
from jobmaster.models import Job, JobStatus
from jobmaster.priority import Priority

if TYPE_CHECKING:
    from jobmaster.app import App

log = logging.getLogger("jobmaster.dashboard")

HERE = Path(__file__).parent
PAGE_SIZE = 50
BULK_CAP = 10_000
"""The most jobs one bulk action on a whole filter touches."""
MINUTES = 60
"""Minutes the overview's charts show."""

Redact = Callable[[Job[Any] | None, Any], Any]
"""``redact(job, kwargs) -> kwargs``: what the job page shows of a job's arguments (and the
schedule page of a schedule's, with ``job=None``)."""

_SECRET = re.compile(r"pass|secret|token|key|auth|credential|cookie|session", re.I)
_HIDDEN = "•••"


def redact_secrets(job: Job[Any] | None, kwargs: Any) -> Any:
    """The default ``redact``: values under keys that look secret (password, token, api
    key...) are hidden, at any depth."""
    if isinstance(kwargs, Mapping):
        return {k: _HIDDEN if isinstance(k, str) and _SECRET.search(k) else
                redact_secrets(job, v) for k, v in kwargs.items()}
    if isinstance(kwargs, list | tuple):
        return [redact_secrets(job, v) for v in kwargs]
    return kwargs


@dataclass
class Dashboard:
    """One dashboard over one app (``asgi_app`` builds it)."""

    app: App
    read_only: bool = False
    authorize: security.Authorize | None = None
    redact: Redact = redact_secrets
    poll_seconds: int = 5

    def __post_init__(self) -> None:
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
            undefined=jinja2.StrictUndefined)
        self.templates.filters.update(ago=_ago, when=_when, duration=_duration,
                                      priority=_priority, pretty=_pretty)

    # -- plumbing ------------------------------------------------------------------------
    def routes(self) -> list[Any]:
        page = self._page
        act = self._action
        return [
            Route("/", page("overview", self.overview)),
            Route("/jobs", page("jobs", self.jobs)),
            Route("/jobs/bulk", act("bulk", self.bulk), methods=["POST"]),
            Route("/jobs/{job_id}", page("job", self.job)),
            Route("/jobs/{job_id}/{verb:str}", act("job", self.job_action), methods=["POST"]),
            Route("/schedules", page("schedules", self.schedules)),
            Route("/schedules/{name:path}/{verb:str}", act("schedule", self.schedule_action),
                  methods=["POST"]),
            Route("/schedules/{name:path}", page("schedule", self.schedule)),
            Route("/workers", page("workers", self.workers)),
            Route("/lanes", page("lanes", self.lanes)),
            Route("/lanes/{lane}/{verb:str}", act("lane", self.lane_action), methods=["POST"]),
            Route("/dead-letters", page("dead_letters", self.dead_letters)),
            Route("/dead-letters/requeue", act("dead_letters", self.requeue),
                  methods=["POST"]),
            Route("/definitions", page("definitions", self.definitions)),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]

    def _page(self, name: str, build: Callable[[Request], dict[str, Any]]
              ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not await security.allowed(self.authorize, request, "view", name):
                raise HTTPException(403, "not allowed to view this page")
            context = await run_in_threadpool(build, request)
            return self.render(request, name, context)
        return endpoint

    def _action(self, kind: str, run: Callable[[Request, FormData], str]
                ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            form = await request.form()
            if self.read_only:
                raise HTTPException(403, "this dashboard is read-only")
            if not security.csrf_ok(request, _text(form.get(security.CSRF_FIELD))):
                raise HTTPException(403, "missing or wrong CSRF token: reload the page and "
                                         "try again")
            verb = request.path_params.get("verb") or _text(form.get("action")) or kind
            target = (request.path_params.get("job_id") or request.path_params.get("name")
                      or request.path_params.get("lane") or kind)
            if not await security.allowed(self.authorize, request, verb, target):
                raise HTTPException(403, f"not allowed to {verb} {target}")
            try:
                answer = await run_in_threadpool(run, request, form)
            except JobmasterError as exc:
                answer = "!" + str(exc)
            if answer.startswith("<"):  # a page to show (a confirmation)
                return security.finish(request, HTMLResponse(answer))
            back = _text(form.get("next")) or ""
            if not back.startswith("/") or back.startswith("//"):
                back = "/"
            flash = urlencode({"flash": answer})
            return security.finish(request, RedirectResponse(
                f"{_root(request)}{back}{'&' if '?' in back else '?'}{flash}", 303))
        return endpoint

    def render(self, request: Request, name: str, context: dict[str, Any],
               status: int = 200) -> Response:
        html = self.html(request, name, context)
        return security.finish(request, HTMLResponse(html, status_code=status))

    def html(self, request: Request, name: str, context: dict[str, Any]) -> str:
        """Template ``name`` rendered with ``context`` and what every page shows."""
        base = {
            "root": _root(request), "page": name, "csrf": security.csrf_token(request),
            "read_only": self.read_only, "poll": self.poll_seconds,
            "cluster": self.app.name, "now": datetime.now(UTC),
            "flash": request.query_params.get("flash", ""), "statuses": list(JobStatus),
            "priorities": list(Priority), "request": request,
        }
        return self.templates.get_template(f"{name}.html").render(**base, **context)

    # -- pages ---------------------------------------------------------------------------
    def overview(self, request: Request) -> dict[str, Any]:
        app = self.app
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        minutes = app.master.stats_minutes(app.name, since=now - timedelta(minutes=MINUTES - 1),
                                           until=now)
        labels = [m.minute.strftime("%H:%M") for m in minutes]
        throughput = charts.bars([
            charts.Series("succeeded", "ok", [m.succeeded for m in minutes]),
            charts.Series("retried", "warn", [m.retried for m in minutes]),
            charts.Series("failed", "bad", [m.failed for m in minutes]),
        ], labels, title="Jobs ended per minute")
        wait = charts.line([
            charts.Series("queue wait", "ok", [m.mean_wait for m in minutes]),
            charts.Series("run time", "info", [m.mean_run for m in minutes]),
        ], labels, title="Mean queue wait and run time per minute", unit=" s")
        workers = app.workers.list(include_stopped=False)
        queues = self._queues(workers)
        last = minutes[-2] if len(minutes) > 1 else None  # the last whole minute
        return {"throughput": throughput, "wait": wait, "queues": queues,
                "workers_alive": sum(1 for w in workers if w.alive),
                "slots": sum(w.concurrency for w in workers if w.alive),
                "last": last, "counts": self._counts()}

    def _counts(self) -> list[tuple[str, JobCount]]:
        return [(status.value, self.app.jobs.count(status=status, exact=False))
                for status in (JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.RUNNING,
                               JobStatus.RETRYING, JobStatus.FAILED)]

    def _queues(self, workers: list[Any]) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        depths = [d for d in self.app.lanes.depths((w.agent, w.lanes) for w in workers
                                                   if w.alive) if d.depth]
        oldest = reads.oldest_due(self.app, [(d.lane, d.priority) for d in depths])
        out = []
        for depth in depths:
            due = oldest.get((depth.lane, depth.priority))
            out.append({"agent": depth.agent, "lane": depth.lane,
                        "priority": depth.priority, "depth": depth.depth,
                        "paused": depth.paused,
                        "oldest_age": None if due is None else
                        max(0.0, (now - due).total_seconds())})
        return out

    def jobs(self, request: Request) -> dict[str, Any]:
        query = request.query_params
        q = (query.get("q") or "").strip()
        if q:
            found = self.app.jobs.find(q)
            if found is not None:
                raise _Redirect(f"/jobs/{found.id}")
        form = _job_form(query)
        page: list[Job[Any]]
        try:
            filters = _job_filters(form)
            page = self.app.jobs.list(**filters, limit=PAGE_SIZE, cursor=query.get("cursor"))
            count = self.app.jobs.count(**filters, exact=False)
            error = ""
        except (JobmasterError, ValueError) as exc:
            page, count, error = [], JobCount(0, True), str(exc)
        if q and not error:
            error = f"no job {q!r}"
        next_url = None
        cursor = getattr(page, "next_cursor", None)
        if cursor:
            next_url = "/jobs?" + urlencode({**_form_query(form), "cursor": cursor})
        definitions = sorted({*self.app.definitions,
                              *(d.id for d in self._registered())})
        return {"jobs": page, "count": count, "form": form, "error": error,
                "next_url": next_url, "definitions": definitions,
                "here": "/jobs?" + urlencode(_form_query(form)),
                "first": not query.get("cursor"), "query": _form_query(form)}

    def job(self, request: Request) -> dict[str, Any]:
        job_id = request.path_params["job_id"]
        job = self.app.jobs.find(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id} in cluster {self.app.name}")
        history = self.app.jobs.history(job_id)
        return {"job": job, "history": history, "kwargs": self._shown(job, job.kwargs),
                "related": reads.related(self.app, job_id),
                "can_retry": job.status.is_final,
                "can_cancel": not job.status.is_final,
                "can_delete": job.status.value in reads.DELETABLE}

    def schedules(self, request: Request) -> dict[str, Any]:
        items = []
        for schedule in self.app.schedules.list(include_inactive=True):
            items.append({"s": schedule, "words": _describe(schedule.schedule)})
        return {"schedules": items}

    def schedule(self, request: Request) -> dict[str, Any]:
        name = request.path_params["name"]
        try:
            schedule = self.app.schedules.get(name)
        except JobmasterError as exc:
            raise HTTPException(404, str(exc)) from None
        upcoming: list[datetime] = []
        if schedule.active and not schedule.paused:
            upcoming = schedule.schedule.next_n(datetime.now(UTC), 5)
        return {"s": schedule, "words": _describe(schedule.schedule), "upcoming": upcoming,
                "runs": reads.schedule_runs(self.app, name),
                "kwargs": self._shown(None, schedule.kwargs)}

    def _shown(self, job: Job[Any] | None, kwargs: Any) -> Any:
        """Arguments as the page may show them: through ``redact`` (``job`` is ``None``
        for a schedule's arguments); a hook that fails hides them all."""
        try:
            return self.redact(job, kwargs)
        except Exception as exc:  # noqa: BLE001 - a bad hook must not hide the page
            log.warning("dashboard redact hook failed: %s", type(exc).__name__)
            return _HIDDEN

    def workers(self, request: Request) -> dict[str, Any]:
        everyone = self.app.workers.list(include_stopped=True)
        return {"alive": [w for w in everyone if w.alive],
                "gone": [w for w in everyone if not w.alive][:50]}

    def lanes(self, request: Request) -> dict[str, Any]:
        workers = self.app.workers.list(include_stopped=False)
        table: dict[tuple[str, str], dict[str, Any]] = {}
        for depth in self.app.lanes.depths((w.agent, w.lanes) for w in workers if w.alive):
            row = table.setdefault((depth.agent, depth.lane), {
                "agent": depth.agent, "lane": depth.lane, "paused": depth.paused,
                "by_priority": {}, "total": 0,
                "workers": sum(1 for w in workers if w.alive and depth.lane in w.lanes)})
            row["by_priority"][depth.priority] = depth.depth
            row["total"] += depth.depth
        return {"lanes": list(table.values())}

    def dead_letters(self, request: Request) -> dict[str, Any]:
        query = request.query_params
        definition = query.get("definition") or None
        reason = query.get("reason") or None
        items = self.app.dead_letters.list(definition_id=definition, reason=reason, limit=200)
        return {"letters": [{"item": i, "preview": _preview(i)} for i in items],
                "form": {"definition": definition or "", "reason": reason or ""}}

    def definitions(self, request: Request) -> dict[str, Any]:
        registered = {d.id: d for d in self._registered()}
        local = self.app.definitions
        rows = []
        for definition_id in sorted({*local, *registered}):
            reg = registered.get(definition_id)
            here = local.get(definition_id)
            lane = (here.options.lane if here else None) or \
                (reg.options.get("lane") if reg else None) or self.app.config.default_lane
            rows.append({"id": definition_id, "registered": reg, "lane": lane,
                         "signature": reg.signature if reg else "",
                         "options": reg.options if reg else {}})
        return {"definitions": rows}

    def _registered(self) -> list[Any]:
        try:
            return list(self.app.definitions.list())
        except JobmasterError:
            return []

    # -- actions -------------------------------------------------------------------------
    def job_action(self, request: Request, form: FormData) -> str:
        job_id, verb = request.path_params["job_id"], request.path_params["verb"]
        if verb == "retry":
            self.app.jobs.retry(job_id)
            return f"job {job_id} queued again"
        if verb == "cancel":
            status = self.app.jobs.cancel(job_id)
            return f"job {job_id} is {status.value}"
        if verb == "delete":
            if not reads.delete_jobs(self.app, [job_id]):
                return f"!job {job_id} was not deleted: only finished or scheduled jobs are"
            return f"job {job_id} deleted"
        raise HTTPException(404, f"no action {verb!r} on jobs")

    def bulk(self, request: Request, form: FormData) -> str:
        verb = _text(form.get("action"))
        if verb not in ("retry", "cancel", "delete"):
            raise HTTPException(400, "action must be retry, cancel or delete")
        if form.get("scope") == "filter":
            shown = _job_form(form)
            filters = _job_filters(shown)
            count = self.app.jobs.count(**filters, exact=False)
            if form.get("confirmed") != "yes":
                return self.html(request, "confirm", {
                    "verb": verb, "count": count, "cap": BULK_CAP,
                    "form": _form_query(shown), "next": _text(form.get("next")) or "/jobs"})
            ids = reads.ids_matching(self.app, filters, BULK_CAP)
        else:
            ids = _ids(form)[:BULK_CAP]
        if not ids:
            return "!nothing selected"
        done, refused = 0, 0
        if verb == "delete":
            done = reads.delete_jobs(self.app, ids)
            refused = len(ids) - done
        for job_id in ids if verb != "delete" else ():
            try:
                if verb == "retry":
                    self.app.jobs.retry(job_id)
                else:
                    self.app.jobs.cancel(job_id)
                done += 1
            except JobmasterError:
                refused += 1
        past = {"retry": "queued again", "cancel": "cancelled", "delete": "deleted"}[verb]
        return f"{done} job(s) {past}" + (f", {refused} left as they were" if refused else "")

    def schedule_action(self, request: Request, form: FormData) -> str:
        name, verb = request.path_params["name"], request.path_params["verb"]
        if verb == "pause":
            self.app.schedules.pause(name)
            return f"schedule {name} paused"
        if verb == "resume":
            self.app.schedules.resume(name)
            return f"schedule {name} resumed"
        if verb == "trigger":
            handle = self.app.schedules.trigger(name)
            return f"schedule {name} triggered: job {handle.id}"
        raise HTTPException(404, f"no action {verb!r} on schedules")

    def lane_action(self, request: Request, form: FormData) -> str:
        lane, verb = request.path_params["lane"], request.path_params["verb"]
        if verb == "pause":
            self.app.lanes.pause(lane)
            return f"lane {lane} paused"
        if verb == "resume":
            self.app.lanes.resume(lane)
            return f"lane {lane} resumed"
        raise HTTPException(404, f"no action {verb!r} on lanes")

    def requeue(self, request: Request, form: FormData) -> str:
        ids = _ids(form)
        if form.get("scope") == "all":
            result = self.app.dead_letters.requeue()
        elif ids:
            result = self.app.dead_letters.requeue(ids)
        else:
            return "!nothing selected"
        errors = getattr(result, "errors", {})
        return f"{int(result)} dead letter(s) requeued" + (
            f", {len(errors)} could not be: " + "; ".join(
                f"{k}: {v}" for k, v in list(errors.items())[:3]) if errors else "")


class _Redirect(Exception):  # noqa: N818 - a control-flow signal, not an error
    def __init__(self, path: str) -> None:
        self.path = path


def build(dashboard: Dashboard) -> Starlette:
    """The Starlette application serving ``dashboard``."""

    async def not_found(request: Request, exc: Exception) -> Response:
        code = getattr(exc, "status_code", 500)
        detail = getattr(exc, "detail", "") or "not found"
        return dashboard.render(request, "error", {"code": code, "detail": detail}, code)

    async def redirect(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _Redirect)
        return security.finish(request, RedirectResponse(_root(request) + exc.path, 303))

    return Starlette(routes=dashboard.routes(),
                     exception_handlers={HTTPException: not_found, _Redirect: redirect})


# -- helpers -------------------------------------------------------------------------------
_FILTERS = ("status", "definition", "lane", "priority", "worker", "meta", "since", "until")


def _job_form(query: Mapping[str, Any]) -> dict[str, str]:
    """The jobs filter form's values, as typed, from a query string or a posted form."""
    return {k: (_text(query.get(k)) or "").strip() for k in _FILTERS}


def _job_filters(form: Mapping[str, str]) -> dict[str, Any]:
    """The ``app.jobs.list`` filters the form asks for; a value that does not parse is
    refused with ``ValueError``."""
    filters: dict[str, Any] = {}
    if form["status"]:
        filters["status"] = form["status"]
    if form["definition"]:
        filters["definition_id"] = form["definition"]
    if form["lane"]:
        filters["lane"] = form["lane"]
    if form["priority"]:  # the form's select sends the number ("3"); a name works too
        value = form["priority"]
        filters["priority"] = int(value) if value.isdigit() else value
    if form["worker"]:
        filters["worker"] = form["worker"]
    if form["meta"]:
        key, sep, value = form["meta"].partition("=")
        if not sep or not key.strip():
            raise ValueError("metadata filter must be KEY=VALUE (a JSON value, or text)")
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        filters["metadata"] = {key.strip(): parsed}
    for name, key in (("since", "created_after"), ("until", "created_before")):
        if form[name]:
            filters[key] = _moment(form[name])
    return filters


def _moment(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date and time such as 2026-11-26T08:00") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _form_query(form: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in form.items() if v}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _ids(form: FormData) -> list[str]:
    return [i for i in form.getlist("ids") if isinstance(i, str) and i]


def _root(request: Request) -> str:
    return str(request.scope.get("root_path") or "").rstrip("/")


def _describe(schedule: Any) -> str:
    try:
        return str(schedule.describe())
    except Exception:  # noqa: BLE001 - words are a courtesy
        return ""


def _preview(item: Any) -> str:
    body = bytes(item.letter.message.body[:300])
    text = body.decode("utf-8", "replace")
    return text if len(item.letter.message.body) <= 300 else text + "…"


def _ago(value: datetime | float | None) -> str:
    if value is None:
        return "—"
    seconds = value if isinstance(value, int | float) else \
        (datetime.now(UTC) - value).total_seconds()
    return _duration(seconds) + " ago" if seconds >= 0 else "in " + _duration(-seconds)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def _when(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _priority(value: int) -> str:
    try:
        return Priority(value).name.lower().replace("_", " ")
    except ValueError:
        return str(value)


def _pretty(value: Any) -> str:
    try:
        return json.dumps(value, indent=2, default=repr, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


__all__ = ["BULK_CAP", "Dashboard", "Redact", "build", "redact_secrets"]
