"""EvaluationQueries contract: statistics, daily and hourly counts, and the database
inspector agree everywhere (the listing: test_evaluation_queries.py).
"""

from datetime import timedelta

import pytest

from domain.identifiers import EvaluationId
from domain.payload import PayloadLocation, StoredPayload
from domain.status import EvaluationStatus
from infrastructure.sql.engine import create_engine, create_session_maker
from infrastructure.sql.inspector import SqlDatabaseInspector
from interfaces.settings import DatabaseSettings
from tests.contract.conftest import BASE_TIME, PortStore, make_evaluation
from tests.contract.query_records import add, append_timeline, delete

pytestmark = pytest.mark.anyio


async def test_statistics_on_a_known_data_set(sql_backend: PortStore) -> None:
    inline = StoredPayload(PayloadLocation.INLINE, size=100, text="x")
    in_file = StoredPayload(PayloadLocation.FILE, size=200_000, text="y", key="k")
    runtimes = [10 * i for i in range(1, 21)]  # 10 .. 200
    records = [
        make_evaluation(
            f"s{i:02d}",
            status=EvaluationStatus.COMPLETED,
            runtime_ms=runtime,
            language="python" if i < 15 else "rust",
            output=inline,
        )
        for i, runtime in enumerate(runtimes)
    ]
    records.append(make_evaluation("f1", status=EvaluationStatus.FAILED, error=in_file))
    records.append(make_evaluation("f2", status=EvaluationStatus.FAILED, output=in_file))
    records.append(make_evaluation("q1", status=EvaluationStatus.QUEUED))
    records.append(make_evaluation("deleted", runtime_ms=99_999, output=in_file))
    await add(sql_backend, *records)
    await append_timeline(sql_backend, "s00", events=["ev0", "ev1", "ev2"])
    await append_timeline(sql_backend, "deleted", events=["x"], logs=["never counted"])
    await append_timeline(sql_backend, "s01", logs=["héllo\n"])
    await append_timeline(sql_backend, "s02", logs=["abc"])
    await delete(sql_backend, "deleted")

    async with sql_backend.session() as ports:
        stats = await ports.queries.statistics()
    assert stats.total == 23
    # Only statuses that occur are listed.
    assert stats.by_status == {"queued": 1, "completed": 20, "failed": 2}
    assert stats.by_language == {"python": 18, "rust": 5}
    assert stats.runtime.count == 20
    assert stats.runtime.average_ms == pytest.approx(105.0)
    # Nearest rank over 10..200: p50 -> 10th value, p95 -> 19th, p99 -> 20th.
    assert stats.runtime.p50_ms == 100
    assert stats.runtime.p95_ms == 190
    assert stats.runtime.p99_ms == 200
    assert stats.runtime.max_ms == 200
    assert stats.bytes_by_location == {"inline": 2_000, "file": 400_000}
    assert stats.events == 3
    assert stats.log_bytes == len("héllo\n".encode()) + 3


async def test_statistics_of_an_empty_store(sql_backend: PortStore) -> None:
    async with sql_backend.session() as ports:
        stats = await ports.queries.statistics()
    assert stats.total == 0
    assert stats.by_status == {}
    assert stats.by_language == {}
    assert stats.runtime.count == 0
    assert stats.runtime.average_ms is None
    assert stats.runtime.p50_ms is None
    assert stats.runtime.max_ms is None
    assert stats.bytes_by_location == {}
    assert stats.events == 0
    assert stats.log_bytes == 0


async def test_inspector_reports_real_counts(sql_backend: PortStore) -> None:
    await add(sql_backend, *[make_evaluation(f"i{n}") for n in range(4)])
    await delete(sql_backend, "i3")
    await append_timeline(
        sql_backend, "i0", events=["e"], event_type="created", logs=["one", "two"]
    )

    report = await sql_backend.inspector.inspect()
    assert report.name == "database"
    assert report.status == "healthy"
    expected_type = {
        "postgres": "postgresql",
        "postgres-sqlalchemy": "postgresql",
        "sqlite": "sqlite",
        "memory": "memory",
    }
    assert report.type == expected_type[sql_backend.kind]
    assert report.metrics["evaluations"] == 3
    assert report.metrics["deleted"] == 1
    assert report.metrics["events"] == 1
    assert report.metrics["log_chunks"] == 2
    assert report.details == {}
    if sql_backend.kind == "memory":
        return
    size: object = report.metrics["size_bytes"]  # object: mypy sees no int in a float MetricValue
    assert isinstance(size, int)
    assert size > 0

    detailed = await sql_backend.inspector.inspect(detailed=True)
    assert detailed.details["evaluations_rows"] == 4
    assert detailed.details["evaluation_events_rows"] == 1
    assert detailed.details["log_chunks_rows"] == 2
    assert isinstance(detailed.details["server_version"], str)
    assert "pool_size" in detailed.details
    if sql_backend.kind == "sqlite":
        # The engine's connect hook switched the file to WAL.
        assert detailed.details["journal_mode"] == "wal"


