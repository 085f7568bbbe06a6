"""``make bench-scale``: appended data sets, the checks on each answer, the growth table."""

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from benchmarks.scale_http import Expect, Probe, Timing, check
from benchmarks.scale_report import PlannerState, SizeRun, Unanalyzed, render
from benchmarks.scale_rows import ScaleData

FIRST_PAGE = Probe("`/evaluations?limit=50`", ("/evaluations?limit=50",), 3.0, Expect.LIST)
DEEP = Probe("deep offset", ("/evaluations?offset=500000&limit=50",), 3.0, Expect.DEEP_OFFSET)


def test_a_table_grown_by_appending_is_the_table_loaded_at_once() -> None:
    whole = ScaleData(300, 3000)
    first, second = ScaleData(100, 1000), ScaleData(300, 2000, start=100)

    appended = [*first.evaluation_rows(0, 100), *second.evaluation_rows(100, 300)]

    assert [row[0] for row in appended] == [row[0] for row in whole.evaluation_rows(0, 300)]
    assert [row[6] for row in appended] == [whole.created_at(i) for i in range(300)]
    assert sum(second.events_of(i) for i in range(100, 300)) == 2000
    assert len(list(second.event_rows(100, 300))) == 2000


def test_the_newest_percent_of_the_table_a_segment_makes_is_live() -> None:
    live = {"queued", "provisioning", "running"}
    first, older = ScaleData(1000, 0), ScaleData(3000, 0, start=1000)

    statuses = [row[3] for row in first.evaluation_rows(0, 1000)]
    assert all(s in live for s in statuses[:10])
    assert not any(s in live for s in statuses[10:])
    assert not any(row[3] in live for row in older.evaluation_rows(1000, 3000))


def test_the_table_grows_into_its_past_from_now() -> None:
    end = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
    data = ScaleData(1_000_000, 0, end=end)

    assert data.created_at(0) == end
    assert data.created_at(1) < data.created_at(0)
    # About 2,740 records a day: the last 24 hours are as full as in production.
    day = sum(1 for i in range(5000) if data.created_at(i) > end - timedelta(days=1))
    assert 2700 <= day <= 2780


def answer(status: int, body: object, kind: str = "application/json") -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body).encode(), headers={"content-type": kind})


@pytest.mark.parametrize(
    ("probe", "response", "broken", "refused"),
    [
        (FIRST_PAGE, answer(200, {"evaluations": [{"id": "x"}]}), None, False),
        (FIRST_PAGE, answer(200, {"evaluations": []}), "no evaluations in the page", False),
        (FIRST_PAGE, answer(500, {"detail": "boom"}), '500: {"detail": "boom"}', False),
        (DEEP, answer(200, {"evaluations": [{"id": "x"}]}), None, False),
        (
            DEEP,
            answer(400, {"detail": "too deep: use cursor"}, "application/problem+json"),
            None,
            True,
        ),
        (
            DEEP,
            answer(400, {"detail": "too deep"}, "application/problem+json"),
            "400, detail not pointing to cursor: too deep",
            False,
        ),
    ],
)
def test_every_answer_is_checked(
    probe: Probe, response: httpx.Response, broken: str | None, refused: bool
) -> None:
    assert check(probe, response) == (broken, refused)


def test_an_html_page_must_be_html() -> None:
    page = Probe("/explorer", ("/explorer",), 100.0, Expect.HTML)

    html = httpx.Response(200, content=b"<html></html>", headers={"content-type": "text/html"})

    assert check(page, html)[0] is None
    assert check(page, answer(200, {"a": 1}))[0] == "content type application/json"


def test_a_refused_deep_offset_passes_and_a_slow_answered_one_fails() -> None:
    assert Timing(DEEP, [], refused=True).passed is True
    assert Timing(DEEP, [2.0, 2.5, 2.9]).verdict == "pass (answered)"
    assert Timing(DEEP, [40.0]).verdict == "**FAIL** (answered)"
    assert Timing(FIRST_PAGE, [1.0], broken="500").passed is False


def size_run(evaluations: int, first_page_ms: float) -> SizeRun:
    state = PlannerState(0, None, evaluations)
    analyzed = PlannerState(30, datetime(2026, 1, 1, tzinfo=UTC), 0)
    return SizeRun(
        evaluations=evaluations,
        events=evaluations * 10,
        load_s=1.0,
        analyze_s=1.0,
        database_bytes=evaluations * 3500,
        free_bytes=10**11,
        unanalyzed=Unanalyzed([Timing(FIRST_PAGE, [40.0])], 10.0, state, analyzed),
        http=[Timing(FIRST_PAGE, [first_page_ms] * 7)],
        values={"offset": "50,000"},
    )


def test_the_growth_table_has_a_column_a_size_and_marks_what_misses_its_target() -> None:
    text = render(
        [size_run(100_000, 1.5), size_run(1_000_000, 4.0)],
        repeat=7,
        workers=1,
        events_max=10_000_000,
    )

    assert "| read (p50 ms over HTTP) | target | 100,000 | 1,000,000 |" in text
    assert "| `/evaluations?limit=50` | < 3 ms | 1.50 | **4.00** |" in text
    assert "the service ran ANALYZE on `evaluations` meanwhile" in text
