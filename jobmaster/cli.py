"""The ``jobmaster`` command: worker, metrics, beat, migrate, jobs, schedules, dead-letters,
status."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click

from jobmaster.app import App
from jobmaster.config import parse_duration
from jobmaster.exceptions import JobmasterError
from jobmaster.loading import load_app

F = TypeVar("F", bound=Callable[..., Any])


def app_option(func: F) -> F:
    """The ``-A/--app`` option every command takes."""
    return click.option(
        "-A", "--app", "app_target", envvar="JOBMASTER_APP", metavar="MODULE[.ATTR|:ATTR]",
        help="The App to use: module:attr, module.attr, or a module holding one App.",
    )(func)


def _load(target: str | None) -> App:
    try:
        return load_app(target)
    except JobmasterError as exc:
        raise click.ClickException(str(exc)) from None


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


class _Group(click.Group):
    """Turns jobmaster's own errors into one clear line and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except JobmasterError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group)
@click.version_option(package_name="jobmaster")
def main() -> None:
    """jobmaster: distributed background jobs."""


@main.command()
@app_option
@click.option("-c", "--concurrency", type=click.IntRange(min=1), default=None,
              help="Processes (or threads) running jobs; default: CPU count.")
@click.option("--lane", "-Q", "--queues", "lanes", multiple=True, metavar="LANE",
              help="Serve this lane (repeatable, or comma-separated: --lane a,b; -Q as Celery); "
              "default: "
              "the app's default lane.")
@click.option("--agent", default=None, help="Name of the agent to claim from.")
@click.option("--pool", type=click.Choice(["prefork", "threads", "solo"]), default="prefork",
              show_default=True)
@click.option("--prefetch", type=click.IntRange(min=1), default=None,
              help="Jobs held per slot (running plus waiting).")
@click.option("--async-slots", type=click.IntRange(min=1), default=None,
              help="async def jobs each worker process runs at once (default 100).")
@click.option("--beat", is_flag=True, help="Also run beat (schedules, promotion) here.")
@click.option("--max-jobs-per-child", type=click.IntRange(min=1), default=None,
              help="Replace a worker process after it ran this many jobs.")
@click.option("--max-memory-per-child", type=click.IntRange(min=1), default=None,
              metavar="KIB", help="Replace a worker process once its memory passed this "
              "many KiB (checked after each job).")
@click.option("--metrics-port", type=click.IntRange(min=0, max=65535), default=None,
              metavar="PORT", help="Serve Prometheus metrics at http://0.0.0.0:PORT/metrics "
              "(needs jobmaster[metrics]).")
@click.option("--health-port", type=click.IntRange(min=0, max=65535), default=None,
              metavar="PORT", help="Answer liveness (/healthz) and readiness (/readyz) "
              "probes at http://0.0.0.0:PORT.")
@click.option("-l", "--loglevel", default="INFO", show_default=True)
def worker(app_target: str | None, concurrency: int | None, lanes: tuple[str, ...],
           agent: str | None, pool: str, prefetch: int | None, async_slots: int | None,
           beat: bool,
           max_jobs_per_child: int | None, max_memory_per_child: int | None,
           metrics_port: int | None, health_port: int | None, loglevel: str) -> None:
    """Claim jobs from an agent and run them."""
    from jobmaster.worker import Worker

    _setup_logging(loglevel)
    app = _load(app_target)
    if max_jobs_per_child is not None:
        app.config.max_jobs_per_child = max_jobs_per_child
    if max_memory_per_child is not None:
        app.config.max_memory_per_child = max_memory_per_child
    if metrics_port is not None:  # before the pool forks: its children run the same pipeline
        from jobmaster.middleware import metrics

        try:
            metrics.installed(app).serve(metrics_port, app=app, lanes=lanes)
        except OSError as exc:
            raise click.ClickException(f"--metrics-port {metrics_port}: {exc}") from None
    Worker(app, concurrency=concurrency, lanes=lanes or None, agent=agent, pool=pool,
           prefetch=prefetch, async_slots=async_slots, beat=beat,
           health_port=health_port).run()


@main.command("metrics")
@app_option
@click.option("--port", type=click.IntRange(min=0, max=65535), default=9100,
              show_default=True)
@click.option("--host", default="0.0.0.0", show_default=True,  # noqa: S104
              help="Address to listen on.")
@click.option("--lane", "lanes", multiple=True, metavar="LANE",
              help="Also measure this lane's queue depth (repeatable); the app's default "
              "lane, its routes and its definitions' lanes are always measured.")
