"""``jobmaster doctor`` against real deployments: what it reports, and its exit status."""

from __future__ import annotations

from collections.abc import Callable

from tests.acceptance.test_operations_cli import cli
from tests.conftest import Stack


def test_doctor_on_a_shared_redis_without_signing_or_aof(
        stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory("redis")
    stack.app().migrate()
    report = cli(stack, "doctor")
    assert report.returncode == 0, report.stderr  # warnings only
    lines = report.stdout.splitlines()
    assert any(line.startswith("ok") and "master" in line for line in lines)
    assert any(line.startswith("WARN") and "signing" in line for line in lines)
    assert any(line.startswith("WARN") and "durability" in line for line in lines)  # no AOF
    assert any(line.startswith("WARN") and "workers" in line for line in lines)
    assert any(line.startswith("ok") and "clock" in line for line in lines)
    assert cli(stack, "doctor", "--strict").returncode == 1


def test_doctor_fails_on_a_master_without_its_schema(
        stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory("sqlite", auto_migrate="false", secret="k", sign_envelopes="true")
    report = cli(stack, "doctor")
    assert report.returncode == 1
    assert "FAIL  master" in report.stdout and "migrate" in report.stdout
    assert "ok    signing" in report.stdout
