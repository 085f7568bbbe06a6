"""Server-rendered SVG charts for the explorer: pure functions from numbers to markup.

No script and no inline style: colours come from CSS classes (``c0``…``c7`` or
``s-<status>``) in the explorer's stylesheet, so the pages keep a strict CSP.
Every chart is an ``img`` with a title and a text description for screen readers.
"""

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from markupsafe import Markup, escape

Formatter = Callable[[float], str]
PALETTE_SIZE = 8
_ids = itertools.count(1)


def human_bytes(value: float | None) -> str:
    """``1536`` → ``1.5 KiB``; ``None`` → ``—``."""
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def percent(value: float) -> str:
    """``66.667`` → ``66.7 %`` (a value already in percent)."""
    return f"{value:.1f} %"


def plain_number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (1 for zero or less)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        candidate = step * 10.0**exponent
        if candidate >= value * (1 - 1e-9):
            return candidate
    raise AssertionError("unreachable")  # pragma: no cover


def _open_svg(width: int, height: int, title: str, description: str) -> tuple[str, list[str]]:
    chart_id = f"chart-{next(_ids)}"
    head = (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d" preserveAspectRatio="xMinYMin meet">'
        f'<title id="{chart_id}-t">{escape(title)}</title>'
        f'<desc id="{chart_id}-d">{escape(description)}</desc>'
    )
    return chart_id, [head]


def _series_class(name: str, index: int, classes: dict[str, str] | None) -> str:
    if classes and name in classes:
        return classes[name]
    return f"c{index % PALETTE_SIZE}"


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    title: str,
    formatter: Formatter = plain_number,
    classes: dict[str, str] | None = None,
    width: int = 560,
    row_height: int = 28,
) -> Markup:
    """Horizontal bars, one per ``(label, value)``, scaled to the largest value."""
    label_width, value_width, pad = 150, 90, 6
    height = max(len(bars), 1) * row_height + 2 * pad
    description = "; ".join(f"{label}: {formatter(value)}" for label, value in bars) or "no data"
    _, parts = _open_svg(width, height, title, description)
    if not bars:
        parts.append(
            f'<text class="empty" x="{width / 2:.0f}" y="{height / 2 + 4:.0f}" '
            f'text-anchor="middle">No data yet</text>'
        )
    top = max((value for _, value in bars), default=0)
    scale = (width - label_width - value_width) / top if top > 0 else 0
    for index, (label, value) in enumerate(bars):
        y = pad + index * row_height
        bar_width = max(value * scale, 0)
        css = _series_class(label, index, classes)
        parts.append(
            f'<text class="label" x="{label_width - 8}" y="{y + row_height / 2 + 4:.1f}" '
            f'text-anchor="end">{escape(label)}</text>'
            f'<rect class="bar {css}" x="{label_width}" y="{y + 4}" '
            f'width="{bar_width:.1f}" height="{row_height - 8}" rx="3">'
            f"<title>{escape(label)}: {escape(formatter(value))}</title></rect>"
            f'<text class="value" x="{label_width + bar_width + 6:.1f}" '
            f'y="{y + row_height / 2 + 4:.1f}">{escape(formatter(value))}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


def stacked_columns(
    labels: Sequence[str],
    series: Mapping[str, Sequence[int]],
    *,
    title: str,
    classes: dict[str, str] | None = None,
    width: int = 640,
    height: int = 240,
) -> Markup:
    """One column per label, stacked by series (in ``series`` order), with a y axis.

    Series that are zero everywhere are left out of the drawing and the description.
    """
    left, right, top, bottom = 40, 8, 10, 28
    shown = {name: list(values) for name, values in series.items() if any(values)}
    totals = [sum(values[index] for values in shown.values()) for index in range(len(labels))]
    step = max(nice_ceiling(max(totals, default=0) / 4), 1.0)
    ticks = max(math.ceil(max(totals, default=0) / step), 1)
    ceiling = step * ticks
    plot_w, plot_h = width - left - right, height - top - bottom
    description = (
        "; ".join(f"{name}: {sum(values)}" for name, values in shown.items())
        + f" over {len(labels)} periods"
        if shown
        else "no data"
    )
    _, parts = _open_svg(width, height, title, description)
    for tick in range(ticks + 1):
        value = step * tick
        y = top + plot_h - plot_h * tick / ticks
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(plain_number(value))}</text>"
        )
    slot = plot_w / max(len(labels), 1)
    column = max(slot * 0.7, 1)
    every = max(1, math.ceil(len(labels) / 8))
    for index, label in enumerate(labels):
        x = left + index * slot + (slot - column) / 2
        base = float(top + plot_h)
        for position, (name, values) in enumerate(shown.items()):
            value = values[index]
            if not value:
                continue
            bar_height = plot_h * value / ceiling
            base -= bar_height  # float from here on
            css = _series_class(name, position, classes)
            parts.append(
                f'<rect class="bar {css}" x="{x:.1f}" y="{base:.1f}" width="{column:.1f}" '
                f'height="{bar_height:.1f}"><title>{escape(label)} · {escape(name)}: '
                f"{value}</title></rect>"
            )
        if index % every == 0:
            parts.append(
                f'<text class="axis" x="{x + column / 2:.1f}" y="{height - 8}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    if not shown:
        parts.append(
            f'<text class="empty" x="{left + plot_w / 2:.0f}" y="{top + plot_h / 2:.0f}" '
            f'text-anchor="middle">No evaluations in this period</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


def legend(names: Sequence[str], classes: dict[str, str] | None = None) -> Markup:
    """An HTML legend matching the series classes of a chart."""
    items = "".join(
        f'<li><span class="swatch {_series_class(name, index, classes)}" aria-hidden="true">'
        f"</span>{escape(name)}</li>"
        for index, name in enumerate(names)
    )
    return Markup(f'<ul class="legend">{items}</ul>')  # noqa: S704 - names escaped above


def timeline(
    points: Sequence[tuple[datetime, str]], *, title: str, width: int = 640, height: int = 70
) -> Markup:
    """Numbered markers on a time axis, placed by timestamp (first to last)."""
    left, right, axis_y = 16, 16, 30
    description = (
        "; ".join(
            f"{index}. {label} at {moment:%H:%M:%S}"
            for index, (moment, label) in enumerate(points, 1)
        )
        or "no events"
    )
    _, parts = _open_svg(width, height, title, description)
    parts.append(
        f'<line class="axis-line" x1="{left}" x2="{width - right}" y1="{axis_y}" y2="{axis_y}"/>'
    )
    if points:
        start, end = points[0][0], points[-1][0]
        span = (end - start).total_seconds()
        usable = width - left - right
        for index, (moment, label) in enumerate(points, 1):
            offset = (moment - start).total_seconds() / span if span > 0 else 0.5
            x = left + usable * offset
            parts.append(
                f'<g class="marker"><circle cx="{x:.1f}" cy="{axis_y}" r="7">'
                f"<title>{index}. {escape(label)} at {moment:%Y-%m-%d %H:%M:%S} UTC</title>"
                f'</circle><text x="{x:.1f}" y="{axis_y + 4}" text-anchor="middle">{index}</text>'
                "</g>"
            )
        parts.append(
            f'<text class="axis" x="{left}" y="{height - 8}">{moment_label(start)}</text>'
            f'<text class="axis" x="{width - right}" y="{height - 8}" text-anchor="end">'
            f"{moment_label(end)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


def moment_label(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"