@click.option("-l", "--loglevel", default="INFO", show_default=True)
def metrics_command(app_target: str | None, port: int, host: str, lanes: tuple[str, ...],
                    loglevel: str) -> None:
    """Serve the cluster's gauges (queue depths, workers alive) to Prometheus at /metrics,
    without running a worker (needs jobmaster[metrics])."""
    import threading

    from jobmaster.middleware.metrics import serve_cluster

    _setup_logging(loglevel)
    app = _load(app_target)
    try:
        server = serve_cluster(app, port, addr=host, lanes=lanes)
    except OSError as exc:
        raise click.ClickException(f"--port {port}: {exc}") from None
    click.echo(f"serving cluster {app.name!r} metrics at "
               f"http://{host}:{server.server_port}/metrics")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


@main.command("doctor")
@app_option
@click.option("--strict", is_flag=True, help="Exit non-zero on warnings too.")
def doctor_command(app_target: str | None, strict: bool) -> None:
    """Check a deployment: master and agents reachable, envelopes signed on shared brokers,
    Redis durable, leases longer than three heartbeats, clocks in sync with the master, a
    beat running when schedules need one, workers alive."""
    from jobmaster.doctor import diagnose, gather

    app = _load(app_target)
    findings = diagnose(gather(app))
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    for finding in findings:
        click.echo(f"{marks[finding.level]}  {finding.check:<14} {finding.message}")
    levels = {f.level for f in findings}
    if "fail" in levels or (strict and "warn" in levels):
        raise SystemExit(1)


@main.command("dashboard")
@app_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8080,
              show_default=True)
@click.option("--read-only", is_flag=True, help="Refuse every action (retry, cancel, "
              "delete, pause, trigger, requeue).")
@click.option("--root-path", default="", metavar="PATH",
              help="The path a reverse proxy serves the dashboard under, e.g. /jobs.")
@click.option("--auth", envvar="JOBMASTER_DASHBOARD_AUTH", metavar="USER:PASSWORD",
              help="Ask for HTTP basic auth (or set JOBMASTER_DASHBOARD_AUTH).")
@click.option("--poll", type=click.IntRange(min=0), default=5, show_default=True,
              metavar="SECONDS", help="How often pages refresh themselves (0: never).")
@click.option("-l", "--loglevel", default="INFO", show_default=True)
def dashboard_command(app_target: str | None, host: str, port: int, read_only: bool,
                      root_path: str, auth: str | None, poll: int, loglevel: str) -> None:
    """Serve the web dashboard (needs jobmaster[dashboard])."""
    try:
        import uvicorn

        from jobmaster.dashboard import asgi_app
    except ImportError as exc:
        raise click.ClickException(f"the dashboard needs jobmaster[dashboard] ({exc.name} "
                                   "is missing): pip install 'jobmaster[dashboard]'") from None
    _setup_logging(loglevel)
    app = _load(app_target)
    try:
        web = asgi_app(app, read_only=read_only, auth=auth, poll_seconds=poll)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    root = "/" + root_path.strip("/") if root_path.strip("/") else ""
    click.echo(f"dashboard of cluster {app.name!r} at http://{host}:{port}{root}/"
               + (" (read-only)" if read_only else "") + (" (basic auth)" if auth else ""))
    uvicorn.run(web, host=host, port=port, root_path=root, log_level=loglevel.lower(),
                access_log=False)


@main.command()
@app_option
@click.option("-l", "--loglevel", default="INFO", show_default=True)
def beat(app_target: str | None, loglevel: str) -> None:
    """Run the clock: recurring schedules, promotion of future jobs, lease reaping."""
    from jobmaster.beat import Beat

    _setup_logging(loglevel)
    app = _load(app_target)
    Beat(app).run()


@main.command()
@app_option
@click.option("--url", default=None, help="Migrate this database URL instead of the app's.")
def migrate(app_target: str | None, url: str | None) -> None:
    """Create or upgrade the master schema."""
    from jobmaster.master import Master
    from jobmaster.master.migrations import HEAD_REVISION

    if url is None:
        app = _load(app_target)
        master = app.master
    else:
        master = Master(url, auto_migrate=True)
    before = master.migrate()
    if before == HEAD_REVISION:
        click.echo(f"master schema already at revision {HEAD_REVISION}")
    else:
        click.echo(f"master schema migrated from {before or 'nothing'} to {HEAD_REVISION}")


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@main.group()
def jobs() -> None:
    """Inspect and act on jobs recorded in the master."""


