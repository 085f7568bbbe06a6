from datetime import timedelta

import pytest

from application.commands import EvaluationChanges, NewEvent
from domain.status import EvaluationStatus
from tests.use_cases.conftest import THRESHOLDS, UseCases

pytestmark = pytest.mark.anyio


async def test_empty_store(app: UseCases) -> None:
    stats = (await app.statistics.execute()).totals

    assert stats.total == 0
    assert stats.by_status == {} and stats.by_language == {}
    assert stats.runtime.count == 0
    assert stats.runtime.average_ms is None and stats.runtime.p50_ms is None
    assert (stats.events, stats.log_bytes, stats.bytes_by_location) == (0, 0, {})


async def test_counts_by_status_and_language(app: UseCases) -> None:
    await app.seed(status=EvaluationStatus.QUEUED, language="python")
    await app.seed(status=EvaluationStatus.QUEUED, language="rust")
    await app.seed(status=EvaluationStatus.RUNNING, language="python")
    deleted = await app.seed(status=EvaluationStatus.FAILED, language="go")
    await app.delete.execute(deleted.id)

    stats = (await app.statistics.execute()).totals

    assert stats.total == 3
    assert stats.by_status == {"queued": 2, "running": 1}
    assert stats.by_language == {"python": 2, "rust": 1}


async def test_runtime_average_and_percentiles(app: UseCases) -> None:
    for runtime in (100, 200, 300, 400):
        await app.seed(status=EvaluationStatus.COMPLETED, runtime_ms=runtime)
    await app.seed(status=EvaluationStatus.QUEUED)  # no runtime: not counted

    stats = (await app.statistics.execute()).totals

    assert stats.runtime.count == 4
    assert stats.runtime.average_ms == 250
    assert (stats.runtime.p50_ms, stats.runtime.p95_ms, stats.runtime.p99_ms) == (200, 400, 400)
    assert stats.runtime.max_ms == 400


async def test_bytes_by_location_events_and_logs(app: UseCases) -> None:
    first = await app.seed(status=EvaluationStatus.RUNNING)
    second = await app.seed(status=EvaluationStatus.RUNNING)
    large = "L" * (THRESHOLDS.large_file_threshold + 6)
    await app.update.execute(first.id, EvaluationChanges(output=large, error="err"))
    await app.update.execute(second.id, EvaluationChanges(output="12345"))
    await app.append_log.execute(first.id, "abc")
    await app.append_log.execute(second.id, "é\n")
    await app.record_event.execute(first.id, NewEvent(event_type="a"))
    await app.record_event.execute(second.id, NewEvent(event_type="b"))
    await app.record_event.execute(second.id, NewEvent(event_type="c"))

    stats = (await app.statistics.execute()).totals

    assert stats.bytes_by_location == {"file": len(large), "inline": 3 + 5}
    assert stats.payloads_by_location == {"file": 1, "inline": 2}
    assert stats.events == 3
    assert stats.log_bytes == 3 + 3


async def test_deleted_evaluations_events_and_logs_are_not_counted(app: UseCases) -> None:
    seeded = await app.seed(status=EvaluationStatus.RUNNING)
    await app.append_log.execute(seeded.id, "abc")
    await app.record_event.execute(seeded.id, NewEvent(event_type="a"))

    await app.delete.execute(seeded.id)
    stats = (await app.statistics.execute()).totals

    assert (stats.total, stats.events, stats.log_bytes) == (0, 0, 0)


async def test_last_24_hours_by_hour_and_the_success_rate(app: UseCases) -> None:
    now = app.clock.now()
    for minutes, status in [
        (30, EvaluationStatus.COMPLETED),  # this hour (12:00)
        (3 * 60 + 10, EvaluationStatus.COMPLETED),  # 08:00
        (3 * 60 + 40, EvaluationStatus.FAILED),  # 08:00
        (3 * 60 + 50, EvaluationStatus.COMPLETED),  # 08:00
        (23 * 60, EvaluationStatus.QUEUED),  # within the last 24 hours
        (25 * 60, EvaluationStatus.COMPLETED),  # older: counted in totals only
    ]:
        await app.seed(status=status, created_at=now - timedelta(minutes=minutes))
    gone = await app.seed(status=EvaluationStatus.QUEUED, created_at=now - timedelta(minutes=5))
    await app.delete.execute(gone.id)

    report = await app.statistics.execute()

    assert report.totals.total == 6
    assert report.last_24h_count == 5
    assert report.peak_hour == now.replace(hour=8, minute=0)
    assert report.success_rate == 4 / 5


async def test_an_empty_store_has_no_peak_and_a_zero_success_rate(app: UseCases) -> None:
    await app.seed(status=EvaluationStatus.RUNNING, created_at=app.clock.now())

    report = await app.statistics.execute()

    assert (report.last_24h_count, report.success_rate) == (1, 0.0)
    assert report.peak_hour == app.clock.now().replace(minute=0)
    app.clock.advance(days=2)
    later = await app.statistics.execute()
    assert (later.last_24h_count, later.peak_hour) == (0, None)
