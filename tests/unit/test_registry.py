"""The definitions registry's pure parts: what a worker stores, how it is read back and
how arguments are checked against it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from jobmaster import App, JobContext
from jobmaster.exceptions import ArgumentsError, InvalidOptionError
from jobmaster.registry import (
    Definitions,
    definition_rows,
    lanes_banner,
    registered_from_row,
)

AT = datetime(2026, 1, 1, tzinfo=UTC)


def _app() -> App:
    app = App("c1", master="sqlite:///:memory:", agents="memory://")

    @app.job(definition_id="send-email", lane="emails", max_retries=2, metadata={"k": "v"},
             expires=datetime(2030, 1, 1, tzinfo=UTC))
    def send_email(ctx: JobContext, to: str, subject: str = "", *, n: Decimal = Decimal(1),
                   **extra: Any) -> None: ...

    @app.job(definition_id="add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


def _registered(definition_id: str) -> Any:
    app = _app()
    rows = definition_rows(app.definitions.values(), cluster="c1", lanes=["default"],
                           hostname="h", worker="w", at=AT)
    return registered_from_row(next(r for r in rows if r["definition_id"] == definition_id))


def test_app_definitions_is_a_dict_of_this_processes_definitions() -> None:
    app = _app()
    assert isinstance(app.definitions, Definitions) and isinstance(app.definitions, dict)
    assert sorted(app.definitions) == ["add", "send-email"]


def test_rows_store_parameters_without_the_context_and_json_defaults_only() -> None:
    email = _registered("send-email")
    assert [(p.name, p.kind, p.required, p.annotation) for p in email.parameters] == [
        ("to", "POSITIONAL_OR_KEYWORD", True, "str"),
        ("subject", "POSITIONAL_OR_KEYWORD", False, "str"),
        ("n", "KEYWORD_ONLY", False, "Decimal"),
        ("extra", "VAR_KEYWORD", False, "Any")]
    assert email.parameters[1].has_default and email.parameters[1].default == ""
    assert not email.parameters[2].has_default  # a Decimal is not JSON
    assert email.signature == "(to: str, subject: str = '', n: Decimal = ..., **extra: Any)"


def test_stored_options_round_trip_into_job_options() -> None:
    email = _registered("send-email")
    assert email.options["expires"] == "2030-01-01T00:00:00+00:00"
    options = email.job_options()
    assert (options.lane, options.max_retries, options.metadata) == ("emails", 2, {"k": "v"})
    assert options.expires == datetime(2030, 1, 1, tzinfo=UTC)


def test_bad_stored_options_are_refused_by_name() -> None:
    add = _registered("add")
    bad = registered_from_row({**_row(add), "options": {"max_retries": -1}})
    with pytest.raises(InvalidOptionError, match="registered options of job 'add'.*max_retries"):
        bad.job_options()


def _row(d: Any) -> dict[str, Any]:
    return {"definition_id": d.id, "parameters": [], "options": {}, "lanes": [],
            "hostname": "h", "worker": "w", "registered_at": AT, "last_seen": AT}


def test_bind_names_missing_and_unexpected_arguments() -> None:
    add = _registered("add")
    assert add.bind({"x": 1, "y": 2}) == {"x": 1, "y": 2}
    with pytest.raises(ArgumentsError) as refused:
        add.bind({"x": 1, "z": 3})
    assert "missing required argument(s) 'y'" in str(refused.value)
    assert "unexpected argument(s) 'z'" in str(refused.value)
    with pytest.raises(ArgumentsError, match="must be a dict"):
        add.bind([1, 2])  # type: ignore[arg-type]
    email = _registered("send-email")
    assert email.bind({"to": "a", "whatever": 1}) == {"to": "a", "whatever": 1}  # **extra


def test_malformed_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="malformed"):
        registered_from_row({**_row(_registered("add")), "parameters": "x"})
    with pytest.raises(ValueError, match="parameter"):
        registered_from_row({**_row(_registered("add")), "parameters": [{"kind": "x"}]})


def test_banner_lists_definitions_per_lane_and_those_not_served() -> None:
    app = _app()
    assert lanes_banner(app.definitions.values(), ["default", "emails"], "default") == [
        "lane default: add", "lane emails: send-email"]
    assert lanes_banner(app.definitions.values(), ["batch"], "default") == [
        "lane batch: (none by default)",
        "not served here (their lane is not one of this worker's): add, send-email"]
