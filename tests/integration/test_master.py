"""The master repository against real SQLite, PostgreSQL and MySQL/MariaDB databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from jobmaster.envelope import Envelope
from jobmaster.exceptions import JobmasterError
from jobmaster.master import Master
from jobmaster.master.migrations import HEAD_REVISION, alembic_config
from jobmaster.master.rows import job_row
from jobmaster.master.schema import VERSION_TABLE, include_object, metadata
from jobmaster.models import JobStatus
from tests.services import MYSQL_URL, POSTGRES_URL, require

BACKENDS = {"sqlite": None, "postgres": ("postgres", POSTGRES_URL),
            "mysql": ("mysql", MYSQL_URL)}


def _fresh_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """A new empty database of ``kind``, dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path}/master.db"
        return
    service, base_url = BACKENDS[kind]  # type: ignore[misc]
    require(service)
    name = f"jm_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    url = base_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            if kind == "postgres":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture(params=sorted(BACKENDS))
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from _fresh_database(request.param, tmp_path)


@pytest.fixture
def master(empty_url: str) -> Iterator[Master]:
    m = Master(empty_url, auto_migrate=False)
    m.migrate()
    yield m
    m.dispose()


def envelope(**changes: object) -> Envelope:
    values: dict[str, object] = dict(
        id=str(uuid.uuid4()), cluster="c1", definition_id="add", lane="default", priority=2,
        encoding="json", payload=b'{"x":1}', created_at=1_700_000_000.25,
        due=1_700_000_000.25, metadata={"tenant": "acme", "n": 3, "vip": True},
    )
    values.update(changes)
    return Envelope.from_fields(**values)


