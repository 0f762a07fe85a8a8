"""``jobmaster schedules ...`` in real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

from tests.conftest import ROOT, Stack


def run(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobmaster", *args], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, **stack.env}, timeout=60,
    )


def test_list_pause_resume_delete(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory("sqlite")
    app = stack.app()
    app.definition("add").recurring("every weekday at 18:00", kwargs={"x": 1, "y": 2},
                                    name="evening", tz="Europe/Paris")
    target = ("-A", "tests.fixtures.workapp")
    listed = run(stack, "schedules", "list", *target)
    assert listed.returncode == 0, listed.stderr
    assert "evening" in listed.stdout and "active" in listed.stdout
    assert "Europe/Paris" in listed.stdout
    [line] = run(stack, "schedules", "list", *target, "--json").stdout.splitlines()
    record = json.loads(line)
    assert (record["name"], record["timezone"], record["paused"]) == \
        ("evening", "Europe/Paris", False)
    assert record["kwargs"] == {"x": 1, "y": 2} and record["next_fire_at"]
    assert run(stack, "schedules", "pause", "evening", *target).stdout.strip() == \
        "evening: paused"
    assert app.schedules.get("evening").paused
    resumed = run(stack, "schedules", "resume", "evening", *target)
    assert resumed.stdout.startswith("evening: active, next ")
    assert not app.schedules.get("evening").paused
    assert run(stack, "schedules", "delete", "evening", *target).returncode == 0
    assert app.schedules.list() == []
    missing = run(stack, "schedules", "pause", "evening", *target)
    assert missing.returncode != 0
    assert "no schedule 'evening'" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_preview_prints_fire_times_or_names_the_bad_word(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory("sqlite")
    good = run(stack, "schedules", "preview", "every 15 minutes between 9am and 5pm on weekdays",
               "-n", "4")
    assert good.returncode == 0
    lines = good.stdout.strip().splitlines()
    assert len(lines) == 5 and "between" in lines[0]
    bad = run(stack, "schedules", "preview", "every 5 fortnights")
    assert bad.returncode != 0
    assert "'fortnights'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_preview_says_which_grammar_read_the_expression(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory("sqlite")
    ours = run(stack, "schedules", "preview", "every week", "-n", "1")
    assert ours.returncode == 0 and ours.stdout.startswith("every week on Mon at 00:00")
    theirs = run(stack, "schedules", "preview", "every week", "-n", "1", "--dialect",
                 "naturalcron")
    assert theirs.returncode == 0 and theirs.stdout.startswith("NaturalCron 'every week'")
    keyword = run(stack, "schedules", "preview", "@every 2 days @at 9am", "-n", "2")
    assert keyword.returncode == 0 and keyword.stdout.startswith("NaturalCron")
    fires = [line.split()[0] for line in keyword.stdout.splitlines()[1:]]
    assert all(f.endswith("T09:00:00+00:00") for f in fires)
    wrong = run(stack, "schedules", "preview", "every week", "--dialect", "quartz")
    assert wrong.returncode != 0 and "quartz" in wrong.stderr
