"""The explorer's SVG chart helpers: pure functions, checked on their markup."""

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

from interfaces.http.explorer.charts import (
    bar_chart,
    human_bytes,
    legend,
    nice_ceiling,
    stacked_columns,
    timeline,
)

SVG = "{http://www.w3.org/2000/svg}"


def _parse(markup: str) -> ElementTree.Element:
    return ElementTree.fromstring(
        markup.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)
    )


def _text(root: ElementTree.Element, tag: str) -> str:
    """The text of the first ``tag`` element under ``root``; fails if there is none."""
    element = root.find(f"{SVG}{tag}")
    assert element is not None, f"no <{tag}>"
    assert element.text is not None, f"<{tag}> is empty"
    return element.text


def _number(element: ElementTree.Element, attribute: str) -> float:
    value = element.get(attribute)
    assert value is not None, f"<{element.tag}> has no {attribute}"
    return float(value)


def test_human_bytes() -> None:
    assert human_bytes(None) == "—"
    assert human_bytes(0) == "0 B"
    assert human_bytes(1023) == "1023 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(5 * 1024**3) == "5.0 GiB"


def test_nice_ceiling() -> None:
    assert [nice_ceiling(v) for v in (0, 1, 3, 7, 12, 50, 51)] == [1, 1, 5, 10, 20, 50, 100]
    assert nice_ceiling(0.3) == 0.5


def test_bar_chart_scales_bars_to_the_largest_value_and_escapes_labels() -> None:
    svg = str(bar_chart([("<inline>", 10), ("file", 40)], title="Bytes & more"))
    root = _parse(svg)
    assert root.get("role") == "img"
    assert _text(root, "title") == "Bytes & more"
    assert "&lt;inline&gt;: 10" in svg
    widths = [_number(rect, "width") for rect in root.iter(f"{SVG}rect")]
    assert widths[1] == 4 * widths[0]
    assert "style=" not in svg  # the CSP allows no inline style


def test_bar_chart_without_data_says_so() -> None:
    svg = str(bar_chart([], title="Empty"))
    assert "No data yet" in svg
    assert _text(_parse(svg), "desc") == "no data"


def test_stacked_columns_stack_series_and_skip_empty_ones() -> None:
    svg = str(
        stacked_columns(
            ["07-01", "07-02"],
            {"completed": [2, 0], "failed": [1, 3], "queued": [0, 0]},
            title="Per day",
            classes={"completed": "s-completed"},
        )
    )
    root = _parse(svg)
    rects = list(root.iter(f"{SVG}rect"))
    assert [r.get("class") for r in rects] == ["bar s-completed", "bar c1", "bar c1"]
    heights = [_number(r, "height") for r in rects]
    assert abs(heights[0] - 2 * heights[1]) < 0.2
    assert "queued" not in _text(root, "desc")
    axis = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "axis"]
    assert axis[:4] == ["0", "1", "2", "3"]  # whole-number ticks for counts


def test_stacked_columns_without_data() -> None:
    assert "No evaluations in this period" in str(stacked_columns(["a"], {"x": [0]}, title="t"))


def test_legend_matches_series_classes() -> None:
    html = str(legend(["completed", "<b>"], {"completed": "s-completed"}))
    assert 'class="swatch s-completed"' in html
    assert "&lt;b&gt;" in html


def test_timeline_places_markers_by_time() -> None:
    start = datetime(2024, 7, 1, 12, tzinfo=UTC)
    points = [
        (start, "queued"),
        (start + timedelta(seconds=30), "started"),
        (start + timedelta(seconds=120), "done"),
    ]
    root = _parse(str(timeline(points, title="t", width=240)))
    xs = [_number(c, "cx") for c in root.iter(f"{SVG}circle")]
    assert xs[0] == 16 and xs[-1] == 240 - 16
    assert abs((xs[1] - xs[0]) / (xs[2] - xs[0]) - 0.25) < 0.001
    assert "1. queued at 12:00:00" in _text(root, "desc")


def test_timeline_of_one_event_and_of_none() -> None:
    one = _parse(str(timeline([(datetime(2024, 7, 1, tzinfo=UTC), "x")], title="t", width=200)))
    assert [_number(c, "cx") for c in one.iter(f"{SVG}circle")] == [100]
    assert "no events" in str(timeline([], title="t"))
