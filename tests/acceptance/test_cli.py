"""The real ``jobmaster`` command, run as ``python -m jobmaster`` in subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from jobmaster import JobStatus
from jobmaster.master.migrations import HEAD_REVISION
from jobmaster.master.schema import VERSION_TABLE, metadata
from tests.conftest import Stack, make_stack, wait_until
from tests.services import POSTGRES_URL, require

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60
        ) -> subprocess.CompletedProcess[str]:
    """``python -m jobmaster ARGS`` from the repository root, with only ``env``'s
    ``JOBMASTER_*`` settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("JOBMASTER_")}
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "jobmaster", *args], cwd=ROOT, env=base,
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    assert result.stdout.strip() == "", output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, output
    for text in expected:
        assert text in lines[0], output
    return lines[0]


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def expected_tables() -> set[str]:
    return set(metadata.tables) | {VERSION_TABLE}


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return make_stack("sqlite", tmp_path).env


# -- a bad -A: one clear line, no traceback ----------------------------------------------

BAD_TARGETS = [
    ("jm_no_such_module_xyz", "no module named 'jm_no_such_module_xyz'"),
    ("jm_no_such_pkg.tasks:app", "no module named 'jm_no_such_pkg.tasks'"),
    ("tests.fixtures.nosuchmodule", "nosuchmodule"),
    ("tests.fixtures.noapp", "holds no App"),
    ("tests.fixtures.twoapps", "several apps (first, second)"),
    ("tests.fixtures.brokenimport", "importing 'tests.fixtures.brokenimport' failed"),
    ("tests.fixtures.raisesatimport", "boom while importing raisesatimport"),
    ("tests.fixtures.noapp:value", "tests.fixtures.noapp:value is int, not an App"),
    ("tests.fixtures.noapp:missing", "tests.fixtures.noapp:missing is nothing"),
    ("tests.fixtures.noapp.missing", "has no attribute 'missing'"),
]
COMMANDS = [["status"], ["migrate"], ["jobs", "list"], ["worker"], ["beat"],
            ["schedules", "list"]]


@pytest.mark.parametrize(("target", "expected"), BAD_TARGETS, ids=[t for t, _ in BAD_TARGETS])
def test_bad_app_target_is_one_line(sqlite_env: dict[str, str], target: str, expected: str
                                    ) -> None:
    result = run("status", "-A", target, env=sqlite_env)
    line = assert_one_line_error(result, expected)
    assert line.startswith("Error: ")


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_bad_app_target_is_one_line_for_every_command(sqlite_env: dict[str, str],
                                                      command: list[str]) -> None:
    result = run(*command, "-A", "jm_no_such_module_xyz", env=sqlite_env)
    assert_one_line_error(result, "jm_no_such_module_xyz")
    result = run(*command, "-A", "tests.fixtures.twoapps", env=sqlite_env)
    assert_one_line_error(result, "several apps", "tests.fixtures.twoapps:NAME")


@pytest.mark.parametrize("command", [["jobs", "show"], ["jobs", "cancel"], ["jobs", "retry"]],
                         ids=" ".join)
def test_bad_app_target_for_job_commands(sqlite_env: dict[str, str], command: list[str]
                                         ) -> None:
    result = run(*command, "-A", "tests.fixtures.brokenimport", str(uuid.uuid4()),
                 env=sqlite_env)
    assert_one_line_error(result, "importing", "failed", "jobmaster_fixture_missing_dependency")


def test_no_app_given(sqlite_env: dict[str, str]) -> None:
    result = run("status", env=sqlite_env)
    assert_one_line_error(result, "-A", "JOBMASTER_APP")


def test_bad_app_from_env(sqlite_env: dict[str, str]) -> None:
    result = run("status", env={**sqlite_env, "JOBMASTER_APP": "jm_env_no_such_module"})
    assert_one_line_error(result, "jm_env_no_such_module")


def test_app_from_env(sqlite_env: dict[str, str]) -> None:
    result = run("status", env={**sqlite_env, "JOBMASTER_APP": "tests.fixtures.workapp"})
    assert result.returncode == 0, result.stderr
    assert sqlite_env["JOBMASTER_NAME"] in result.stdout


def test_bad_configuration_is_one_line(sqlite_env: dict[str, str]) -> None:
    result = run("status", "-A", "tests.fixtures.workapp",
                 env={**sqlite_env, "JOBMASTER_LEASE_SECONDS": "soon"})
    assert_one_line_error(result, "JOBMASTER_LEASE_SECONDS")