def test_upgrade_head_equals_the_metadata(empty_url: str) -> None:
    engine = sa.create_engine(empty_url)
    try:
        with engine.begin() as conn:
            from jobmaster.master.migrations import upgrade

            upgrade(conn)
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "version_table": VERSION_TABLE,
                            "include_object": include_object}
            )
            diff = compare_metadata(context, metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_head_revision_constant_matches_alembic() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_current_head() == HEAD_REVISION


def test_master_without_schema_says_to_migrate(empty_url: str) -> None:
    m = Master(empty_url, auto_migrate=False)
    with pytest.raises(Exception, match="jobmaster migrate"):
        m.get_job("x")
    m.dispose()


def test_migrate_is_idempotent(master: Master) -> None:
    assert master.migrate() == HEAD_REVISION


def test_insert_ignores_an_id_already_recorded(master: Master) -> None:
    env = envelope()
    now = datetime.now(UTC)
    master.insert_jobs([job_row(env, JobStatus.QUEUED, now)])
    master.record([{**job_row(env, JobStatus.SUCCEEDED, now), "attempts": 1}])
    master.insert_jobs([job_row(env, JobStatus.QUEUED, now)])  # late producer write
    row = master.get_job(env.id)
    assert row is not None
    assert row["status"] == "succeeded"
    assert row["attempts"] == 1


def test_record_inserts_when_the_producer_write_is_late(master: Master) -> None:
    env = envelope()
    now = datetime.now(UTC)
    master.record([{**job_row(env, JobStatus.RUNNING, now), "attempts": 1, "worker": "w1"}])
    master.record([{**job_row(env, JobStatus.SUCCEEDED, now), "attempts": 0,
                    "result": b"2", "finished_at": now}])
    row = master.get_job(env.id)
    assert row is not None
    assert (row["status"], row["attempts"], bytes(row["result"])) == ("succeeded", 1, b"2")
    assert row["finished_at"] is not None


def test_times_round_trip_as_aware_utc_with_microseconds(master: Master) -> None:
    env = envelope(created_at=1_700_000_000.123456, due=1_700_000_060.654321)
    master.insert_jobs([job_row(env, JobStatus.QUEUED, datetime.now(UTC))])
    row = master.get_job(env.id)
    assert row is not None
    assert row["created_at"] == datetime.fromtimestamp(1_700_000_000.123456, UTC)
    assert row["scheduled_at"].tzinfo is not None
    assert abs(row["scheduled_at"].timestamp() - 1_700_000_060.654321) < 1e-5


def test_cancelled_job_keeps_its_status_against_a_late_record(master: Master) -> None:
    env = envelope()
    now = datetime.now(UTC)
    master.insert_jobs([job_row(env, JobStatus.QUEUED, now)])
    assert master.cancel_job(env.id) == "cancelled"
    master.record([{**job_row(env, JobStatus.RUNNING, now), "attempts": 1}])
    assert master.job_status(env.id) == "cancelled"
    assert master.cancelled_jobs("c1", since=None) == [env.id]


def test_a_final_status_never_moves_backwards(master: Master) -> None:
    """A duplicate run (its lease expired) records after the job succeeded elsewhere: the
    job stays succeeded with its result, and both runs are counted."""
    env = envelope()
    now = datetime.now(UTC)
    master.insert_jobs([job_row(env, JobStatus.QUEUED, now)])
    master.record([{**job_row(env, JobStatus.SUCCEEDED, now), "attempts": 1,
                    "result": b"42", "finished_at": now, "worker": "w2"}])
    master.record([{**job_row(env, JobStatus.RUNNING, now), "attempts": 1, "worker": "w1"}])
    master.record([{**job_row(env, JobStatus.FAILED, now), "attempts": 0, "worker": "w1",
                    "error_type": "LateError", "finished_at": now}])
    row = master.get_job(env.id)
    assert row is not None
    assert (row["status"], row["attempts"], bytes(row["result"]), row["worker"],
            row["error_type"]) == ("succeeded", 2, b"42", "w2", None)
    late = envelope()  # the duplicate's record arrives before the producer's insert
    master.record([{**job_row(late, JobStatus.FAILED, now), "attempts": 1,
                    "finished_at": now}])
    master.record([{**job_row(late, JobStatus.RUNNING, now), "attempts": 1}])
    assert master.job_status(late.id) == "failed"


def test_cancel_leaves_finished_jobs_alone(master: Master) -> None:
    env = envelope()
    now = datetime.now(UTC)
    master.record([{**job_row(env, JobStatus.SUCCEEDED, now), "attempts": 1}])
    assert master.cancel_job(env.id) == "succeeded"
    assert master.cancel_job("no-such-job") is None


def test_job_key_is_unique_per_cluster(master: Master) -> None:
    now = datetime.now(UTC)
    first = envelope(job_key="invoice-42")
    assert master.insert_job_unique(job_row(first, JobStatus.QUEUED, now)) is None
    again = envelope(job_key="invoice-42")
    assert master.insert_job_unique(job_row(again, JobStatus.QUEUED, now)) == first.id
    elsewhere = envelope(job_key="invoice-42", cluster="c2")
    assert master.insert_job_unique(job_row(elsewhere, JobStatus.QUEUED, now)) is None


def test_list_filters_by_status_definition_lane_and_metadata(master: Master) -> None:
    now = datetime.now(UTC)
    rows = [
        job_row(envelope(), JobStatus.QUEUED, now),
        job_row(envelope(definition_id="mail", lane="emails",
                         metadata={"tenant": "globex", "n": 4, "vip": False}),
                JobStatus.QUEUED, now),
        job_row(envelope(metadata={"tenant": "acme", "n": 5, "vip": True}),
                JobStatus.FAILED, now),
    ]
    master.insert_jobs(rows)
    ids = lambda found: {r["id"] for r in found}  # noqa: E731
    assert len(master.list_jobs(cluster="c1")) == 3
    assert ids(master.list_jobs(cluster="c1", status=["failed"])) == {rows[2]["id"]}
    assert ids(master.list_jobs(cluster="c1", definition_id="mail")) == {rows[1]["id"]}
    assert ids(master.list_jobs(cluster="c1", lane="emails")) == {rows[1]["id"]}
    assert ids(master.list_jobs(cluster="c1", metadata={"tenant": "acme"})) == {
        rows[0]["id"], rows[2]["id"]}
    assert ids(master.list_jobs(cluster="c1", metadata={"n": 4})) == {rows[1]["id"]}
    assert ids(master.list_jobs(cluster="c1", metadata={"vip": True})) == {
        rows[0]["id"], rows[2]["id"]}
    assert master.list_jobs(cluster="other") == []
    assert master.count_jobs(cluster="c1") == {"queued": 2, "failed": 1}


def test_attempt_history_and_progress(master: Master) -> None:
    env = envelope()
    now = datetime.now(UTC)
    master.insert_jobs([job_row(env, JobStatus.QUEUED, now)])
    master.record([], [
        {"job_id": env.id, "attempt": 1, "worker": "w", "started_at": now,
         "finished_at": now + timedelta(seconds=1), "outcome": "retrying",
         "error_type": "ValueError", "error_message": "bad", "error_traceback": "tb"},
    ])
    master.record([], [], [{"id": env.id, "progress": 40, "progress_message": "forty"}])
    [error] = master.job_errors(env.id)
    assert (error["attempt"], error["error_type"]) == (1, "ValueError")
    row = master.get_job(env.id)
    assert row is not None
    assert (row["progress"], row["progress_message"]) == (40, "forty")


def test_worker_heartbeats_upsert(master: Master) -> None:
    now = datetime.now(UTC)
    row = {"id": "c1@host:1", "cluster": "c1", "hostname": "host", "pid": 1, "agent": "main",
           "lanes": ["default"], "concurrency": 2, "status": "running", "started_at": now,
           "last_seen": now, "processed": 0}
    master.worker_seen(row)
    master.worker_seen({**row, "processed": 5, "status": "stopped"})
    [seen] = master.list_workers(cluster="c1")
    assert (seen["processed"], seen["status"]) == (5, "stopped")


def test_record_writes_a_batch_of_many_rows_in_one_call(master: Master) -> None:
    now = datetime.now(UTC)
    envs = [envelope() for _ in range(300)]
    master.insert_jobs([job_row(e, JobStatus.QUEUED, now) for e in envs[:150]])
    master.record([{**job_row(e, JobStatus.SUCCEEDED, now), "attempts": 1, "result": b"1"}
                   for e in envs])
    assert master.count_jobs(cluster="c1") == {"succeeded": 300}


def test_concurrent_migrations_of_an_empty_master_all_succeed(empty_url: str) -> None:
    """A worker and a producer starting at once both migrate: one runs the DDL, the other
    waits for it and finds the schema current."""
    import threading

    masters = [Master(empty_url, auto_migrate=True) for _ in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(masters))

    def migrate(master: Master) -> None:
        start.wait()
        try:
            master.migrate()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(m,)) for m in masters]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    for m in masters:
        m.ensure_ready()
        m.dispose()


