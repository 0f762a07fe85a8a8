"""``jobmaster definitions``: the registry of definitions, from an app without the code."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from tests.acceptance.test_cli import run
from tests.conftest import Stack, wait_until


def test_definitions_lists_what_workers_registered(stack_factory: Callable[..., Stack]
                                                   ) -> None:
    stack = stack_factory("sqlite")
    stack.worker("-c", "1", "--lane", "default,emails", app="tests.fixtures.registryapp")
    producer = stack.app("tests.fixtures.producerapp")
    try:
        wait_until(lambda: len(producer.definitions.list()) == 3, timeout=60,
                   what="the worker to register its definitions")
    finally:
        producer.close()

    human = run("definitions", "-A", "tests.fixtures.producerapp", env=stack.env)
    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    assert [line.split("(")[0] for line in lines] == ["add", "anything", "send-email"]
    email = lines[2]
    assert email.startswith("send-email(to: str, subject: str = 'hello', "
                            "cc: list[str] | None = None)  lanes=default,emails"), email
    assert 'lane="emails"' in email and "max_retries=2" in email
    assert 'metadata={"category": "mail"}' in email
    assert f"on {stack.env['JOBMASTER_NAME']}@" in email and "seen " in email

    as_json = run("definitions", "-A", "tests.fixtures.producerapp", "--json", env=stack.env)
    assert as_json.returncode == 0, as_json.stderr
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [r["id"] for r in records] == ["add", "anything", "send-email"]
    email_record = records[2]
    assert email_record["lanes"] == ["default", "emails"]
    assert email_record["options"] == {"lane": "emails", "timeout": 30.0, "max_retries": 2,
                                       "retry_delay": 1.5, "metadata": {"category": "mail"}}
    assert email_record["parameters"][0] == {"name": "to", "kind": "POSITIONAL_OR_KEYWORD",
                                             "required": True, "annotation": "str"}
    assert email_record["parameters"][1]["default"] == "hello"
    assert datetime.fromisoformat(email_record["last_seen"]).tzinfo is not None
    assert email_record["worker"].startswith(stack.env["JOBMASTER_NAME"] + "@")


def test_definitions_of_a_cluster_without_workers_is_empty(stack_factory: Callable[..., Stack]
                                                           ) -> None:
    stack = stack_factory("sqlite")
    result = run("definitions", "-A", "tests.fixtures.producerapp", "--json", env=stack.env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