# -- migrate ----------------------------------------------------------------------------


def test_migrate_fresh_sqlite_then_again(tmp_path: Path) -> None:
    master = tmp_path / "fresh.db"
    env = {"JOBMASTER_MASTER_URL": f"sqlite:///{master}",
           "JOBMASTER_AGENT_URL": f"sqlite:///{tmp_path}/agent.db"}
    first = run("migrate", "-A", "tests.fixtures.workapp", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"master schema migrated from nothing to {HEAD_REVISION}"
    assert expected_tables() <= tables(f"sqlite:///{master}")
    second = run("migrate", "-A", "tests.fixtures.workapp", env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == f"master schema already at revision {HEAD_REVISION}"
    assert "Traceback" not in second.stderr


def test_migrate_with_url_needs_no_app(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/by-url.db"
    result = run("migrate", "--url", url)
    assert result.returncode == 0, result.stderr
    assert HEAD_REVISION in result.stdout
    assert expected_tables() <= tables(url)


def test_migrate_unreachable_master_is_a_clear_error() -> None:
    result = run("migrate", "--url", "postgresql+psycopg://nobody@127.0.0.1:1/x")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    first = result.stderr.strip().splitlines()[0]  # the driver may add a hint line
    assert first.startswith("Error: cannot reach the master at ")
    assert "127.0.0.1:1" in first


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database; dropped afterwards."""
    require("postgres")
    import psycopg

    base = sa.make_url(POSTGRES_URL)
    name = f"jm_cli_{uuid.uuid4().hex[:12]}"
    admin = {"host": base.host or "127.0.0.1", "port": base.port or 5432,
             "user": base.username or "postgres", "password": base.password or None,
             "dbname": "postgres", "autocommit": True}
    with psycopg.connect(**admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(**admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrate_fresh_postgres(fresh_postgres: str, tmp_path: Path) -> None:
    assert tables(fresh_postgres) == set()
    env = {"JOBMASTER_MASTER_URL": fresh_postgres,
           "JOBMASTER_AGENT_URL": f"sqlite:///{tmp_path}/agent.db"}
    first = run("migrate", "-A", "tests.fixtures.workapp", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"master schema migrated from nothing to {HEAD_REVISION}"
    assert expected_tables() <= tables(fresh_postgres)
    second = run("migrate", "-A", "tests.fixtures.workapp", env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == f"master schema already at revision {HEAD_REVISION}"
    status = run("status", "-A", "tests.fixtures.workapp", env=env)
    assert status.returncode == 0, status.stderr
    assert "master postgresql" in status.stdout


def test_migrate_fresh_postgres_by_url(fresh_postgres: str) -> None:
    result = run("migrate", "--url", fresh_postgres)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"master schema migrated from nothing to {HEAD_REVISION}"
    assert expected_tables() <= tables(fresh_postgres)


# -- jobs and status on a stack with a real worker ---------------------------------------


@dataclass
class Ran:
    stack: Stack
    env: dict[str, str]
    app: Any
    ids: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ran]:
    """A SQLite stack where a real worker ran a few jobs: three adds, one that always
    fails, and two parked on a lane no worker serves."""
    stack = make_stack("sqlite", tmp_path_factory.mktemp("cli-stack"))
    app = stack.app()
    add = app.definition("add")
    record = app.definition("record")
    handles = {
        "add1": add.delay(x=1, y=2),
        "add2": add.delay(x=3, y=4),
        "add3": add.delay(x=5, y=6),
        "fails": app.definition("always-fails").delay(),
        "parked1": record.apply(kwargs={"tag": "p1"}, lane="parked"),
        "parked2": record.apply(kwargs={"tag": "p2"}, lane="parked"),
    }
    app.flush()
    stack.worker("-c", "1")
    try:
        for key in ("add1", "add2", "add3", "fails"):
            handles[key].wait(timeout=60)
        yield Ran(stack, {**stack.env}, app, {k: h.id for k, h in handles.items()})
    finally:
        for proc in stack.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        app.close()


def jm(ran: Ran, *args: str) -> subprocess.CompletedProcess[str]:
    return run(*args, env=ran.env)


def test_status(ran: Ran) -> None:
    result = jm(ran, "status", "-A", "tests.fixtures.workapp")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"cluster {ran.app.name!r}, master sqlite" in out
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    assert set(counts) == {"scheduled", "queued", "running", "retrying", "succeeded",
                           "failed", "cancelled"}
    assert counts["succeeded"] >= 3
    assert counts["failed"] == 1
    assert counts["queued"] + counts["cancelled"] >= 2
    assert "workers:" in out
    worker_lines = out.split("workers:", 1)[1].strip().splitlines()
    assert worker_lines and ran.app.name in worker_lines[0]
    assert "processed" in worker_lines[0]


def test_jobs_list(ran: Ran) -> None:
    result = jm(ran, "jobs", "list", "-A", "tests.fixtures.workapp")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()}
    assert set(ran.ids.values()) <= set(rows)
    assert rows[ran.ids["add1"]][1:4] == ["succeeded", "add", "default"]
    assert rows[ran.ids["fails"]][1:3] == ["failed", "always-fails"]
    assert rows[ran.ids["fails"]][4] == "attempts=3"
    assert rows[ran.ids["parked1"]][3] == "parked"
    ordered = [line.split()[0] for line in result.stdout.splitlines()]
    assert ordered.index(ran.ids["parked2"]) < ordered.index(ran.ids["add1"])  # newest first


def test_jobs_list_filters(ran: Ran) -> None:
    failed = jm(ran, "jobs", "list", "-A", "tests.fixtures.workapp", "--status", "failed")
    assert failed.returncode == 0, failed.stderr
    assert [line.split()[0] for line in failed.stdout.splitlines()] == [ran.ids["fails"]]
    adds = jm(ran, "jobs", "list", "-A", "tests.fixtures.workapp", "--definition", "add")
    assert {line.split()[0] for line in adds.stdout.splitlines()} == {
        ran.ids["add1"], ran.ids["add2"], ran.ids["add3"]}
    parked = jm(ran, "jobs", "list", "-A", "tests.fixtures.workapp", "--lane", "parked")
    assert {line.split()[0] for line in parked.stdout.splitlines()} == {
        ran.ids["parked1"], ran.ids["parked2"]}
    one = jm(ran, "jobs", "list", "-A", "tests.fixtures.workapp", "--limit", "1")
    assert len(one.stdout.splitlines()) == 1


def test_jobs_list_json(ran: Ran) -> None:
    result = jm(ran, "jobs", "list", "-A", "tests.fixtures.workapp", "--json",
                "--definition", "add")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["id"] for r in records} == {ran.ids["add1"], ran.ids["add2"], ran.ids["add3"]}
    assert {r["status"] for r in records} == {"succeeded"}
    assert set(records[0]) == {"id", "definition_id", "status", "lane", "attempts",
                               "created_at"}


def test_jobs_list_bad_status(ran: Ran) -> None:
    result = jm(ran, "jobs", "list", "-A", "tests.fixtures.workapp", "--status", "bogus")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    assert "--status" in output and "bogus" in output


def test_jobs_show(ran: Ran) -> None:
    result = jm(ran, "jobs", "show", "-A", "tests.fixtures.workapp", ran.ids["add1"])
    assert result.returncode == 0, result.stderr
    fields = {k.strip(): v.strip() for k, _, v in
              (line.partition(":") for line in result.stdout.splitlines())}
    assert fields["id"] == ran.ids["add1"]
    assert fields["definition"] == "add"
    assert fields["status"] == "succeeded"
    assert fields["lane"] == "default"
    assert fields["priority"] == "MEDIUM"
    assert fields["attempts"] == "1"
    assert json.loads(fields["arguments"]) == {"x": 1, "y": 2}
    assert fields["result"] == "3"
    assert fields["worker"].startswith(ran.app.name)
    assert "error" not in fields


def test_jobs_show_failed_job(ran: Ran) -> None:
    result = jm(ran, "jobs", "show", "-A", "tests.fixtures.workapp", ran.ids["fails"])
    assert result.returncode == 0, result.stderr
    assert "status: failed" in result.stdout
    assert "error: ValueError: this job always fails" in result.stdout
    assert "always_fails" in result.stdout  # the job's own traceback is shown


def test_jobs_show_unknown(ran: Ran) -> None:
    missing = str(uuid.uuid4())
    result = jm(ran, "jobs", "show", "-A", "tests.fixtures.workapp", missing)
    assert_one_line_error(result, "no job", missing)


def test_jobs_cancel(ran: Ran) -> None:
    job_id = ran.ids["parked2"]
    result = jm(ran, "jobs", "cancel", "-A", "tests.fixtures.workapp", job_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{job_id}: cancelled"
    assert ran.app.jobs.get(job_id).status is JobStatus.CANCELLED
    again = jm(ran, "jobs", "cancel", "-A", "tests.fixtures.workapp", job_id)
    assert again.stdout.strip() == f"{job_id}: cancelled"


def test_jobs_cancel_finished_job_changes_nothing(ran: Ran) -> None:
    job_id = ran.ids["add2"]
    result = jm(ran, "jobs", "cancel", "-A", "tests.fixtures.workapp", job_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{job_id}: succeeded"
    assert ran.app.jobs.get(job_id).status is JobStatus.SUCCEEDED


def test_jobs_cancel_unknown(ran: Ran) -> None:
    missing = str(uuid.uuid4())
    result = jm(ran, "jobs", "cancel", "-A", "tests.fixtures.workapp", missing)
    assert_one_line_error(result, "no job", missing)


def test_jobs_retry_unfinished_is_refused(ran: Ran) -> None:
    job_id = ran.ids["parked1"]
    result = jm(ran, "jobs", "retry", "-A", "tests.fixtures.workapp", job_id)
    assert_one_line_error(result, job_id, "not finished")


def test_jobs_retry_unknown(ran: Ran) -> None:
    missing = str(uuid.uuid4())
    result = jm(ran, "jobs", "retry", "-A", "tests.fixtures.workapp", missing)
    assert_one_line_error(result, "no job", missing)


def test_jobs_retry_runs_the_job_again(ran: Ran) -> None:
    job_id = ran.ids["add3"]
    before = ran.app.jobs.get(job_id)
    assert before.status is JobStatus.SUCCEEDED and before.finished_at is not None
    result = jm(ran, "jobs", "retry", "-A", "tests.fixtures.workapp", job_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{job_id}: queued"

    def ran_again() -> bool:
        job = ran.app.jobs.get(job_id)
        return (job.status is JobStatus.SUCCEEDED and job.finished_at is not None
                and job.finished_at > before.finished_at)  # type: ignore[operator]

    wait_until(ran_again, timeout=30, what="the retried job to run again")
    assert ran.app.jobs.get(job_id).result == 11


def test_jobs_retry_failed_job(ran: Ran) -> None:
    job_id = ran.ids["fails"]
    before = ran.app.jobs.get(job_id)
    result = jm(ran, "jobs", "retry", "-A", "tests.fixtures.workapp", job_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{job_id}: queued"

    def failed_again() -> bool:
        job = ran.app.jobs.get(job_id)
        return (job.status is JobStatus.FAILED and job.finished_at is not None
                and job.finished_at > before.finished_at)  # type: ignore[operator]

    wait_until(failed_again, timeout=30, what="the retried job to fail again")
    job = ran.app.jobs.get(job_id)
    assert job.error is not None and job.error.type == "ValueError"
    assert len(job.errors) > len(before.errors)


# -- help -------------------------------------------------------------------------------

HELP = [[], ["worker"], ["beat"], ["migrate"], ["status"], ["jobs"], ["jobs", "list"],
        ["jobs", "show"], ["jobs", "cancel"], ["jobs", "retry"], ["schedules"],
        ["schedules", "list"], ["schedules", "pause"], ["schedules", "resume"],
        ["schedules", "delete"]]


@pytest.mark.parametrize("command", HELP, ids=lambda c: " ".join(c) or "jobmaster")
def test_help(command: list[str]) -> None:
    result = run(*command, "--help", timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: ")
    assert "Traceback" not in result.stderr
    takes_app = command and command[-1] not in ("jobs", "schedules")
    if takes_app and command[0] != "migrate":
        assert "-A, --app" in result.stdout
    if command == []:
        for name in ("worker", "beat", "migrate", "jobs", "schedules", "status"):
            assert name in result.stdout


def test_worker_help_lists_its_options() -> None:
    out = run("worker", "--help").stdout
    for option in ("--concurrency", "--lane", "--agent", "--pool", "--beat", "--prefetch"):
        assert option in out
    assert "prefork" in out and "threads" in out and "solo" in out


def test_version() -> None:
    import jobmaster

    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert jobmaster.__version__ in result.stdout


def test_unknown_command() -> None:
    result = run("frobnicate")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "frobnicate" in result.stderr