def test_a_failed_mysql_migration_releases_its_lock(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from jobmaster.master import migrations

    def broken(conn: sa.Connection) -> None:
        raise RuntimeError("a migration step failed")

    for url in _fresh_database("mysql", tmp_path):
        master = Master(url, auto_migrate=False)
        monkeypatch.setattr(migrations, "upgrade", broken)
        with pytest.raises(RuntimeError, match="a migration step failed"):
            master.migrate()
        with master.engine.connect() as other:  # another session may take the lock at once
            assert other.execute(sa.text(
                "SELECT IS_USED_LOCK('jobmaster_migrate')")).scalar() is None
        monkeypatch.undo()
        assert master.migrate() is None  # and migrating works afterwards
        master.dispose()


def test_a_half_done_mysql_migration_is_explained(tmp_path: Path) -> None:
    for url in _fresh_database("mysql", tmp_path):
        master = Master(url, auto_migrate=False)
        with master.engine.begin() as conn:  # what a migrator killed mid-way leaves behind
            conn.execute(sa.text("CREATE TABLE jobmaster_jobs (id VARCHAR(36) PRIMARY KEY)"))
        with pytest.raises(JobmasterError, match="stopped half-way left tables behind") as bad:
            master.migrate()
        assert "cannot reach" not in str(bad.value)
        master.dispose()
