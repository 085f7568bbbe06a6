"""The ``make bench`` table: ratios, verdicts and the generated section of a document."""

from datetime import UTC, datetime

import pytest

from benchmarks.deployment import BenchConfig
from benchmarks.fsync_bound import render as render_fsync
from benchmarks.measurement import Measurement, percentile
from benchmarks.report import Row, render, replace_section


def measurement(
    name: str, requests: int, p50: float = 2.0, p99: float = 6.0, errors: int = 0
) -> Measurement:
    return Measurement(
        name=name, requests=requests, duration_s=10.0, p50_ms=p50, p99_ms=p99, errors=errors
    )


HELLO = measurement("hello-world", 100_000)


def test_ratio_is_the_scenario_rate_over_its_ceiling_rate() -> None:
    row = Row(measurement("get_hot", 61_000), HELLO, target=0.60)

    assert row.ratio == pytest.approx(0.61)
    assert row.meets_ratio and row.passed


def test_a_missed_ratio_fails_the_row() -> None:
    row = Row(measurement("get_hot", 59_000), HELLO, target=0.60)

    assert not row.meets_ratio
    assert not row.passed


@pytest.mark.parametrize(
    ("p50", "p99", "ok"), [(2.0, 10.0, True), (2.0, 10.01, False), (0.0, 1.0, False)]
)
def test_p99_may_be_at_most_five_times_p50(p50: float, p99: float, ok: bool) -> None:
    row = Row(measurement("list", 10, p50=p50, p99=p99), HELLO)

    assert row.meets_tail is ok
    assert row.passed is ok


def test_any_error_fails_the_row_even_without_a_ratio_target() -> None:
    row = Row(measurement("health", 10, errors=1), HELLO)

    assert row.meets_ratio
    assert not row.passed


def test_render_shows_every_scenario_and_the_failures() -> None:
    rows = [
        Row(measurement("get_hot", 30_000), HELLO, target=0.60),
        Row(measurement("health", 50_000), HELLO),
    ]

    text = render(rows, [HELLO], "context line")

    assert text.startswith("context line\n")
    assert "| get_hot | 3,000 |" in text
    assert "≥ 60%: **FAIL**" in text
    assert "1 of 2 scenarios meet every target" in text
    assert "| hello-world | 10,000 |" in text


def test_replace_section_keeps_what_is_around_the_markers() -> None:
    first = replace_section("# Benchmarks\n\nprose\n", "make bench", "table 1", "## Suite")
    again = replace_section(first + "\nafter\n", "make bench", "table 2", "## Suite")

    assert first.startswith("# Benchmarks\n\nprose\n\n## Suite\n\n<!-- BEGIN make bench")
    assert "table 1" not in again
    assert again.count("table 2") == 1
    assert again.count("## Suite") == 1
    assert again.endswith("<!-- END make bench -->\n\nafter\n")


def test_replace_section_leaves_other_sections_alone() -> None:
    document = replace_section("", "make bench-scale", "SCALE TABLE", "## Scale")
    document = replace_section(document, "make bench", "http", "## HTTP")
    replaced = replace_section(document, "make bench", "new", "## HTTP")

    assert document.startswith("## Scale\n")
    assert replaced.count("SCALE TABLE") == 1
    assert "new" in replaced and "http\n" not in replaced


def test_replace_section_content_is_literal() -> None:
    replaced = replace_section("", "x", r"a \1 b", "## X")

    assert replace_section(replaced, "x", r"c \g<0> d", "## X").count(r"c \g<0> d") == 1


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]

    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 50) == 0.0
    assert percentile([3.0], 99) == 3.0


def test_the_fsync_table_gives_each_round_and_the_median_ratio_of_each_mode() -> None:
    minimal = measurement("minimal", 4_000)
    rates = {
        "fsync": [(measurement("u", 2_000), minimal), (measurement("u", 1_800), minimal)],
        "no fsync": [(measurement("u", 3_600), minimal), (measurement("u", 3_200), minimal)],
    }
    table = render_fsync(BenchConfig(), datetime(2026, 1, 2, 3, 4, tzinfo=UTC), 1.0, rates)

    assert "| fsync | 1 | 200 | 400 | 50% |" in table
    assert "| no fsync | 2 | 320 | 400 | 80% |" in table
    assert "Median ratio: fsync 48%, no fsync 85%." in table


def test_a_ceiling_answering_errors_is_compared_by_its_2xx_answers_and_named() -> None:
    failing = Measurement(
        name="minimal app",
        requests=5_000,
        duration_s=10.0,
        p50_ms=2.0,
        p99_ms=6.0,
        errors=1_000,
        statuses={200: 4_000, 500: 1_000},
    )
    row = Row(measurement("update_large", 2_000), failing, target=0.50)

    assert failing.rate == 500 and failing.ok_rate == 400
    assert row.ratio == pytest.approx(0.50)
    report = render([row], [failing], "context")
    assert "Ceilings that failed requests (ratios count 2xx answers only):" in report
    assert "- minimal app: 1000 errors; statuses 200: 4000, 500: 1000" in report
