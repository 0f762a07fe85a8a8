"""``jobmaster jobs list|count|show`` with filters, cursors and ``--json``, run as the real
command in subprocesses against a SQLite master filled directly."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobmaster.master.rows import job_row
from jobmaster.models import JobStatus
from tests.acceptance.test_cli import assert_one_line_error, run
from tests.conftest import make_stack
from tests.integration.test_master import envelope

A = ("-A", "tests.fixtures.workapp")
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class Filled:
    env: dict[str, str]
    rows: list[dict[str, Any]]

    def ids(self, keep: Any = lambda r: True) -> list[str]:
        """Ids of the rows ``keep`` selects, newest first."""
        chosen = sorted((r for r in self.rows if keep(r)),
                        key=lambda r: (r["created_at"], r["id"]), reverse=True)
        return [r["id"] for r in chosen]


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    """30 jobs, one every hour back from now, varied in every filtered field."""
    stack = make_stack("sqlite", tmp_path_factory.mktemp("jobs-cli"))
    app = stack.app()
    statuses = [JobStatus.QUEUED, JobStatus.SUCCEEDED, JobStatus.FAILED]
    rows = []
    for i in range(30):
        created = NOW - timedelta(hours=i)
        env = envelope(cluster=app.name, definition_id=["add", "mail"][i % 2],
                       lane=["default", "emails", "batch"][i % 3], priority=i % 5,
                       created_at=created.timestamp(), due=created.timestamp(),
                       metadata={"tenant": ["acme", "globex"][i % 2], "n": i % 3})
        rows.append({**job_row(env, statuses[i % 3], NOW), "worker": ["w1", "w2"][i % 2]})
    app.master.insert_jobs(rows)
    app.close()
    yield Filled(stack.env, rows)


def jm(filled: Filled, *args: str) -> subprocess.CompletedProcess[str]:
    result = run(*args, *A, env=filled.env)
    assert result.returncode == 0, result.stderr
    return result


def listed(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split()[0] for line in result.stdout.splitlines()]


def test_list_filters(filled: Filled) -> None:
    cases: list[tuple[list[str], Any]] = [
        (["--status", "failed", "--status", "queued"],
         lambda r: r["status"] in ("failed", "queued")),
        (["--definition", "mail"], lambda r: r["definition_id"] == "mail"),
        (["--lane", "batch"], lambda r: r["lane"] == "batch"),
        (["--priority", "high"], lambda r: r["priority"] == 3),
        (["--priority", "1"], lambda r: r["priority"] == 1),
        (["--worker", "w2"], lambda r: r["worker"] == "w2"),
        (["--metadata", "tenant=acme", "--metadata", "n=2"],  # 2 read as a JSON number
         lambda r: r["meta"] == {"tenant": "acme", "n": 2}),
        (["--metadata", 'n="2"'], lambda r: False),  # a JSON string never matches 2
        (["--since", "5h30m"], lambda r: r["created_at"] >= NOW - timedelta(hours=5.5)),
        (["--since", (NOW - timedelta(hours=3)).replace(tzinfo=None).isoformat(),
          "--until", (NOW - timedelta(hours=1)).isoformat()],
         lambda r: NOW - timedelta(hours=3) <= r["created_at"] < NOW - timedelta(hours=1)),
        (["--until", "23h30m"], lambda r: r["created_at"] < NOW - timedelta(hours=23.5)),
    ]
    for args, keep in cases:
        result = jm(filled, "jobs", "list", "--limit", "100", *args)
        assert listed(result) == filled.ids(keep), args
        assert result.stderr == "", args  # a single page: no cursor
        count = jm(filled, "jobs", "count", *args)
        assert count.stdout.strip() == str(len(filled.ids(keep))), args


def test_list_pages_with_the_cursor_printed_on_stderr(filled: Filled) -> None:
    seen: list[str] = []
    args = ["jobs", "list", "--limit", "7", "--status", "queued", "--status", "failed"]
    for _ in range(10):
        result = jm(filled, *args)
        page = listed(result)
        assert 1 <= len(page) <= 7
        seen += page
        if not result.stderr:
            break
        prefix, _, cursor = result.stderr.strip().partition("--cursor ")
        assert prefix == "more: " and cursor
        args = ["jobs", "list", "--limit", "7", "--status", "queued", "--status", "failed",
                "--cursor", cursor]
    assert seen == filled.ids(lambda r: r["status"] in ("queued", "failed"))


def test_list_json_pages(filled: Filled) -> None:
    seen: list[dict[str, Any]] = []
    cursor: list[str] = []
    for _ in range(10):
        result = jm(filled, "jobs", "list", "--json", "--limit", "8", "--lane", "default",
                    *cursor)
        seen += [json.loads(line) for line in result.stdout.splitlines()]
        if not result.stderr:
            break
        tail = json.loads(result.stderr)
        assert set(tail) == {"next_cursor"}
        cursor = ["--cursor", tail["next_cursor"]]
    assert [r["id"] for r in seen] == filled.ids(lambda r: r["lane"] == "default")
    assert {r["lane"] for r in seen} == {"default"}
    assert set(seen[0]) == {"id", "definition_id", "status", "lane", "attempts",
                            "created_at"}


def test_count_json(filled: Filled) -> None:
    result = jm(filled, "jobs", "count", "--json", "--status", "succeeded")
    assert json.loads(result.stdout) == {"count": 10, "exact": True}
    assert jm(filled, "jobs", "count").stdout.strip() == "30"


def test_show_json(filled: Filled) -> None:
    row = filled.rows[4]
    record = json.loads(jm(filled, "jobs", "show", "--json", row["id"]).stdout)
    assert record["id"] == row["id"]
    assert (record["status"], record["definition_id"], record["lane"], record["priority"],
            record["worker"]) == (row["status"], row["definition_id"], row["lane"],
                                  row["priority"], row["worker"])
    assert record["metadata"] == row["meta"]
    assert record["kwargs"] == {"x": 1}
    assert datetime.fromisoformat(record["created_at"]) == row["created_at"]
    assert record["error"] is None


BAD = [
    (["list", "--status", "bogus"], ["--status 'bogus' is not a status", "queued"]),
    (["count", "--status", "bogus"], ["--status 'bogus'"]),
    (["list", "--priority", "urgent"], ["--priority='urgent' is not a priority"]),
    (["count", "--priority", "7"], ["--priority=7 is not a priority"]),
    (["list", "--metadata", "tenant"], ["--metadata 'tenant' is not KEY=VALUE"]),
    (["list", "--since", "yesterday"], ["--since 'yesterday' is neither an ISO time"]),
    (["count", "--until", "12x"], ["--until '12x'"]),
    (["list", "--limit", "0"], ["--limit '0' is not a number from 1 to 10000"]),
    (["list", "--limit", "many"], ["--limit 'many'"]),
    (["list", "--cursor", "not-a-cursor"], ["'not-a-cursor' is not a cursor"]),
    (["history", "no-such-job"], ["no job 'no-such-job' in the master"]),
    (["history", "--json", "no-such-job"], ["no job 'no-such-job'"]),
]


@pytest.mark.parametrize(("args", "expected"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_filters_are_one_line(filled: Filled, args: list[str], expected: list[str]
                                  ) -> None:
    result = run("jobs", *args, *A, env=filled.env)
    line = assert_one_line_error(result, *expected)
    assert line.startswith("Error: ")
    assert "Usage:" not in result.stderr


def test_show_json_unknown_job(filled: Filled) -> None:
    missing = str(uuid.uuid4())
    result = run("jobs", "show", "--json", missing, *A, env=filled.env)
    assert_one_line_error(result, missing)


def test_count_estimate_flag_reports_exactness(filled: Filled) -> None:
    result = jm(filled, "jobs", "count", "--estimate", "--json", "--status", "succeeded")
    assert json.loads(result.stdout) == {"count": 10, "exact": True}
    assert jm(filled, "jobs", "count", "--estimate").stdout.strip() == "30"
