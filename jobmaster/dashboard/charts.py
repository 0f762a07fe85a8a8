"""Charts as inline SVG, drawn on the server: no charting library, no script, nothing a
strict Content-Security-Policy refuses (SVG attributes, not ``style``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT, PAD = 600, 140, 22
TOP = PAD / 2 + 4
"""Where the axis's top value is drawn (its gridline)."""


@dataclass(frozen=True)
class Series:
    """One line or stack of bars: a name for the legend, a CSS class for its colour, and a
    value per point (``None``: no value there)."""

    name: str
    css: str
    values: Sequence[float | None]


def bars(series: Sequence[Series], labels: Sequence[str], *, title: str,
         unit: str = "") -> str:
    """Stacked bars, one per label (a minute), each series stacked in order."""
    count = len(labels)
    totals = [sum(s.values[i] or 0 for s in series) for i in range(count)]
    top = _nice(max(totals, default=0))
    step = (WIDTH - PAD) / max(count, 1)
    parts = []
    for i in range(count):
        base = 0.0
        for s in series:
            value = s.values[i] or 0
            if value <= 0:
                continue
            y = _y(base + value, top)
            h = _y(base, top) - y
            parts.append(f'<rect class="{s.css}" x="{PAD + i * step:.1f}" y="{y:.1f}" '
                         f'width="{max(step - 1, 1):.1f}" height="{h:.1f}">'
                         f'<title>{escape(labels[i])} {escape(s.name)}: '
                         f'{_fmt(value)}{unit}</title></rect>')
            base += value
    return _frame(title, top, unit, labels, series, "".join(parts))


def line(series: Sequence[Series], labels: Sequence[str], *, title: str,
         unit: str = "") -> str:
    """Lines, one per series, breaking where a point has no value."""
    count = len(labels)
    top = _nice(max((v for s in series for v in s.values if v is not None), default=0))
    step = (WIDTH - PAD) / max(count - 1, 1)
    parts = []
    for s in series:
        runs: list[list[str]] = [[]]
        for i, value in enumerate(s.values):
            if value is None:
                runs.append([])
                continue
            y = _y(value, top)
            runs[-1].append(f"{PAD + i * step:.1f},{y:.1f}")
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                parts.append(f'<circle class="{s.css}" cx="{cx}" cy="{cy}" r="2"/>')
            elif run:
                parts.append(f'<polyline class="{s.css}" fill="none" '
                             f'points="{" ".join(run)}"/>')
    return _frame(title, top, unit, labels, series, "".join(parts))


def _frame(title: str, top: float, unit: str, labels: Sequence[str],
           series: Sequence[Series], body: str) -> str:
    legend = "".join(f'<tspan class="{s.css}-text" dx="{10 if i else 0}">■ '
                     f'{escape(s.name)}</tspan>' for i, s in enumerate(series))
    first = escape(labels[0]) if labels else ""
    last = escape(labels[-1]) if labels else ""
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT + 14}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<text class="axis" x="{PAD}" y="10">{_fmt(top)}{escape(unit)}</text>'
        f'<text class="axis" x="{WIDTH}" y="10" text-anchor="end">{legend}</text>'
        f'<line class="grid" x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH}" '
        f'y2="{HEIGHT - PAD}"/>'
        f'<line class="grid" x1="{PAD}" y1="{TOP}" x2="{WIDTH}" y2="{TOP}"/>'
        f'{body}'
        f'<text class="axis" x="{PAD}" y="{HEIGHT}">{first}</text>'
        f'<text class="axis" x="{WIDTH}" y="{HEIGHT}" text-anchor="end">{last}</text>'
        f'</svg>')


def _y(value: float, top: float) -> float:
    """The height in the drawing of ``value`` on an axis from 0 to ``top``."""
    return HEIGHT - PAD - (HEIGHT - PAD - TOP) * value / top


def _nice(value: float) -> float:
    """A round top for an axis at or above ``value`` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10 if value >= 1 else 1.0
    if value < 1:
        magnitude = 0.1
        while magnitude / 10 >= value:
            magnitude /= 10
    for factor in (1, 2, 5, 10):
        if value <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.2g}"


__all__ = ["Series", "bars", "line"]
