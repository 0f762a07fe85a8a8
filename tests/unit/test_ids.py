"""Job ids: UUIDv7, ordered by creation time."""

from __future__ import annotations

import types
import uuid

import pytest

from jobmaster import ids
from jobmaster.ids import new_job_id


def test_is_a_canonical_uuid_string() -> None:
    value = new_job_id()
    assert isinstance(value, str)
    assert len(value) == 36
    assert str(uuid.UUID(value)) == value


def test_version_and_variant_bits() -> None:
    for _ in range(200):
        u = uuid.UUID(new_job_id())
        assert u.version == 7
        assert u.variant == uuid.RFC_4122
        assert (u.int >> 76) & 0xF == 0x7
        assert (u.int >> 62) & 0x3 == 0b10


def test_timestamp_is_unix_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    ms = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z
    monkeypatch.setattr(ids, "time", types.SimpleNamespace(time_ns=lambda: ms * 1_000_000 + 999))
    u = uuid.UUID(new_job_id())
    assert u.int >> 80 == ms
    assert u.version == 7


def test_sortable_by_time_across_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(range(1_767_225_600_000, 1_767_225_600_000 + 500))
    monkeypatch.setattr(ids, "time",
                        types.SimpleNamespace(time_ns=lambda: next(clock) * 1_000_000))
    made = [new_job_id() for _ in range(500)]
    assert sorted(made) == made
    assert sorted(made, key=lambda v: uuid.UUID(v).bytes) == made


def test_sortable_across_far_apart_times(monkeypatch: pytest.MonkeyPatch) -> None:
    made = []
    for ms in (1, 2**40, 2**47, 2**48 - 1):
        monkeypatch.setattr(ids, "time", types.SimpleNamespace(time_ns=lambda ms=ms: ms * 10**6))
        made.append(new_job_id())
    assert sorted(made) == made


def test_unique() -> None:
    made = [new_job_id() for _ in range(20_000)]
    assert len(set(made)) == len(made)


def test_unique_within_one_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    now_ns = 1_767_225_600_000 * 10**6
    monkeypatch.setattr(ids, "time", types.SimpleNamespace(time_ns=lambda: now_ns))
    made = [new_job_id() for _ in range(5_000)]
    assert len(set(made)) == len(made)
    assert {uuid.UUID(v).int >> 80 for v in made} == {1_767_225_600_000}
