"""``app.jobs.list`` and ``app.jobs.count`` against real SQLite, PostgreSQL and MySQL/MariaDB
masters: every filter, keyset paging (each job exactly once, even while jobs are added),
cursor and filter errors."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from jobmaster import App, JobStatus, Priority
from jobmaster.exceptions import InvalidOptionError
from jobmaster.jobs import JobPage, encode_cursor
from jobmaster.master.rows import job_row
from jobmaster.master.schema import jobs
from tests.integration.test_master import BACKENDS, _fresh_database, envelope

BASE = datetime(2026, 11, 1, tzinfo=UTC)
STATUSES = [JobStatus.QUEUED, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.RUNNING]


@pytest.fixture(params=sorted(BACKENDS))
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    for url in _fresh_database(request.param, tmp_path):
        a = App("c1", master=url, agents={"main": f"memory://{uuid.uuid4().hex}"},
                auto_migrate=True)
        try:
            yield a
        finally:
            a.close()


def add_jobs(app: App, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert jobs straight into the master; return their rows."""
    now = datetime.now(UTC)
    rows = []
    for spec in specs:
        spec = dict(spec)
        status = spec.pop("status", JobStatus.QUEUED)
        worker = spec.pop("worker", None)
        created: datetime = spec.pop("created")
        env = envelope(created_at=created.timestamp(), due=created.timestamp(), **spec)
        rows.append({**job_row(env, status, now), "worker": worker,
                     "created_at": created})
    app.master.insert_jobs(rows)
    return rows


