"""The ``jobmaster`` command: worker, metrics, beat, migrate, jobs, schedules, dead-letters,
status."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from jobmaster.app import App
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
@click.option("--lane", "lanes", multiple=True, metavar="LANE",
              help="Serve this lane (repeatable, or comma-separated: --lane a,b); default: "
              "the app's default lane.")
@click.option("--agent", default=None, help="Name of the agent to claim from.")
@click.option("--pool", type=click.Choice(["prefork", "threads", "solo"]), default="prefork",
              show_default=True)
@click.option("--prefetch", type=click.IntRange(min=1), default=None,
              help="Jobs held per slot (running plus waiting).")
@click.option("--beat", is_flag=True, help="Also run beat (schedules, promotion) here.")
@click.option("--max-jobs-per-child", type=click.IntRange(min=1), default=None,
              help="Replace a worker process after it ran this many jobs.")
@click.option("--max-memory-per-child", type=click.IntRange(min=1), default=None,
              metavar="KIB", help="Replace a worker process once its memory passed this "
              "many KiB (checked after each job).")
@click.option("--metrics-port", type=click.IntRange(min=0, max=65535), default=None,
              metavar="PORT", help="Serve Prometheus metrics at http://0.0.0.0:PORT/metrics "
              "(needs jobmaster[metrics]).")
@click.option("-l", "--loglevel", default="INFO", show_default=True)
def worker(app_target: str | None, concurrency: int | None, lanes: tuple[str, ...],
           agent: str | None, pool: str, prefetch: int | None, beat: bool,
           max_jobs_per_child: int | None, max_memory_per_child: int | None,
           metrics_port: int | None, loglevel: str) -> None:
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
           prefetch=prefetch, beat=beat).run()


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


@jobs.command("list")
@app_option
@click.option("--status", "statuses", multiple=True, help="Only jobs in this status.")
@click.option("--definition", "definition_id", default=None)
@click.option("--lane", default=None)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def jobs_list(app_target: str | None, statuses: tuple[str, ...], definition_id: str | None,
              lane: str | None, limit: int, as_json: bool) -> None:
    """List recent jobs, newest first."""
    from jobmaster.models import JobStatus

    for value in statuses:
        if value not in {s.value for s in JobStatus}:
            raise click.BadParameter(
                f"{value!r} is not a status; use one of {', '.join(s.value for s in JobStatus)}",
                param_hint="--status")
    app = _load(app_target)
    found = app.jobs.list(status=list(statuses) or None, definition_id=definition_id,
                          lane=lane, limit=limit)
    for job in found:
        if as_json:
            click.echo(json.dumps({"id": job.id, "definition_id": job.definition_id,
                                   "status": job.status.value, "lane": job.lane,
                                   "attempts": job.attempts,
                                   "created_at": _when(job.created_at)}))
        else:
            click.echo(f"{job.id}  {job.status.value:<9}  {job.definition_id:<30}  "
                       f"{job.lane:<10}  attempts={job.attempts}  {_when(job.created_at)}")


@jobs.command("show")
@app_option
@click.argument("job_id")
def jobs_show(app_target: str | None, job_id: str) -> None:
    """Show one job in full."""
    app = _load(app_target)
    job = app.jobs.get(job_id)
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
    if job.options is not None and job.options.expires is not None:
        expires = job.options.expires
        rows.append(("expires", _when(expires if isinstance(expires, datetime)
                                      else datetime.fromtimestamp(expires, UTC))))
    for key, value in rows:
        click.echo(f"{key:>12}: {value}")
    if job.error is not None:
        click.echo(f"{'error':>12}: {job.error.type}: {job.error.message}")
        if job.error.traceback:
            click.echo(job.error.traceback.rstrip())


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


@main.group()
def schedules() -> None:
    """Inspect and change recurring schedules."""


@schedules.command("list")
@app_option
@click.option("--all", "include_inactive", is_flag=True, help="Include inactive schedules.")
def schedules_list(app_target: str | None, include_inactive: bool) -> None:
    """List schedules with their next fire time."""
    app = _load(app_target)
    for s in app.schedules.list(include_inactive=include_inactive):
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
def schedules_preview(expression: str, tz: str | None, count: int) -> None:
    """Print the next fire times of EXPRESSION (no app needed)."""
    from jobmaster.schedules import Schedule

    schedule = Schedule.parse(expression, tz)
    click.echo(schedule.describe())
    zone = schedule.tz
    for fire in schedule.next_n(datetime.now(UTC), count):
        click.echo(f"  {fire.astimezone(zone).isoformat()}  ({_when(fire)} UTC)")


@main.command()
@app_option
def status(app_target: str | None) -> None:
    """Jobs per status, and workers seen recently."""
    app = _load(app_target)
    counts = app.jobs.counts()
    click.echo(f"cluster {app.name!r}, master {app.master.dialect}")
    for name in ("scheduled", "queued", "running", "retrying", "succeeded", "failed",
                 "cancelled"):
        click.echo(f"  {name:<10} {counts.get(name, 0)}")
    click.echo("workers:")
    now = datetime.now(UTC)
    for row in app.master.list_workers(cluster=app.name)[:20]:
        age = (now - row["last_seen"]).total_seconds()
        click.echo(f"  {row['id']:<40} {row['status']:<9} seen {age:.0f}s ago, "
                   f"{row['processed']} processed")


_AGE = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


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
        match = _AGE.fullmatch(older_than.strip())
        if not older_than.strip() or match is None:
            raise click.ClickException(f"--older-than {older_than!r} is not an age such as "
                                       "30m, 12h or 7d")
        weeks, days, hours, minutes, secs = (int(g or 0) for g in match.groups())
        age = (((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + secs
        return datetime.now(UTC).timestamp() - age
    return None


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


if __name__ == "__main__":  # pragma: no cover
    main()