async def test_inspector_reports_an_unreachable_database(anyio_backend: str) -> None:
    engine = create_engine(
        DatabaseSettings(url="postgresql+asyncpg://postgres@127.0.0.1:1/none", connect_timeout_s=2)
    )
    try:
        report = await SqlDatabaseInspector(create_session_maker(engine), engine).inspect()
    finally:
        await engine.dispose()
    assert report.status == "unavailable"
    assert report.type == "postgresql"
    assert report.error


async def test_daily_status_counts_group_live_records_by_utc_day(sql_backend: PortStore) -> None:
    day = timedelta(days=1)
    late = BASE_TIME.replace(hour=23, minute=59)
    await add(
        sql_backend,
        make_evaluation("old", created_at=BASE_TIME - 3 * day),
        make_evaluation("d1a", created_at=BASE_TIME - day, status=EvaluationStatus.COMPLETED),
        make_evaluation("d1b", created_at=BASE_TIME - day, status=EvaluationStatus.COMPLETED),
        make_evaluation("d1c", created_at=BASE_TIME - day, status=EvaluationStatus.FAILED),
        make_evaluation("d0a", created_at=late, status=EvaluationStatus.RUNNING),
        make_evaluation("d0b", created_at=late + timedelta(minutes=2)),
        make_evaluation("gone", created_at=BASE_TIME),
    )
    await delete(sql_backend, "gone")
    async with sql_backend.session() as ports:
        rows = await ports.queries.daily_status_counts(BASE_TIME - 2 * day)
    first = (BASE_TIME - day).date()
    assert [(r.day, r.status, r.count) for r in rows] == [
        (first, "completed", 2),
        (first, "failed", 1),
        (BASE_TIME.date(), "running", 1),
        (BASE_TIME.date() + day, "queued", 1),
    ]


async def test_daily_status_counts_cover_every_status_from_since_on(sql_backend: PortStore) -> None:
    statuses = list(EvaluationStatus)
    await add(
        sql_backend,
        *[
            make_evaluation(f"s{index}", created_at=BASE_TIME, status=status)
            for index, status in enumerate(statuses)
        ],
        make_evaluation("before", created_at=BASE_TIME - timedelta(microseconds=1)),
        make_evaluation("at", created_at=BASE_TIME, status=EvaluationStatus.COMPLETED),
    )
    async with sql_backend.session() as ports:
        rows = await ports.queries.daily_status_counts(BASE_TIME)
    expected = {
        status.value: 2 if status is EvaluationStatus.COMPLETED else 1 for status in statuses
    }
    assert [(r.day, r.status, r.count) for r in rows] == [
        (BASE_TIME.date(), status, count) for status, count in sorted(expected.items())
    ]


async def test_hourly_counts_group_live_records_by_utc_hour(sql_backend: PortStore) -> None:
    hour = timedelta(hours=1)
    await add(
        sql_backend,
        make_evaluation("before", created_at=BASE_TIME - 3 * hour),
        make_evaluation("h1a", created_at=BASE_TIME - hour),
        make_evaluation("h1b", created_at=BASE_TIME - hour + timedelta(minutes=59, seconds=59)),
        make_evaluation("h0", created_at=BASE_TIME + timedelta(minutes=1)),
        make_evaluation("gone", created_at=BASE_TIME + timedelta(minutes=2)),
    )
    await delete(sql_backend, "gone")
    async with sql_backend.session() as ports:
        rows = await ports.queries.hourly_counts(BASE_TIME - 2 * hour)
    top = BASE_TIME.replace(minute=0, second=0, microsecond=0)
    assert [(r.hour, r.count) for r in rows] == [(top - hour, 2), (top, 1)]
    assert all(r.hour.utcoffset() == timedelta(0) for r in rows)


async def test_statistics_follow_every_kind_of_change(sql_backend: PortStore) -> None:
    """Counters kept by the store (triggers on SQL) agree with the records after changes."""
    await add(
        sql_backend,
        make_evaluation("a", status=EvaluationStatus.RUNNING),
        make_evaluation("b", language="rust"),
        make_evaluation("c", status=EvaluationStatus.COMPLETED, runtime_ms=30),
    )
    await append_timeline(
        sql_backend, "a", events=["e1", "e2", "e2"], event_type="t", logs=["12345"]
    )
    await append_timeline(sql_backend, "b", events=["e1"], event_type="t", logs=["123"])
    async with sql_backend.session() as ports:
        record = await ports.repository.get(EvaluationId("a"))
        assert record is not None
        version = record.version
        record.status = EvaluationStatus.COMPLETED
        record.runtime_ms = 10
        record.output = StoredPayload(PayloadLocation.FILE, size=5_000, text="p", key="k")
        record.touch(BASE_TIME)
        await ports.repository.update(record, version)
        await ports.uow.commit()
    await delete(sql_backend, "b")

    async with sql_backend.session() as ports:
        stats = await ports.queries.statistics()

    assert stats.total == 2
    assert stats.by_status == {"completed": 2}
    assert stats.by_language == {"python": 2}
    assert (stats.runtime.count, stats.runtime.p50_ms, stats.runtime.max_ms) == (2, 10, 30)
    assert stats.runtime.average_ms == pytest.approx(20.0)
    assert stats.bytes_by_location == {"file": 5_000}
    assert (stats.events, stats.log_bytes) == (2, 5)