def _job_filter_options(func: F) -> F:
    """The filters ``jobs list`` and ``jobs count`` share (those of ``app.jobs.list``)."""
    options = [
        click.option("--status", "statuses", multiple=True, metavar="STATUS",
                     help="Only jobs in this status (repeatable: any of them)."),
        click.option("--definition", "definition_id", default=None, metavar="ID"),
        click.option("--lane", default=None),
        click.option("--priority", default=None,
                     help="A priority name (high) or number (0-4)."),
        click.option("--metadata", "metadata", multiple=True, metavar="KEY=VALUE",
                     help="Only jobs whose metadata KEY equals VALUE (repeatable: all must "
                     "match); VALUE is read as JSON when it parses (42, true, null), else "
                     "as a string."),
        click.option("--worker", default=None, help="Only jobs last run by this worker id."),
        click.option("--since", default=None, metavar="ISO|AGE",
                     help="Only jobs created at or after this time: ISO (naive = UTC) or "
                     "an age such as 30m, 12h, 7d."),
        click.option("--until", default=None, metavar="ISO|AGE",
                     help="Only jobs created before this time: ISO or an age."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _job_filters(statuses: tuple[str, ...], definition_id: str | None, lane: str | None,
                 priority: str | None, metadata: tuple[str, ...], worker: str | None,
                 since: str | None, until: str | None) -> dict[str, Any]:
    """The keyword arguments of ``app.jobs.list``/``count`` from the command line; a bad
    value is one clear line (no usage block)."""
    from jobmaster.models import JobStatus
    from jobmaster.options import check_priority

    known = [s.value for s in JobStatus]
    for value in statuses:
        if value not in known:
            raise click.ClickException(
                f"--status {value!r} is not a status; use one of {', '.join(known)}")
    level: int | None = None
    if priority is not None:
        try:
            level = check_priority(int(priority) if priority.strip().isdigit() else priority,
                                   "--priority")
        except JobmasterError as exc:
            raise click.ClickException(str(exc)) from None
    meta: dict[str, Any] = {}
    for item in metadata:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.ClickException(
                f"--metadata {item!r} is not KEY=VALUE, e.g. --metadata tenant=acme")
        try:
            meta[key.strip()] = json.loads(raw)
        except ValueError:
            meta[key.strip()] = raw
    return {"status": list(statuses) or None, "definition_id": definition_id, "lane": lane,
            "priority": level, "metadata": meta or None, "worker": worker,
            "created_after": _moment("--since", since),
            "created_before": _moment("--until", until)}


def _moment(option: str, value: str | None) -> datetime | None:
    """A time from ``ISO`` (naive = UTC) or an age before now (``30m``, ``7d``)."""
    if value is None:
        return None
    text = value.strip()
    age = parse_duration(text) if text[-1:].isalpha() else None
    if age is not None:
        return datetime.now(UTC) - timedelta(seconds=age)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.ClickException(
            f"{option} {value!r} is neither an ISO time (2026-11-26T09:00) nor an age "
            "(30m, 12h, 7d)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


@jobs.command("list")
@app_option
@_job_filter_options
@click.option("--limit", default="50", show_default=True, metavar="N",
              help="Jobs per page (1-10000).")
@click.option("--cursor", default=None,
              help="Continue after the page that printed this cursor.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line; the next page's cursor goes to stderr as "
              '{"next_cursor": ...}.')
def jobs_list(app_target: str | None, statuses: tuple[str, ...], definition_id: str | None,
              lane: str | None, priority: str | None, metadata: tuple[str, ...],
              worker: str | None, since: str | None, until: str | None, limit: str,
              cursor: str | None, as_json: bool) -> None:
    """List jobs, newest first, one page at a time. When more jobs match, the cursor of the
    next page is printed on stderr (stdout holds only jobs): pass it as --cursor."""
    filters = _job_filters(statuses, definition_id, lane, priority, metadata, worker,
                           since, until)
    if not limit.strip().isdigit() or not 1 <= int(limit) <= 10_000:
        raise click.ClickException(f"--limit {limit!r} is not a number from 1 to 10000")
    app = _load(app_target)
    page = app.jobs.list(**filters, limit=int(limit), cursor=cursor)
    for job in page:
        if as_json:
            click.echo(json.dumps({"id": job.id, "definition_id": job.definition_id,
                                   "status": job.status.value, "lane": job.lane,
                                   "attempts": job.attempts,
                                   "created_at": _when(job.created_at)}))
        else:
            click.echo(f"{job.id}  {job.status.value:<9}  {job.definition_id:<30}  "
                       f"{job.lane:<10}  attempts={job.attempts}  {_when(job.created_at)}")
    if page.next_cursor is not None:
        if as_json:
            click.echo(json.dumps({"next_cursor": page.next_cursor}), err=True)
        else:
            click.echo(f"more: --cursor {page.next_cursor}", err=True)


@jobs.command("count")
@app_option
@_job_filter_options
@click.option("--estimate", is_flag=True,
              help="On PostgreSQL, answer a count that would take long with the database's "
                   "estimate (printed ~N).")
@click.option("--json", "as_json", is_flag=True, help='As {"count": N, "exact": true}.')
def jobs_count(app_target: str | None, statuses: tuple[str, ...], definition_id: str | None,
               lane: str | None, priority: str | None, metadata: tuple[str, ...],
               worker: str | None, since: str | None, until: str | None, estimate: bool,
               as_json: bool) -> None:
    """How many jobs match the filters (those of jobs list)."""
    filters = _job_filters(statuses, definition_id, lane, priority, metadata, worker,
                           since, until)
    app = _load(app_target)
    count = app.jobs.count(**filters, exact=not estimate)
    click.echo(json.dumps({"count": int(count), "exact": count.exact}) if as_json
               else repr(count))


@jobs.command("show")
@app_option
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="As one JSON object.")
def jobs_show(app_target: str | None, job_id: str, as_json: bool) -> None:
    """Show one job in full."""
    app = _load(app_target)
    job = app.jobs.get(job_id)
    expires_at: datetime | None = None
    if job.options is not None and job.options.expires is not None:
        expires = job.options.expires
        expires_at = (expires if isinstance(expires, datetime)
                      else datetime.fromtimestamp(expires, UTC))
    message = None
    if job.status.is_final:  # how it ended, in words: a JobResult's message, or the reason
        trail = app.jobs.history(job.id)
        if trail and trail[-1].status == job.status:
            message = trail[-1].reason
    if as_json:
        record = {
            "id": job.id, "cluster": job.cluster, "definition_id": job.definition_id,
            "message": message,
            "status": job.status.value, "lane": job.lane, "priority": int(job.priority),
            "attempts": job.attempts, "max_retries": job.max_retries,
            "timeout": job.timeout, "job_key": job.job_key, "kwargs": job.kwargs,
            "metadata": job.metadata, "created_at": _iso(job.created_at),
            "scheduled_at": _iso(job.scheduled_at), "started_at": _iso(job.started_at),
            "finished_at": _iso(job.finished_at), "expires_at": _iso(expires_at),
            "worker": job.worker, "result": job.result, "progress": job.progress,
            "progress_message": job.progress_message,
            "error": None if job.error is None else {
                "type": job.error.type, "message": job.error.message,
                "traceback": job.error.traceback},
        }
        click.echo(json.dumps(record, default=str))
        return
    rows = [
        ("id", job.id), ("definition", job.definition_id), ("status", job.status.value),
        ("lane", job.lane), ("priority", getattr(job.priority, "name", job.priority)),
        ("attempts", job.attempts),
        ("max retries", job.max_retries), ("timeout", job.timeout),
        ("arguments", json.dumps(job.kwargs, default=str)),
        ("metadata", json.dumps(job.metadata)), ("created", _when(job.created_at)),
        ("scheduled", _when(job.scheduled_at)), ("started", _when(job.started_at)),
        ("finished", _when(job.finished_at)), ("worker", job.worker or "-"),
        ("result", json.dumps(job.result, default=str)),
        ("progress", "-" if job.progress is None else f"{job.progress}% "
         f"{job.progress_message or ''}"),
    ]
    if message:
        rows.append(("message", message))
    if expires_at is not None:
        rows.append(("expires", _when(expires_at)))
    for key, value in rows:
        click.echo(f"{key:>12}: {value}")
    if job.error is not None:
        click.echo(f"{'error':>12}: {job.error.type}: {job.error.message}")
        if job.error.traceback:
            click.echo(job.error.traceback.rstrip())


@jobs.command("history")
@app_option
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def jobs_history(app_target: str | None, job_id: str, as_json: bool) -> None:
    """Show every status a job went through: when, on which worker, in which attempt,
    with the error and the reason."""
    app = _load(app_target)
    trail = app.jobs.history(job_id)
    if as_json:
        for entry in trail:
            click.echo(json.dumps(entry.to_dict()))
        return
    for entry in trail:
        line = (f"{entry.at.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]}  "
                f"{str(entry.status):<10} attempt {entry.attempt}")
        if entry.worker:
            line += f"  on {entry.worker}"
        click.echo(line)
        if entry.error is not None:
            click.echo(f"{'':25}{entry.error.type}: {entry.error.message}")
        if entry.reason:
            click.echo(f"{'':25}{entry.reason}")


@jobs.command("cancel")
@app_option
@click.argument("job_id")
def jobs_cancel(app_target: str | None, job_id: str) -> None:
    """Cancel a job that has not finished."""
    app = _load(app_target)
    click.echo(f"{job_id}: {app.jobs.cancel(job_id).value}")


@jobs.command("retry")
@app_option
@click.argument("job_id")
def jobs_retry(app_target: str | None, job_id: str) -> None:
    """Run a finished job again."""
    app = _load(app_target)
    handle = app.jobs.retry(job_id)
    click.echo(f"{handle.id}: queued")


@jobs.command("purge")
@app_option
@click.option("--status", "statuses", multiple=True,
              help="Only jobs in this status (repeatable); default: every finished status.")
@click.option("--before", default=None, metavar="ISO", help="Only jobs finished before this.")
@click.option("--older-than", default=None, metavar="AGE",
              help="Only jobs finished longer ago than 30m, 12h, 7d...")
@click.option("--definition", "definition_id", default=None)
@click.option("--force", is_flag=True,
              help="Allow unfinished statuses (queued, running...) named with --status.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def jobs_purge(app_target: str | None, statuses: tuple[str, ...], before: str | None,
               older_than: str | None, definition_id: str | None, force: bool,
               batch_size: int, yes: bool) -> None:
    """Delete jobs and their attempt history from the master for good, in batches."""
    cutoff = _cutoff(before, older_than)
    app = _load(app_target)
    selection: dict[str, Any] = {"status": list(statuses) or None, "before": cutoff,
                                 "definition_id": definition_id, "force": force}
    total = app.jobs.purge(dry_run=True, **selection)
    if not total:
        click.echo("purged 0: no job matches")
        return
    what = "/".join(statuses) if statuses else "finished"
    if not yes:
        click.confirm(f"Delete {total} {what} job(s) of cluster {app.name!r} and their "
                      "history for good?", abort=True)
    done = 0

    def progress(count: int) -> None:
        nonlocal done
        done += count
        click.echo(f"  deleted {done}/{total}")

    purged = app.jobs.purge(batch_size=batch_size, on_batch=progress, **selection)
    click.echo(f"purged {purged}")


@main.group()
def schedules() -> None:
    """Inspect and change recurring schedules."""


@schedules.command("list")
@app_option
@click.option("--all", "include_inactive", is_flag=True, help="Include inactive schedules.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def schedules_list(app_target: str | None, include_inactive: bool, as_json: bool) -> None:
    """List schedules with their next fire time."""
    app = _load(app_target)
    for s in app.schedules.list(include_inactive=include_inactive):
        if as_json:
            click.echo(json.dumps({
                "name": s.name, "definition_id": s.definition_id, "expression": s.expression,
                "timezone": s.timezone, "active": s.active, "paused": s.paused,
                "static": s.static, "kwargs": s.kwargs, "options": s.options,
                "next_fire_at": None if s.next_fire_at is None else s.next_fire_at.isoformat(),
                "last_fire_at": None if s.last_fire_at is None else s.last_fire_at.isoformat(),
            }, default=str))
            continue
        state = "inactive" if not s.active else "paused" if s.paused else "active"
        kind = "static" if s.static else "dynamic"
        click.echo(f"{s.name:<24} {state:<8} {kind:<7} {s.definition_id:<24} "
                   f"{s.expression!r} ({s.timezone})  next {_when(s.next_fire_at)}  "
                   f"last {_when(s.last_fire_at)}")


@schedules.command("pause")
@app_option
@click.argument("name")
def schedules_pause(app_target: str | None, name: str) -> None:
    """Stop a schedule from firing."""
    _load(app_target).schedules.pause(name)
    click.echo(f"{name}: paused")


@schedules.command("resume")
@app_option
@click.argument("name")
def schedules_resume(app_target: str | None, name: str) -> None:
    """Let a paused schedule fire again, from its next occurrence."""
    s = _load(app_target).schedules.resume(name)
    click.echo(f"{name}: active, next {_when(s.next_fire_at)}")


@schedules.command("delete")
@app_option
@click.argument("name")
def schedules_delete(app_target: str | None, name: str) -> None:
    """Delete a schedule (the jobs it made stay)."""
    _load(app_target).schedules.delete(name)
    click.echo(f"{name}: deleted")


@schedules.command("preview")
@click.argument("expression")
@click.option("--tz", default=None, help="Time zone (default UTC or the expression's).")
@click.option("-n", "count", type=click.IntRange(min=1, max=1000), default=5,
              show_default=True)
@click.option("--dialect",
              type=click.Choice(["auto", "jobmaster", "naturalcron", "cron", "crontab"]),
              default="auto", show_default=True,
              help="Which grammar reads EXPRESSION (auto: see docs/scheduling.md).")
def schedules_preview(expression: str, tz: str | None, count: int, dialect: str) -> None:
    """Print the next fire times of EXPRESSION and which grammar read it (no app needed)."""
    from jobmaster.schedules import Schedule

    schedule = Schedule.parse(expression, tz, dialect=dialect)  # type: ignore[arg-type]
    click.echo(schedule.describe())
    zone = schedule.tz
    for fire in schedule.next_n(datetime.now(UTC), count):
        click.echo(f"  {fire.astimezone(zone).isoformat()}  ({_when(fire)} UTC)")


def _cutoff(before: str | None, older_than: str | None) -> float | None:
    """A Unix time from ``--before ISO`` or ``--older-than 7d`` (one of them, or none)."""
    if before is not None and older_than is not None:
        raise click.ClickException("give --before or --older-than, not both")
    if before is not None:
        try:
            when = datetime.fromisoformat(before)
        except ValueError:
            raise click.ClickException(f"--before {before!r} is not an ISO date or time, "
                                       "e.g. 2026-11-26T09:00") from None
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    if older_than is not None:
        age = parse_duration(older_than)
        if age is None:
            raise click.ClickException(f"--older-than {older_than!r} is not an age such as "
                                       "30m, 12h or 7d")
        return datetime.now(UTC).timestamp() - age
    return None


_STATUSES = ("scheduled", "queued", "running", "retrying", "succeeded", "failed", "cancelled")


def _depth_buckets(app: App, workers: list[Any]) -> list[tuple[str, str]]:
    """``(agent, lane)`` pairs the app knows of, and the lanes its live workers serve."""
    return app.lanes.buckets((info.agent, info.lanes) for info in workers if info.alive)


def _status_snapshot(app: App) -> dict[str, Any]:
    """What ``jobmaster status`` shows, as JSON-ready data."""
    from datetime import timedelta

    from jobmaster.agents.base import Bucket
    from jobmaster.priority import Priority

    app.flush()
    now = datetime.now(UTC)
    counts = app.master.count_jobs(cluster=app.name)
    workers = app.workers.list()
    depth: list[dict[str, Any]] = []
    for agent_name, lane in _depth_buckets(app, workers):
        entry: dict[str, Any] = {"agent": agent_name, "lane": lane}
        try:
            agent = app.agent(agent_name)
            entry["priorities"] = {p.name: agent.length(Bucket(lane, int(p))) for p in Priority}
            entry["total"] = sum(entry["priorities"].values())
        except JobmasterError as exc:
            entry["error"] = str(exc)
        depth.append(entry)
    finished = app.master.count_finished_since(app.name, now - timedelta(minutes=1))
    return {
        "cluster": app.name, "master": app.master.dialect, "at": now.isoformat(),
        "jobs": {name: counts.get(name, 0) for name in _STATUSES},
        "depth": depth,
        "workers": {"alive": sum(1 for w in workers if w.alive),
                    "lost": sum(1 for w in workers if w.status == "lost"),
                    "seen": len(workers), "recent": [w.to_dict() for w in workers[:10]]},
        "last_minute": {"finished": sum(finished.values()),
                        "succeeded": finished.get("succeeded", 0),
                        "failed": finished.get("failed", 0),
                        "cancelled": finished.get("cancelled", 0)},
    }


def _status_text(snapshot: dict[str, Any]) -> str:
    from jobmaster.priority import Priority

    lines = [f"cluster {snapshot['cluster']!r}, master {snapshot['master']}, "
             f"at {snapshot['at'][:19].replace('T', ' ')} UTC", "jobs:"]
    lines += [f"  {name:<10} {n}" for name, n in snapshot["jobs"].items()]
    names = [p.name for p in Priority]
    lines.append("queue depth (agent/lane × priority):")
    lines.append(f"  {'':<24}" + "".join(f"{n:>10}" for n in names) + f"{'total':>10}")
    for entry in snapshot["depth"]:
        label = f"{entry['agent']}/{entry['lane']}"
        if "error" in entry:
            lines.append(f"  {label:<24}unavailable: {entry['error']}")
        else:
            lines.append(f"  {label:<24}" + "".join(f"{entry['priorities'][n]:>10}"
                                                    for n in names) + f"{entry['total']:>10}")
    w, m = snapshot["workers"], snapshot["last_minute"]
    lines.append("workers:")
    now = datetime.fromisoformat(snapshot["at"])
    for info in w["recent"]:
        age = (now - datetime.fromisoformat(info["last_seen"])).total_seconds()
        lines.append(f"  {info['id']:<40} {info['status']:<8} {info['pool'] or '?'}"
                     f"×{info['concurrency']}  seen {age:.0f}s ago, {info['processed']} "
                     f"processed, {len(info['running'])} running")
    lines.append(f"  {w['alive']} alive, {w['lost']} lost, {w['seen']} seen in all")
    lines.append(f"last minute: {m['finished']} finished ({m['succeeded']} succeeded, "
                 f"{m['failed']} failed, {m['cancelled']} cancelled)")
    return "\n".join(lines)


@main.command()
@app_option
@click.option("--watch", type=click.FloatRange(min=0.1), is_flag=False, flag_value=2.0,
              default=None, metavar="[SECONDS]",
              help="Refresh every SECONDS (default 2) until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True,
              help="As one JSON object (one per line with --watch).")
def status(app_target: str | None, watch: float | None, as_json: bool) -> None:
    """Jobs per status, queue depth per lane and priority, workers alive, and throughput
    and failures over the last minute."""
    import signal
    import threading

    app = _load(app_target)
    stop = threading.Event()
    if watch is not None:  # Ctrl-C ends the watch between two refreshes, never inside one
        signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    while not stop.is_set():
        snapshot = _status_snapshot(app)
        if as_json:
            click.echo(json.dumps(snapshot))
        else:
            if watch is not None:
                click.clear()
            click.echo(_status_text(snapshot))
        if watch is None:
            return
        stop.wait(watch)


@main.command("workers")
@app_option
@click.option("--all", "include_stopped", is_flag=True,
              help="Also stopped and lost workers.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def workers_command(app_target: str | None, include_stopped: bool, as_json: bool) -> None:
    """Workers of the cluster, most recently seen first: running and stopping ones, or
    with --all also stopped and lost ones."""
    app = _load(app_target)
    now = datetime.now(UTC)
    for info in app.workers.list(include_stopped=include_stopped):
        if as_json:
            click.echo(json.dumps(info.to_dict()))
            continue
        running = ",".join(info.running[:5]) + ("..." if len(info.running) > 5 else "")
        click.echo(
            f"{info.id}  {info.status:<8} {info.pool or '?'}×{info.concurrency}  "
            f"agent={info.agent} lanes={','.join(info.lanes)}  v{info.version or '?'}  "
            f"started {_when(info.started)}  seen {(now - info.last_seen).total_seconds():.0f}s "
            f"ago  processed={info.processed}  running={len(info.running)}"
            + (f" [{running}]" if running else ""))


@main.group("lanes", invoke_without_command=True)
@app_option
@click.pass_context
def lanes_group(ctx: click.Context, app_target: str | None) -> None:
    """Lanes: their queue depths, and pausing them (``lanes pause LANE``)."""
    ctx.obj = app_target
    if ctx.invoked_subcommand is not None:
        return
    app = _load(app_target)
    workers = app.workers.list(include_stopped=False)
    totals: dict[tuple[str, str], list[Any]] = {}
    for depth in app.lanes.depths((w.agent, w.lanes) for w in workers):
        entry = totals.setdefault((depth.agent, depth.lane), [0, depth.paused])
        entry[0] += depth.depth
    for (agent, lane), (depth, paused) in totals.items():
        click.echo(f"{lane:<24} agent={agent:<12} depth={depth:<8} "
                   f"{'paused' if paused else 'active'}")


@lanes_group.command("pause")
@click.argument("lane")
@click.pass_obj
def lanes_pause(app_target: str | None, lane: str) -> None:
    """Stop workers claiming from LANE (enqueueing still works)."""
    _load(app_target).lanes.pause(lane)
    click.echo(f"lane {lane} paused: workers stop claiming from it at their next heartbeat")


@lanes_group.command("resume")
@click.argument("lane")
@click.pass_obj
def lanes_resume(app_target: str | None, lane: str) -> None:
    """Let workers claim from LANE again."""
    _load(app_target).lanes.resume(lane)
    click.echo(f"lane {lane} resumed")


def _age(value: str, option: str) -> float:
    """Seconds from an age such as ``30s``, ``5m``, ``12h``, ``7d``, ``1w2d``."""
    age = parse_duration(value)
    if age is None:
        raise click.ClickException(f"{option} {value!r} is not an age such as 30s, 5m, 12h "
                                   "or 7d")
    return age


@main.command()
@app_option
@click.argument("definition_id")
@click.option("--kwargs", "kwargs_json", default="{}", metavar="JSON", show_default=True,
              help="The job's keyword arguments, as a JSON object.")
@click.option("--at", default=None, metavar="ISO",
              help="Run at this time (ISO 8601; without a zone: UTC).")
@click.option("--after", default=None, metavar="AGE", help="Run after 30s, 5m, 2h...")
@click.option("--lane", default=None)
@click.option("--priority", default=None, metavar="NAME|0-4",
              help="VERY_LOW, LOW, MEDIUM, HIGH, CRITICAL (or 0..4).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object, not the id.")
def enqueue(app_target: str | None, definition_id: str, kwargs_json: str, at: str | None,
            after: str | None, lane: str | None, priority: str | None, as_json: bool) -> None:
    """Enqueue a job by definition id; print its id."""
    from datetime import timedelta

    from jobmaster.priority import Priority

    try:
        kwargs = json.loads(kwargs_json)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"--kwargs is not valid JSON: {exc}") from None
    if not isinstance(kwargs, dict):
        raise click.ClickException(f"--kwargs must be a JSON object ({{\"name\": value}}), "
                                   f"not a JSON {type(kwargs).__name__}")
    if at is not None and after is not None:
        raise click.ClickException("give --at or --after, not both")
    options: dict[str, Any] = {}
    if at is not None:
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            raise click.ClickException(f"--at {at!r} is not an ISO date or time, e.g. "
                                       "2026-11-26T09:00:00+00:00") from None
        options["at"] = when if when.tzinfo else when.replace(tzinfo=UTC)
    if after is not None:
        options["after"] = timedelta(seconds=_age(after, "--after"))
    if lane is not None:
        options["lane"] = lane
    if priority is not None:
        options["priority"] = Priority.coerce(
            int(priority) if priority.strip().isdigit() else priority, "--priority")
    app = _load(app_target)
    handle = app.enqueue(definition_id, kwargs, **options)
    app.flush()
    if as_json:
        click.echo(json.dumps({"id": handle.id, "definition_id": definition_id,
                               "status": handle.status().value}))
    else:
        click.echo(handle.id)


@main.group("dead-letters")
def dead_letters() -> None:
    """Messages the agents moved aside: list, show, requeue, purge."""


@dead_letters.command("list")
@app_option
@click.option("--agent", default=None, help="Only this agent's dead letters.")
@click.option("--definition", "definition_id", default=None)
@click.option("--reason", default=None, help="Only reasons containing this text.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def dead_letters_list(app_target: str | None, agent: str | None, definition_id: str | None,
                      reason: str | None, limit: int, as_json: bool) -> None:
    """Dead letters of every agent of the app, newest first."""
    app = _load(app_target)
    for item in app.dead_letters.list(agent=agent, definition_id=definition_id,
                                      reason=reason, limit=limit):
        if as_json:
            click.echo(json.dumps(item.to_dict()))
        else:
            at = _when(datetime.fromtimestamp(item.at, UTC))
            click.echo(f"{item.id}  {item.agent:<8} {item.definition_id or '-':<24} {at}  "
                       f"{item.reason.splitlines()[0][:100] if item.reason else ''}")


@dead_letters.command("show")
@app_option
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="As one JSON object.")
def dead_letters_show(app_target: str | None, job_id: str, as_json: bool) -> None:
    """One dead letter in full: agent, definition, reason, and the body's beginning."""
    app = _load(app_target)
    item = app.dead_letters.get(job_id)
    preview = item.letter.message.body[:500].decode("utf-8", "replace")
    if as_json:
        click.echo(json.dumps({**item.to_dict(), "body_preview": preview}))
        return
    for key, value in item.to_dict().items():
        if key != "reason":
            click.echo(f"{key:>12}: {value}")
    click.echo(f"{'reason':>12}: {item.reason}")
    click.echo(f"{'body':>12}: {preview}")


@dead_letters.command("requeue")
@app_option
@click.argument("job_ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every dead letter the filters select.")
@click.option("--agent", default=None)
@click.option("--definition", "definition_id", default=None)
@click.option("--reason", default=None)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def dead_letters_requeue(app_target: str | None, job_ids: tuple[str, ...], everything: bool,
                         agent: str | None, definition_id: str | None, reason: str | None,
                         yes: bool) -> None:
    """Push dead-lettered jobs back to their agents as fresh attempts (their history in the
    master is kept): the given JOB_IDS, or with --all every one the filters select."""
    if not job_ids and not everything:
        raise click.ClickException("name the job ids to requeue, or pass --all")
    if job_ids and everything:
        raise click.ClickException("give job ids or --all, not both")
    app = _load(app_target)
    what = f"{len(job_ids)} dead letter(s)" if job_ids else "every selected dead letter"
    if not yes:
        click.confirm(f"Requeue {what} of cluster {app.name!r}?", abort=True)
    result = app.dead_letters.requeue(list(job_ids) or None, agent=agent,
                                      definition_id=definition_id, reason=reason)
    click.echo(f"requeued {int(result)}")
    for job_id, error in result.errors.items():
        click.echo(f"not requeued {job_id}: {error}", err=True)
    if result.errors and not int(result):
        sys.exit(1)


@dead_letters.command("purge")
@app_option
@click.argument("job_ids", nargs=-1)
@click.option("--agent", default=None)
@click.option("--before", default=None, metavar="ISO", help="Only dead-lettered before this.")
@click.option("--older-than", default=None, metavar="AGE", help="Only older than 30m, 7d...")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def dead_letters_purge(app_target: str | None, job_ids: tuple[str, ...], agent: str | None,
                       before: str | None, older_than: str | None, yes: bool) -> None:
    """Delete dead letters for good: the given JOB_IDS, or all (older than a time)."""
    cutoff = _cutoff(before, older_than)
    app = _load(app_target)
    if not yes:
        what = f"{len(job_ids)} dead letter(s)" if job_ids else "dead letters"
        click.confirm(f"Delete {what} of cluster {app.name!r} for good?", abort=True)
    count = app.dead_letters.purge(list(job_ids) or None, before=cutoff, agent=agent)
    click.echo(f"purged {count}")


@main.command("definitions")
@app_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def definitions_command(app_target: str | None, as_json: bool) -> None:
    """Job definitions the cluster's workers registered in the master, by id: lanes,
    parameters, options and when last seen."""
    app = _load(app_target)
    now = datetime.now(UTC)
    for d in app.definitions.list():
        if as_json:
            click.echo(json.dumps(d.to_dict()))
            continue
        options = " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(d.options.items()))
        click.echo(f"{d.id}{d.signature}  lanes={','.join(d.lanes)}"
                   + (f"  {options}" if options else "")
                   + f"  seen {(now - d.last_seen).total_seconds():.0f}s ago on {d.worker}")


if __name__ == "__main__":  # pragma: no cover
    main()
