"""Dead letters an operator works with: a poison job is dead-lettered by a real worker,
listed (API and CLI, human and JSON), requeued once its cause is fixed, and succeeds with
its earlier history kept."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from jobmaster import App, JobmasterError, JobStatus
from jobmaster.agents.base import AgentMessage
from tests.acceptance.test_cli import assert_one_line_error, run
from tests.conftest import Stack, wait_until

BAD = "tests.fixtures.badapp"  # has the definition "pid", which the work app lacks


def producer(stack: Stack) -> App:
    """An app with the "pid" definition, on the stack's cluster."""
    app: App = stack.app(BAD)
    return app


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_a_poison_job_is_listed_requeued_after_the_fix_and_succeeds(
        stack_factory: Callable[..., Stack], backend: str) -> None:
    stack = stack_factory(backend)
    app = producer(stack)
    poison = app.definition("pid").delay(tag="poison")
    good = app.definition("add").delay(x=1, y=2)
    worker = stack.worker("-c", "1")  # the work app: no "pid" definition
    assert good.wait(timeout=30).result == 3
    failed = poison.wait(timeout=30)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.type == "UnknownDefinitionError"

    # the master records the failure, then the worker moves the message aside
    wait_until(lambda: len(app.dead_letters.list()) == 1, 10, "the dead letter")
    [item] = app.dead_letters.list()
    assert (item.id, item.definition_id, item.agent) == (poison.id, "pid", "main")
    assert "unknown job definition 'pid'" in item.reason
    assert app.dead_letters.get(poison.id).id == poison.id

    listed = run("dead-letters", "list", "-A", BAD, "--json", env=stack.env)
    assert listed.returncode == 0, listed.stderr
    [line] = listed.stdout.splitlines()
    assert json.loads(line)["id"] == poison.id and json.loads(line)["definition_id"] == "pid"
    human = run("dead-letters", "list", "-A", BAD, env=stack.env)
    assert poison.id in human.stdout and "unknown job definition" in human.stdout
    shown = run("dead-letters", "show", poison.id, "-A", BAD, "--json", env=stack.env)
    assert json.loads(shown.stdout)["reason"] == item.reason

    worker.terminate()
    worker.wait(30)
    stack.worker("-c", "1", app=BAD)  # the fix: a worker that has the definition
    requeued = run("dead-letters", "requeue", poison.id, "-A", BAD, "--yes", env=stack.env)
    assert requeued.returncode == 0 and "requeued 1" in requeued.stdout, requeued.stderr
    wait_until(lambda: app.jobs.get(poison.id).status is JobStatus.SUCCEEDED, 30,
               "the requeued job to succeed")
    done = app.jobs.get(poison.id)
    assert isinstance(done.result, int)
    assert [e.type for e in done.errors] == ["UnknownDefinitionError"]  # history kept
    trail = [(e.status.value, e.reason) for e in app.jobs.history(poison.id)]
    assert trail[0] == ("queued", "enqueued")
    assert trail[1][0] == "failed" and "dead letters" in (trail[1][1] or "")
    assert trail[2] == ("queued", "requeued from the dead letters")
    assert [s for s, _ in trail[3:]] == ["running", "succeeded"]
    shown = run("jobs", "history", poison.id, "-A", BAD, "--json", env=stack.env)
    assert [json.loads(line)["status"] for line in shown.stdout.splitlines()] == \
        ["queued", "failed", "queued", "running", "succeeded"]
    human = run("jobs", "history", poison.id, "-A", BAD, env=stack.env)
    assert "requeued from the dead letters" in human.stdout and "UnknownDefinitionError" \
        in human.stdout
    assert app.dead_letters.list() == []


def test_requeue_reports_what_cannot_go_back_and_purge_counts(
        stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory("sqlite")
    app = producer(stack)
    agent = app.agent()
    agent.push([AgentMessage("garbage-1", "default", 2, 0.0, b"not an envelope")])
    [claim] = agent.claim(["default"], 1, lease_seconds=5, consumer="t")
    agent.dead_letter([(claim, "not a jobmaster envelope: no header line")])

    result = app.dead_letters.requeue(["garbage-1", "missing"])
    assert int(result) == 0
    assert "not a jobmaster envelope" in result.errors["garbage-1"]
    assert result.errors["missing"] == "no such dead letter"
    with pytest.raises(JobmasterError, match="no dead letter for job 'missing'"):
        app.dead_letters.get("missing")
    cli = run("dead-letters", "requeue", "garbage-1", "-A", BAD, "--yes", env=stack.env)
    assert cli.returncode != 0 and "not requeued garbage-1" in cli.stderr

    assert run("dead-letters", "purge", "-A", BAD, "--older-than", "1h", "--yes",
               env=stack.env).stdout.strip() == "purged 0"
    assert run("dead-letters", "purge", "-A", BAD, "--yes",
               env=stack.env).stdout.strip() == "purged 1"
    assert app.dead_letters.list() == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("requeue",), "name the job ids to requeue, or pass --all"),
        (("requeue", "x", "--all"), "give job ids or --all, not both"),
        (("purge", "--older-than", "soon", "--yes"), "is not an age such as 30m"),
        (("purge", "--before", "yesterday", "--yes"), "is not an ISO date"),
        (("show", "nope"), "no dead letter for job 'nope'"),
    ],
)
def test_bad_arguments_are_one_line(stack_factory: Callable[..., Stack],
                                    args: tuple[str, ...], expected: str) -> None:
    stack = stack_factory("sqlite")
    result = run("dead-letters", args[0], "-A", BAD, *args[1:], env=stack.env)
    assert_one_line_error(result, expected)