def dataset(app: App) -> list[dict[str, Any]]:
    """60 jobs of cluster c1 (and 5 of another cluster), varied in every filtered field;
    three at a time share a creation time, so ties are broken by id."""
    specs = []
    for i in range(60):
        specs.append({
            "id": f"{i % 7:02d}-{uuid.uuid4().hex[:33]}",  # ids not in creation order
            "created": BASE + timedelta(seconds=i // 3, microseconds=(i // 3) * 7),
            "status": STATUSES[i % 4],
            "definition_id": ["add", "mail", "report"][i % 3],
            "lane": ["default", "emails"][i % 2],
            "priority": i % 5,
            "worker": [None, "w1", "w2"][i % 3],
            "metadata": {"tenant": ["acme", "globex"][i % 2], "n": i % 4,
                         "vip": i % 3 == 0, **({"gone": None} if i % 5 == 0 else {})},
        })
    specs += [{"cluster": "c2", "created": BASE, "id": str(uuid.uuid4())} for _ in range(5)]
    return [r for r in add_jobs(app, specs) if r["cluster"] == "c1"]


def newest_first(rows: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in sorted(rows, key=lambda r: (r["created_at"], r["id"]),
                                    reverse=True)]


MID = BASE + timedelta(seconds=10)
CASES: list[tuple[str, dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
    ("all", {}, lambda r: True),
    ("one status", {"status": "failed"}, lambda r: r["status"] == "failed"),
    ("statuses", {"status": [JobStatus.FAILED, "running"]},
     lambda r: r["status"] in ("failed", "running")),
    ("definition", {"definition_id": "mail"}, lambda r: r["definition_id"] == "mail"),
    ("lane", {"lane": "emails"}, lambda r: r["lane"] == "emails"),
    ("priority enum", {"priority": Priority.HIGH}, lambda r: r["priority"] == 3),
    ("priority name", {"priority": "very_low"}, lambda r: r["priority"] == 0),
    ("priority int", {"priority": 4}, lambda r: r["priority"] == 4),
    ("worker", {"worker": "w2"}, lambda r: r["worker"] == "w2"),
    ("created_after", {"created_after": MID}, lambda r: r["created_at"] >= MID),
    ("created_before", {"created_before": MID}, lambda r: r["created_at"] < MID),
    ("window as Unix times", {"created_after": MID.timestamp(),
                              "created_before": (MID + timedelta(seconds=4)).timestamp()},
     lambda r: MID <= r["created_at"] < MID + timedelta(seconds=4)),
    ("naive datetime is UTC", {"created_after": MID.replace(tzinfo=None)},
     lambda r: r["created_at"] >= MID),
    ("metadata string", {"metadata": {"tenant": "acme"}},
     lambda r: r["meta"]["tenant"] == "acme"),
    ("metadata number", {"metadata": {"n": 2}}, lambda r: r["meta"]["n"] == 2),
    ("metadata bool", {"metadata": {"vip": True}}, lambda r: r["meta"]["vip"] is True),
    ("metadata null or missing", {"metadata": {"gone": None}}, lambda r: True),
    ("metadata no type confusion", {"metadata": {"n": "2"}}, lambda r: False),
    ("metadata float equals int", {"metadata": {"n": 2.0}}, lambda r: r["meta"]["n"] == 2),
    ("metadata bool is no number", {"metadata": {"n": True}}, lambda r: False),
    ("metadata two keys", {"metadata": {"tenant": "globex", "vip": True}},
     lambda r: r["meta"]["tenant"] == "globex" and r["meta"]["vip"] is True),
    ("metadata value and null", {"metadata": {"tenant": "acme", "gone": None}},
     lambda r: r["meta"]["tenant"] == "acme"),
    ("combined", {"status": ["queued", "failed"], "lane": "default", "definition_id": "add",
                  "metadata": {"tenant": "acme"}, "created_after": BASE},
     lambda r: r["status"] in ("queued", "failed") and r["lane"] == "default"
     and r["definition_id"] == "add" and r["meta"]["tenant"] == "acme"),
    ("nothing", {"worker": "nobody"}, lambda r: False),
]


def test_each_filter_lists_and_counts_exactly_the_matching_jobs(app: App) -> None:
    rows = dataset(app)
    for name, filters, keep in CASES:
        expected = newest_first([r for r in rows if keep(r)])
        page = app.jobs.list(**filters, limit=1000)
        assert [j.id for j in page] == expected, name
        assert page.next_cursor is None, name
        assert app.jobs.count(**filters) == len(expected), name
        bounded = app.jobs.count(**filters, exact=False)
        assert bounded == len(expected) and bounded.exact, name
    assert app.jobs.count() == 60  # the other cluster's jobs are never counted


def test_postgres_estimates_and_rare_first_pages_agree_with_the_plain_queries(
        tmp_path: Path) -> None:
    for url in _fresh_database("postgres", tmp_path):
        app = App("c1", master=url, agents={"main": f"memory://{uuid.uuid4().hex}"},
                  auto_migrate=True)
        try:
            rows = dataset(app)
            master = app.master
            for name, filters, keep in CASES:
                where = master._job_filters(cluster="c1", **app.jobs._filters(
                    filters.get("status"), filters.get("definition_id"),
                    filters.get("lane"), filters.get("priority"), filters.get("metadata"),
                    filters.get("worker"), filters.get("created_after"),
                    filters.get("created_before")))
                count = sa.select(sa.func.count()).select_from(jobs).where(*where)
                page = (sa.select(jobs).where(*where)
                        .order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(1000))
                expected = newest_first([r for r in rows if keep(r)])
                with master.engine.begin() as conn:
                    # a small table is sampled whole: the "estimate" is the count itself
                    assert master._pg_sampled_count(conn, count) == len(expected), name
                    found = master._pg_rare_first(conn, page)
                    assert found is not None and [r["id"] for r in found] == expected, name
        finally:
            app.close()


def test_every_filter_pages_to_the_same_jobs(app: App) -> None:
    rows = dataset(app)
    for name, filters, keep in CASES:
        expected = newest_first([r for r in rows if keep(r)])
        seen: list[str] = []
        cursor = None
        for _ in range(100):
            page = app.jobs.list(**filters, limit=4, cursor=cursor)
            assert len(page) <= 4, name
            seen += [j.id for j in page]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == expected, name


def test_paging_sees_every_job_once_while_new_jobs_arrive(app: App) -> None:
    rows = dataset(app)
    expected = newest_first(rows)
    seen: list[str] = []
    pages = 0
    cursor = None
    later = BASE + timedelta(days=1)
    while True:
        page = app.jobs.list(limit=7, cursor=cursor)
        pages += 1
        seen += [j.id for j in page]
        # jobs arrive between pages: newer ones, and ones sharing the last seen creation
        # time (these sort before the cursor: never shown on a later page)
        last = page[-1]
        add_jobs(app, [{"created": later + timedelta(seconds=pages), "id": str(uuid.uuid4())},
                       {"created": last.created_at, "id": "zz" + str(uuid.uuid4())[2:]}])
        cursor = page.next_cursor
        if cursor is None:
            break
        assert pages < 50
    assert len(seen) == len(set(seen)), "a job was listed twice"
    assert seen == expected
    assert pages == 9  # 60 jobs, 7 a page: 8 full pages and 4 left
    assert app.jobs.count() == 60 + 2 * pages


def test_last_page_has_no_cursor_when_the_jobs_fill_it_exactly(app: App) -> None:
    add_jobs(app, [{"created": BASE + timedelta(seconds=i), "id": str(uuid.uuid4())}
                   for i in range(10)])
    first = app.jobs.list(limit=5)
    assert first.next_cursor is not None
    second = app.jobs.list(limit=5, cursor=first.next_cursor)
    assert len(second) == 5
    assert second.next_cursor is None
    assert not set(j.id for j in first) & set(j.id for j in second)


def test_a_page_is_a_list(app: App) -> None:
    rows = add_jobs(app, [{"created": BASE + timedelta(seconds=i), "id": str(uuid.uuid4())}
                          for i in range(3)])
    page = app.jobs.list(limit=2)
    assert isinstance(page, JobPage) and isinstance(page, list)
    assert len(page) == 2
    assert page[0].id == rows[2]["id"]
    assert page.items == list(page)
    assert [j.id for j in page.items] == [rows[2]["id"], rows[1]["id"]]
    assert app.jobs.list(worker="nobody") == []


BAD_CURSORS = ["", "garbage", "!!!", encode_cursor(BASE, "x")[:-3] + "$$$",
               "MjpvbmU6dHdv",  # "2:one:two": not this format's version
               "MTphYmM6eA"]    # "1:abc:x": no time in it


@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_a_malformed_cursor_is_refused(tmp_path: Path, cursor: str) -> None:
    a = App("c1", master=f"sqlite:///{tmp_path}/m.db",
            agents={"main": f"memory://{uuid.uuid4().hex}"})
    try:
        with pytest.raises(InvalidOptionError, match="is not a cursor from app.jobs.list"):
            a.jobs.list(cursor=cursor)
    finally:
        a.close()


def test_a_cursor_continues_after_its_job_even_if_that_job_is_gone(app: App) -> None:
    rows = add_jobs(app, [{"created": BASE + timedelta(seconds=i), "id": str(uuid.uuid4())}
                          for i in range(6)])
    first = app.jobs.list(limit=3)
    app.master.delete_job(first[-1].id)
    rest = app.jobs.list(limit=10, cursor=first.next_cursor)
    assert [j.id for j in rest] == [r["id"] for r in reversed(rows[:3])]


BAD_FILTERS: list[tuple[dict[str, Any], str]] = [
    ({"status": "bogus"}, "status='bogus' is not a job status"),
    ({"status": ["queued", "nope"]}, "status='nope'"),
    ({"priority": "urgent"}, "is not a priority"),
    ({"priority": 9}, "is not a priority"),
    ({"limit": 0}, "limit=0 must be an integer from 1"),
    ({"limit": 10_001}, "limit=10001"),
    ({"created_after": "yesterday"}, "created_after='yesterday' must be a datetime"),
    ({"created_before": True}, "created_before=True"),
    ({"lane": 3}, "lane=3 must be a string"),
    ({"metadata": ["k"]}, "must be a mapping"),
]


@pytest.mark.parametrize(("filters", "message"), BAD_FILTERS,
                         ids=[m for _, m in BAD_FILTERS])
def test_bad_filters_are_refused(tmp_path: Path, filters: dict[str, Any], message: str
                                 ) -> None:
    a = App("c1", master=f"sqlite:///{tmp_path}/m.db",
            agents={"main": f"memory://{uuid.uuid4().hex}"})
    try:
        with pytest.raises(InvalidOptionError, match=message.replace("(", r"\(")):
            a.jobs.list(**filters)
        if "limit" not in filters:
            with pytest.raises(InvalidOptionError):
                a.jobs.count(**filters)
    finally:
        a.close()
