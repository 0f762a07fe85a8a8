"""The dashboard's pure parts: charts as SVG, argument redaction, filters from a query."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

pytest.importorskip("starlette")

from jobmaster.dashboard import charts  # noqa: E402
from jobmaster.dashboard.views import _job_filters, _job_form, redact_secrets  # noqa: E402


def test_bars_stack_series_and_scale_to_a_round_top() -> None:
    svg = charts.bars([charts.Series("ok", "ok", [3, 0, 7]),
                       charts.Series("bad", "bad", [1, None, 0])],
                      ["08:00", "08:01", "08:02"], title="ended")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<rect") == 3  # zero and missing values draw nothing
    assert ">10<" in svg  # 7 rounds up to an axis top of 10
    assert "style=" not in svg  # nothing a strict CSP refuses


def test_a_line_breaks_where_a_point_has_no_value() -> None:
    svg = charts.line([charts.Series("wait", "ok", [0.5, None, 0.2, 0.3])],
                      ["a", "b", "c", "d"], title="wait", unit=" s")
    assert svg.count("<circle") == 1 and svg.count("<polyline") == 1
    assert "0.5 s" in svg


def test_labels_and_names_are_escaped() -> None:
    svg = charts.bars([charts.Series("<b>", "ok", [1])], ["<i>"], title="<script>")
    assert "<script>" not in svg and "<b>" not in svg and "&lt;i&gt;" in svg


def test_secret_looking_arguments_are_hidden_at_any_depth() -> None:
    shown = redact_secrets(None, {"to": "a@example.com", "password": "hunter2",
                                  "nested": [{"api_key": "k", "n": 1}], "Token": "t"})
    assert shown == {"to": "a@example.com", "password": "•••",
                     "nested": [{"api_key": "•••", "n": 1}], "Token": "•••"}


def test_filters_from_a_query() -> None:
    form = _job_form({"status": "failed", "meta": 'tenant="acme"',
                      "since": "2026-11-26T08:00", "lane": " "})
    filters = _job_filters(form)
    assert filters == {"status": "failed", "metadata": {"tenant": "acme"},
                       "created_after": datetime(2026, 11, 26, 8, 0, tzinfo=UTC)}
    assert form["lane"] == ""
    assert _job_filters(_job_form({"meta": "n=3"}))["metadata"] == {"n": 3}
    assert _job_filters(_job_form({"meta": "plan=gold"}))["metadata"] == {"plan": "gold"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        _job_filters(_job_form({"meta": "novalue"}))
    with pytest.raises(ValueError, match="not a date"):
        _job_filters(_job_form({"since": "yesterday"}))
